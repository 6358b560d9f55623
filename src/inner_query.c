/*
 * inner_query.c
 *      Report functions take the user's data as an inner query in SQL text
 *      (as pgRouting and crosstab() do).  This file decides whether such a
 *      text may be run at all (exactly one SELECT, see
 *      CrmInnerQueryValidate), checks the query's result columns by
 *      position and type before any work is done, so a mismatch is a clear
 *      error that names the expected columns, and gives the C reports the
 *      checks they run on what they execute and on what their receivers are
 *      handed.
 */
#include "crm_analytics.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"

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
CrmDescribeColumns(const CrmColumnSpec *cols, int ncols)
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

/* ------------------------------------------------------------------------
 * Exactly one SELECT
 *
 * The text a caller passes is parsed alone, before anything runs, and must
 * be one SelectStmt (SELECT, VALUES or TABLE): one raw statement, no
 * semicolon anywhere at its top level, no SELECT ... INTO and no
 * INSERT/UPDATE/DELETE/MERGE in a WITH clause at any depth.  Only then may a
 * report run it, alone (prepared from this text and nothing else) or
 * wrapped by the report as a subquery "(<text>\n)".
 *
 * Why a text that parses alone as one SelectStmt stays one subquery when
 * wrapped: the lexer starts the text in its initial state (it follows "(",
 * which never joins a following character into a token) and, since the text
 * lexed alone without error, ends it in the initial state too: no string,
 * quoted identifier, dollar quote or block comment is left open, and a
 * final "--" comment is closed by the "\n" the wrapper adds.  So the text
 * is lexed into the same tokens inside the wrapper as alone, and the token
 * after it is the wrapper's ")" (a one-character token the lexer's
 * look-ahead rules treat like the end of input).  The grammar pairs every
 * parenthesis it accepts, so the text's parentheses are balanced and the
 * wrapper's "(" is closed by the wrapper's ")": the text cannot close it
 * early, and with no ";" it cannot start another statement.  The text is
 * then a select_with_parens, one subquery.  On top of that every query the
 * C reports build is prepared with CrmPrepareSelect, which refuses a plan
 * of more than one statement or of anything but a SELECT, and every
 * receiver checks the tuple descriptor it is handed
 * (CrmCheckResultDesc), so a text that got through anyway could still
 * only produce an error.
 * ------------------------------------------------------------------------
 */

/* the text and the function name, for errors raised while parsing it */
typedef struct InnerQueryErrorArg
{
	const char *fname;
	const char *sql;
} InnerQueryErrorArg;

/*
 * A syntax error of the text points into the text (as in a SQL function's
 * body), not into the statement that called the report.
 */
static void
InnerQueryErrorCallback(void *arg)
{
	InnerQueryErrorArg *a = (InnerQueryErrorArg *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(a->sql);
	}
	errcontext("inner query of %s", a->fname);
}

static void
NotOneSelect(const char *fname, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("inner query of %s must be a single SELECT statement", fname),
			 errdetail_internal("%s", detail),
			 errhint("Pass one SELECT, VALUES or TABLE statement, without a semicolon.")));
}

/* SELECT ... INTO or a data-modifying statement anywhere in the raw tree */
static bool
InnerQueryWalker(Node *node, void *context)
{
	const char *fname = (const char *) context;

	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_SelectStmt:
			if (((SelectStmt *) node)->intoClause != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("inner query of %s must not be SELECT ... INTO", fname),
						 errhint("Remove the INTO clause: the report reads the query's rows itself.")));
			break;
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("inner query of %s must not modify data", fname),
					 errdetail("It holds %s in a WITH clause.",
							   GetCommandTagName(CreateCommandTag(node))),
					 errhint("Pass a query that only reads.")));
			break;
		default:
			break;
	}
	return raw_expression_tree_walker(node, InnerQueryWalker, context);
}

/*
 * The shared entry point: accept sql only if it is exactly one SELECT
 * statement (see above), otherwise raise an error:
 *   22004 the text is NULL
 *   42601 syntax error of the text (the parser's own error)
 *   22023 empty (nothing but spaces and comments)
 *   42601 more than one statement, a semicolon, or not a SELECT
 *   0A000 SELECT ... INTO, or INSERT/UPDATE/DELETE/MERGE in a WITH clause
 * Nothing is executed, no SPI needed.
 */
void
CrmInnerQueryValidate(const char *fname, const char *sql)
{
	InnerQueryErrorArg arg;
	ErrorContextCallback cb;
	List	   *raw;
	RawStmt    *rs;

	if (sql == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("inner query of %s must not be null", fname)));

	arg.fname = fname;
	arg.sql = sql;
	cb.callback = InnerQueryErrorCallback;
	cb.arg = &arg;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	error_context_stack = cb.previous;

	if (raw == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inner query is empty"),
				 errhint("Pass one SELECT statement."),
				 errcontext("inner query of %s", fname)));
	if (list_length(raw) > 1)
		NotOneSelect(fname, psprintf("The text holds %d statements.", list_length(raw)));
	rs = linitial_node(RawStmt, raw);
	/* a ';' before or after the statement (an empty statement is no RawStmt) */
	if (rs->stmt_location != 0 || rs->stmt_len != 0)
		NotOneSelect(fname, "The text holds a semicolon.");
	if (!IsA(rs->stmt, SelectStmt))
		NotOneSelect(fname, psprintf("The text is a %s statement.",
									 GetCommandTagName(CreateCommandTag(rs->stmt))));
	(void) InnerQueryWalker(rs->stmt, (void *) fname);
	list_free_deep(raw);
}

/*
 * For callers that wrap the text as "(<text>)" with no newline after it
 * (the PL/pgSQL reports): refuse a text that ends inside a "--" comment,
 * which would swallow the rest of the wrapper's line.  sql must have passed
 * CrmInnerQueryValidate.  The text followed by ")" is lexed: its last
 * token is that ")" unless a comment swallowed it.
 */
void
CrmInnerQueryRejectOpenComment(const char *fname, const char *sql)
{
	size_t		len = strlen(sql);
	char	   *buf = palloc(len + 2);
	core_yy_extra_type yyextra;
	core_yyscan_t scanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc = -1;
	int			tok;
	int			last = 0;
	int			lastloc = -1;

	memcpy(buf, sql, len);
	buf[len] = ')';
	buf[len + 1] = '\0';
	scanner = scanner_init(buf, &yyextra, &ScanKeywords, ScanKeywordTokens);
	while ((tok = core_yylex(&yylval, &yylloc, scanner)) != 0)
	{
		last = tok;
		lastloc = yylloc;
	}
	scanner_finish(scanner);
	pfree(buf);
	if (last != ')' || lastloc != (int) len)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("inner query of %s must not end inside a \"--\" comment", fname),
				 errhint("End the comment with a newline, or use /* ... */.")));
}

/*
 * plan must be one SELECT: one plan source whose one query is a SELECT that
 * neither is a utility statement (SELECT INTO is one) nor modifies data.
 */
static void
RequireOneSelectPlan(const char *fname, SPIPlanPtr plan)
{
	List	   *srcs = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *ps;
	Query	   *q;

	if (list_length(srcs) != 1)
		NotOneSelect(fname, psprintf("The query holds %d statements.", list_length(srcs)));
	ps = (CachedPlanSource *) linitial(srcs);
	if (ps->commandTag != CMDTAG_SELECT || ps->resultDesc == NULL ||
		list_length(ps->query_list) != 1)
		NotOneSelect(fname, psprintf("The query is a %s statement.", GetCommandTagName(ps->commandTag)));
	q = linitial_node(Query, ps->query_list);
	if (q->commandType != CMD_SELECT || q->utilityStmt != NULL || q->hasModifyingCTE)
		NotOneSelect(fname, "The query does not only read.");
}

/*
 * With SPI connected: prepare sql, a text the C code built around a text
 * that passed CrmInnerQueryValidate, and require it to be one SELECT
 * (parallel plans allowed).  The plan lives until SPI_finish.
 */
void *
CrmPrepareSelect(const char *fname, const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, 0, NULL, CURSOR_OPT_PARALLEL_OK);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed: %s", SPI_result_code_string(SPI_result));
	RequireOneSelectPlan(fname, plan);
	return plan;
}

/*
 * What a receiver or consumer is handed must be what the report decided to
 * read: natts columns of exactly the types types[].  A plan is re-analysed
 * when a table it reads changes, so its result may differ from the one
 * checked; the datums are then not read, the report fails.
 */
void
CrmCheckResultDesc(const char *fname, TupleDesc desc, int natts, const Oid *types)
{
	int			i;

	if (desc == NULL || desc->natts != natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("query of %s returned %d columns, expected %d",
						fname, desc == NULL ? 0 : desc->natts, natts),
				 errdetail("The inner query's result changed after it was checked.")));
	for (i = 0; i < natts; i++)
	{
		Oid			t = TupleDescAttr(desc, i)->atttypid;

		if (t != types[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of the query of %s has type %s, expected %s",
							i + 1, fname, format_type_be(t), format_type_be(types[i])),
					 errdetail("The inner query's result changed after it was checked.")));
	}
}

/*
 * With SPI connected: validate sql (CrmInnerQueryValidate), prepare it
 * alone and check its result columns against cols.  Returns the plan (it
 * lives until SPI_finish; run it with a receiver that checks its tuple
 * descriptor), the number of columns present in *natts and their types in
 * types[] (may be NULL).
 */
static SPIPlanPtr
InnerQueryPrepare(const char *fname, const char *sql, const CrmColumnSpec *cols, int ncols,
				  int cursor_options, int *natts_out, Oid *types)
{
	SPIPlanPtr	plan;
	TupleDesc	desc;
	int			natts;
	int			nrequired = 0;
	int			i;

	if (sql == NULL || sql[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("inner query is empty"),
				 errhint("Pass a query returning (%s).", CrmDescribeColumns(cols, ncols)),
				 errcontext("inner query of %s", fname)));
	CrmInnerQueryValidate(fname, sql);

	for (i = 0; i < ncols; i++)
		if (!cols[i].optional)
			nrequired++;

	plan = SPI_prepare_cursor(sql, 0, NULL, cursor_options);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed: %s", SPI_result_code_string(SPI_result));
	RequireOneSelectPlan(fname, plan);
	desc = ((CachedPlanSource *) linitial(SPI_plan_get_plan_sources(plan)))->resultDesc;
	natts = desc->natts;

	if (natts < nrequired || natts > ncols)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg_plural("inner query returns %d column, expected (%s)",
							   "inner query returns %d columns, expected (%s)",
							   natts, natts, CrmDescribeColumns(cols, ncols)),
				 errhint("Columns are matched by position; alias or cast them in the inner query."),
				 errcontext("inner query of %s", fname)));

	for (i = 0; i < natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!ColumnKindAccepts(cols[i].kind, att->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d (\"%s\") of the inner query has type %s, expected %s for %s",
							i + 1, NameStr(att->attname), format_type_be(att->atttypid),
							ColumnKindName(cols[i].kind), cols[i].name),
					 errdetail("The inner query must return (%s).", CrmDescribeColumns(cols, ncols)),
					 errhint("Columns are matched by position; alias or cast them in the inner query."),
					 errcontext("inner query of %s", fname)));
		if (types != NULL)
			types[i] = att->atttypid;
	}
	if (natts_out != NULL)
		*natts_out = natts;
	return plan;
}

void *
CrmInnerQueryPrepare(const char *fname, const char *sql,
						const CrmColumnSpec *cols, int ncols, int *natts, Oid *types)
{
	return InnerQueryPrepare(fname, sql, cols, ncols, CURSOR_OPT_PARALLEL_OK, natts, types);
}

/* check the inner query's columns; SPI must be connected */
int
CrmCheckInnerQuery(const char *fname, const char *sql,
					  const CrmColumnSpec *cols, int ncols)
{
	return CrmCheckInnerQueryTypes(fname, sql, cols, ncols, NULL);
}

/* the same, also storing the type of each column present in types[] (may be NULL) */
int
CrmCheckInnerQueryTypes(const char *fname, const char *sql,
							const CrmColumnSpec *cols, int ncols, Oid *types)
{
	int			natts;
	SPIPlanPtr	plan = InnerQueryPrepare(fname, sql, cols, ncols, 0, &natts, types);
	Portal		portal;

	/*
	 * Start the query and close it without fetching a row: the executor's
	 * start checks the caller's rights on what it reads, so a caller without
	 * them gets the error here, before the report does any work.
	 */
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	return natts;
}

void *
CrmPrepareKept(const char *fname, const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("SPI_prepare failed for \"%s\": %s", sql,
								 SPI_result_code_string(SPI_result)),
				 errcontext("%s", fname)));
	if (SPI_keepplan(plan) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg_internal("SPI_keepplan failed"),
				 errcontext("%s", fname)));
	return plan;
}
