/*
 * inner_query.c
 *      Report functions take the user's data as an inner query in SQL text
 *      (as pgRouting and crosstab() do).  This file checks such a query's
 *      result columns by position and type before any work is done, so a
 *      mismatch is a clear error that names the expected columns.
 */
#include "crm_analytics.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

/* does type oid fit the column kind */
static bool
ColumnKindAccepts(CrmColKind kind, Oid typid)
{
	typid = getBaseType(typid);
	switch (kind)
	{
		case CRM_COL_ANY:
			return true;
		case CRM_COL_TIMESTAMP:
			return typid == TIMESTAMPTZOID || typid == TIMESTAMPOID || typid == DATEOID;
		case CRM_COL_NUMERIC:
			return typid == NUMERICOID || typid == INT2OID || typid == INT4OID ||
				typid == INT8OID || typid == FLOAT4OID || typid == FLOAT8OID;
		case CRM_COL_TEXT:
			return typid == TEXTOID || typid == VARCHAROID || typid == BPCHAROID || typid == NAMEOID;
		case CRM_COL_INTEGER:
			return typid == INT2OID || typid == INT4OID || typid == INT8OID;
		case CRM_COL_BOOL:
			return typid == BOOLOID;
	}
	return false;
}

static const char *
ColumnKindName(CrmColKind kind)
{
	switch (kind)
	{
		case CRM_COL_ANY:
			return "any type";
		case CRM_COL_TIMESTAMP:
			return "timestamptz";
		case CRM_COL_NUMERIC:
			return "numeric";
		case CRM_COL_TEXT:
			return "text";
		case CRM_COL_INTEGER:
			return "integer";
		case CRM_COL_BOOL:
			return "boolean";
	}
	return "?";
}

/* "entity, ts timestamptz, step text [, value numeric]" */
char *
crm_describe_columns(const CrmColumnSpec *cols, int ncols)
{
	StringInfoData buf;
	int			i;
	int			nopen = 0;

	initStringInfo(&buf);
	for (i = 0; i < ncols; i++)
	{
		if (cols[i].optional)
		{
			appendStringInfoString(&buf, i > 0 ? " [, " : "[");
			nopen++;
		}
		else if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, cols[i].name);
		if (cols[i].kind != CRM_COL_ANY)
			appendStringInfo(&buf, " %s", ColumnKindName(cols[i].kind));
	}
	while (nopen-- > 0)
		appendStringInfoChar(&buf, ']');
	return buf.data;
}

/* check the inner query's columns; SPI must be connected */
int
crm_check_inner_query(const char *fname, const char *sql,
					  const CrmColumnSpec *cols, int ncols)
{
	return crm_check_inner_query_types(fname, sql, cols, ncols, NULL);
}

/* the same, also storing the type of each column present in types[] (may be NULL) */
int
crm_check_inner_query_types(const char *fname, const char *sql,
							const CrmColumnSpec *cols, int ncols, Oid *types)
{
	StringInfoData q;
	TupleDesc	desc;
	int			natts;
	int			nrequired = 0;
	int			i;
	int			ret;

	if (sql == NULL || sql[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: the inner query is empty", fname),
				 errhint("Pass a query returning (%s).", crm_describe_columns(cols, ncols))));

	for (i = 0; i < ncols; i++)
		if (!cols[i].optional)
			nrequired++;

	initStringInfo(&q);
	appendStringInfo(&q, "SELECT * FROM (%s\n) AS crm_inner LIMIT 0", sql);
	ret = SPI_execute(q.data, true, 0);
	if (ret != SPI_OK_SELECT || SPI_tuptable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: the inner query must be a single SELECT", fname),
				 errhint("Pass a query returning (%s).", crm_describe_columns(cols, ncols))));
	desc = SPI_tuptable->tupdesc;
	natts = desc->natts;

	if (natts < nrequired || natts > ncols)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("%s: the inner query returns %d columns, expected (%s)",
						fname, natts, crm_describe_columns(cols, ncols)),
				 errhint("Columns are matched by position; alias or cast them in the inner query.")));

	for (i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!ColumnKindAccepts(cols[i].kind, att->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("%s: column %d (\"%s\") of the inner query has type %s, expected %s for %s",
							fname, i + 1, NameStr(att->attname), format_type_be(att->atttypid),
							ColumnKindName(cols[i].kind), cols[i].name),
					 errdetail("The inner query must return (%s).", crm_describe_columns(cols, ncols)),
					 errhint("Columns are matched by position; alias or cast them in the inner query.")));
		if (types != NULL)
			types[i] = att->atttypid;
	}
	SPI_freetuptable(SPI_tuptable);
	pfree(q.data);
	return natts;
}

void *
crm_prepare_kept(const char *fname, const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "%s: SPI_prepare failed for \"%s\": %s", fname, sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "%s: SPI_keepplan failed", fname);
	return plan;
}
