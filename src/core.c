/*
 * core.c
 *      Module entry point of crm_analytics and the SQL-callable pieces every
 *      capability shares: the inner-query column check used by report
 *      functions written in SQL and by the source registry.
 */
#include "crm_analytics.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "pgtime.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

bool		CrmCohortTwoPass = true;
/* read by the crm_status notification trigger through current_setting() */
static bool CrmNotifyStatus = true;

void		_PG_init(void);

/* module load: the extension's settings */
void
_PG_init(void)
{
	DefineCustomBoolVariable("crm_analytics.cohort_two_pass",
							 "Lets crm.cohort_retention read its inner query twice with an in-memory table per entity.",
							 "Used when the entity is an integer column, periods <= 64 and the table fits in "
							 "work_mem * hash_mem_multiplier; otherwise, or when off, the report runs "
							 "crm.cohort_activity ... GROUP BY entity (parallel and Citus capable).",
							 &CrmCohortTwoPass,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("crm_analytics.numeric_fast_path",
							 "Lets the cohort functions read a numeric's stored digits directly.",
							 "Off: they read numeric_out's text instead (src/pg_numeric.c; for tests).",
							 &CrmNumericFastPath,
							 true,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("crm_analytics.notify_status",
							 "Sends a pg_notify on channel crm_status for every status change (docs/sales.md).",
							 "Off: no notification (a mass sweep holds every notification of its transaction "
							 "in memory until commit).",
							 &CrmNotifyStatus,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	CrmProgressDefineSettings();
	MarkGUCPrefixReserved("crm_analytics");
}

PG_FUNCTION_INFO_V1(crm_check_inner_query_sql);

/* parse "timestamptz" etc. into a column kind */
static CrmColKind
ParseColumnKind(const char *word)
{
	if (strcmp(word, "any") == 0)
		return CRM_COL_ANY;
	if (strcmp(word, "timestamptz") == 0)
		return CRM_COL_TIMESTAMP;
	if (strcmp(word, "numeric") == 0)
		return CRM_COL_NUMERIC;
	if (strcmp(word, "text") == 0)
		return CRM_COL_TEXT;
	if (strcmp(word, "integer") == 0)
		return CRM_COL_INTEGER;
	if (strcmp(word, "boolean") == 0)
		return CRM_COL_BOOL;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown column kind \"%s\"", word),
			 errhint("Valid kinds are any, timestamptz, numeric, text, integer, boolean.")));
	return CRM_COL_ANY;			/* keep compiler quiet */
}

/*
 * crm._check_inner_query(fname text, query text, columns text[]) -> int
 *
 * columns: one element per expected column, "name kind" with kind one of
 * any, timestamptz, numeric, text, integer, boolean, and a trailing "?" on
 * the kind for an optional trailing column ("value numeric?").  Returns the
 * number of columns the query has; raises a clear error otherwise.
 */
Datum
crm_check_inner_query_sql(PG_FUNCTION_ARGS)
{
	char	   *fname;
	char	   *sql;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	CrmColumnSpec *cols;
	int			i;
	int			result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("function name and column list must not be null")));
	fname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("inner query of %s must not be null", fname)));
	sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	/* before anything else: one SELECT, and not ending in a "--" comment (the callers wrap it as "(%s)") */
	if (sql[0] != '\0')
	{
		CrmInnerQueryValidate(fname, sql);
		CrmInnerQueryRejectOpenComment(fname, sql);
	}
	arr = PG_GETARG_ARRAYTYPE_P(2);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	cols = palloc0(sizeof(CrmColumnSpec) * Max(nelems, 1));
	for (i = 0; i < nelems; i++)
	{
		char	   *spec;
		char	   *sp;
		size_t		klen;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("column list must not contain nulls")));
		spec = text_to_cstring(DatumGetTextPP(elems[i]));
		sp = strchr(spec, ' ');
		if (sp == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column spec \"%s\" must be \"name kind\"", spec)));
		*sp++ = '\0';
		klen = strlen(sp);
		if (klen > 0 && sp[klen - 1] == '?')
		{
			cols[i].optional = true;
			sp[klen - 1] = '\0';
		}
		cols[i].name = spec;
		cols[i].kind = ParseColumnKind(sp);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	result = CrmCheckInnerQuery(fname, sql, cols, nelems);
	SPI_finish();
	PG_RETURN_INT32(result);
}

int64
CrmLocalUsecs(TimestampTz ts)
{
	/* pg_tz objects live as long as the backend: the pointer is the key */
	static pg_tz *cached_tz = NULL;
	static bool cached_fixed = false;
	static long int cached_gmtoff = 0;	/* seconds east of UTC when fixed */
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;

	Assert(!TIMESTAMP_NOT_FINITE(ts));
	if (session_timezone != cached_tz)
	{
		cached_fixed = pg_get_timezone_offset(session_timezone, &cached_gmtoff);
		cached_tz = session_timezone;
	}
	if (cached_fixed)
		return ts + (int64) cached_gmtoff * USECS_PER_SEC;
	if (timestamp2tm(ts, &tz, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return ts - (int64) tz * USECS_PER_SEC;	/* tz: seconds west of UTC */
}
