/*
 * coverage_change.c
 *      Contact coverage (docs/coverage.md): the triggers that keep
 *      crm.coverage right when counted interactions change or go.
 *
 *      - crm.coverage_change_trigger(): AFTER UPDATE / AFTER DELETE ... FOR
 *        EACH STATEMENT trigger with transition tables: collects the
 *        customers whose counted interactions changed and recomputes their
 *        coverage rows with one set-based statement built from
 *        crm.coverage_config (crm._coverage_recompute_sql).
 *      - crm.coverage_truncate_trigger(): AFTER TRUNCATE: crm.coverage is
 *        rebuilt.
 */
#include "coverage.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(coverage_change_trigger);
PG_FUNCTION_INFO_V1(coverage_truncate_trigger);


/* ------------------------------------------------------------------------
 * crm.coverage_change_trigger()
 * ------------------------------------------------------------------------
 */

static SPIPlanPtr coverage_lock_plan = NULL;

/* append the customers of a transition table's counted rows to *keys */
static void
CollectCustomers(CoverageTriggerInfo *info, Relation rel, Tuplestorestate *ts,
				 int64 **keys, int *nkeys, int *cap)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	int			readptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(ts, readptr);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		int64		customer;
		TimestampTz when;

		CHECK_FOR_INTERRUPTS();
		if (!CoverageCountedRow(info, slot, &customer, &when))
			continue;
		if (*nkeys == *cap)
		{
			if ((Size) *cap * 2 * sizeof(int64) > MaxAllocSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many interactions in one statement")));
			*cap *= 2;
			*keys = repalloc(*keys, sizeof(int64) * *cap);
		}
		(*keys)[(*nkeys)++] = customer;
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * crm.coverage_change_trigger(): statement-level AFTER UPDATE / AFTER
 * DELETE trigger with transition tables.  The customers of the counted old
 * rows (and, for UPDATE, of the counted new rows) are collected, sorted and
 * made distinct; their coverage rows are locked in customer order (the lock
 * order of crm.coverage_trigger, so the two do not deadlock), then one
 * statement recomputes them from the interactions table with a new
 * snapshot, which sees every insert that committed before the locks were
 * granted (an insert still in progress adds itself afterwards, on top).
 */
Datum
coverage_change_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CoverageTriggerInfo *info;
	int64	   *keys;
	int			nkeys = 0;
	int			cap = 64;
	int			i;
	int			out;
	Datum	   *elems;
	Datum		values[1];
	int			ret;
	bool		isnull;
	Datum		missing;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by trigger manager", "crm.coverage_change_trigger"),
				 errhint("Install it with crm.attach_coverage().")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) || TRIGGER_FIRED_BY_DELETE(trigdata->tg_event)) ||
		trigdata->tg_oldtable == NULL ||
		(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && trigdata->tg_newtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired AFTER UPDATE or AFTER DELETE FOR EACH STATEMENT with OLD TABLE (and for UPDATE NEW TABLE) transition tables",
						"crm.coverage_change_trigger"),
				 errhint("Install it with crm.attach_coverage().")));
	info = CoverageGetTriggerInfo(trigdata);

	keys = palloc(sizeof(int64) * cap);
	CollectCustomers(info, trigdata->tg_relation, trigdata->tg_oldtable, &keys, &nkeys, &cap);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		CollectCustomers(info, trigdata->tg_relation, trigdata->tg_newtable, &keys, &nkeys, &cap);
	if (nkeys == 0)
		return PointerGetDatum(NULL);
	CrmSortInt64(keys, nkeys);
	out = 0;
	for (i = 1; i < nkeys; i++)
		if (keys[i] != keys[out])
			keys[++out] = keys[i];
	nkeys = out + 1;
	elems = palloc(sizeof(Datum) * nkeys);
	for (i = 0; i < nkeys; i++)
		elems[i] = Int64GetDatum(keys[i]);
	values[0] = PointerGetDatum(construct_array(elems, nkeys, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (coverage_lock_plan == NULL)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_change_trigger",
									   "SELECT c.customer_id FROM crm.coverage c"
									   " WHERE c.customer_id OPERATOR(pg_catalog.=) ANY ($1)"
									   " ORDER BY c.customer_id FOR NO KEY UPDATE OF c",
									   1, argtypes);
		coverage_lock_plan = plan;
	}
	if (info->recompute_plan == NULL)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		char	   *sql;
		SPIPlanPtr	plan;

		ret = SPI_execute("SELECT crm._coverage_recompute_sql(c) FROM crm.coverage_config c", true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading crm.coverage_config failed: %s", SPI_result_code_string(ret));
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("coverage is not attached"),
					 errhint("Run crm.attach_coverage(...) again.")));
		sql = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (sql == NULL)
			elog(ERROR, "crm._coverage_recompute_sql returned null");
		plan = CrmPrepareKept("crm.coverage_change_trigger", sql, 1, argtypes);
		info->recompute_plan = plan;
	}
	ret = SPI_execute_plan(coverage_lock_plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "locking rows of crm.coverage failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute_plan(info->recompute_plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "recomputing crm.coverage failed: %s", SPI_result_code_string(ret));
	missing = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull && info->unknown == COVERAGE_UNKNOWN_ERROR)
	{
		int64		customer = DatumGetInt64(missing);

		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("interaction for unknown customer " INT64_FORMAT, customer),
				 errdetail("Customer " INT64_FORMAT " has no row in crm.coverage.", customer),
				 errhint("Add the customer and run crm.coverage_rebuild(), or attach with unknown_customers => 'insert' or 'ignore'.")));
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------------
 * crm.coverage_truncate_trigger()
 * ------------------------------------------------------------------------
 */

/*
 * AFTER TRUNCATE FOR EACH STATEMENT on the interactions table: no counted
 * contact is left, so crm.coverage is refilled by crm.coverage_rebuild()
 * (customers keep their rows with no last contact, customers known only
 * from their interactions go), when the truncated table is the one coverage
 * is attached to.
 */
Datum
coverage_truncate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	int			ret;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by trigger manager", "crm.coverage_truncate_trigger"),
				 errhint("Install it with crm.attach_coverage().")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired AFTER TRUNCATE FOR EACH STATEMENT", "crm.coverage_truncate_trigger"),
				 errhint("Install it with crm.attach_coverage().")));
	values[0] = ObjectIdGetDatum(RelationGetRelid(trigdata->tg_relation));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ret = SPI_execute_with_args("SELECT crm.coverage_rebuild() FROM crm.coverage_config c "
								"WHERE c.interactions OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
								1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "crm.coverage_rebuild() failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	return PointerGetDatum(NULL);
}