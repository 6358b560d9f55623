/*
 * coverage.c
 *      Contact coverage (docs/coverage.md): crm.coverage_trigger(), the
 *      AFTER INSERT ... FOR EACH STATEMENT trigger with a NEW TABLE
 *      transition table that crm.attach_coverage installs on the user's
 *      interactions table.  It folds the statement's counted interactions
 *      per customer (latest timestamp, count) and applies them to
 *      crm.coverage in customer order, so that concurrent inserts never
 *      lose an update, never move the last contact backwards and do not
 *      deadlock each other.  In READ COMMITTED (the usual case) each
 *      coverage row is locked and updated directly (pg_heap_update.c)
 *      without a statement per customer; the kept SPI statements of this
 *      file remain for REPEATABLE READ / SERIALIZABLE, for a crm.coverage
 *      with triggers or row security, or without plain table privileges,
 *      and for customers without a coverage row.
 *
 *      The other files of the engine are listed in coverage.h; the
 *      crm.median_interval aggregate is in median_interval.c.
 */
#include "coverage.h"

#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(coverage_trigger);

/* statements touching at least this many customers use one array UPDATE */
#define COVERAGE_BATCH_MIN	8


static SPIPlanPtr coverage_update_plan = NULL;
static SPIPlanPtr coverage_upsert_plan = NULL;
static SPIPlanPtr coverage_batch_plan = NULL;

/* qsort comparator: hits by customer, then latest */
static int
CompareHits(const void *a, const void *b)
{
	const CoverageHit *x = (const CoverageHit *) a;
	const CoverageHit *y = (const CoverageHit *) b;

	if (x->customer != y->customer)
		return (x->customer > y->customer) - (x->customer < y->customer);
	return (x->latest > y->latest) - (x->latest < y->latest);
}

#define ST_SORT SortHits
#define ST_ELEMENT_TYPE CoverageHit
#define ST_COMPARE(a, b) CompareHits(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* prepare and keep the three statements the trigger runs */
static void
PreparePlans(void)
{
	Oid			argtypes[3] = {INT8OID, TIMESTAMPTZOID, INT8OID};

	if (coverage_update_plan == NULL)
	{
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_trigger",
									   "UPDATE crm.coverage c"
									   "   SET last_contact = GREATEST(c.last_contact, $2),"
									   "       contacts = c.contacts OPERATOR(pg_catalog.+) $3,"
									   "       next_due = GREATEST(c.last_contact, $2) OPERATOR(pg_catalog.+) c.contact_interval"
									   " WHERE c.customer_id OPERATOR(pg_catalog.=) $1",
									   3, argtypes);
		coverage_update_plan = plan;
	}
	if (coverage_upsert_plan == NULL)
	{
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_trigger",
									   "INSERT INTO crm.coverage AS c (customer_id, last_contact, contacts)"
									   " VALUES ($1, $2, $3)"
									   " ON CONFLICT (customer_id) DO UPDATE"
									   "   SET last_contact = GREATEST(c.last_contact, excluded.last_contact),"
									   "       contacts = c.contacts OPERATOR(pg_catalog.+) excluded.contacts,"
									   "       next_due = GREATEST(c.last_contact, excluded.last_contact) OPERATOR(pg_catalog.+) c.contact_interval",
									   3, argtypes);
		coverage_upsert_plan = plan;
	}
	if (coverage_batch_plan == NULL)
	{
		Oid			arrtypes[3] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_trigger",
									   "UPDATE crm.coverage c"
									   "   SET last_contact = GREATEST(c.last_contact, u.t),"
									   "       contacts = c.contacts OPERATOR(pg_catalog.+) u.n,"
									   "       next_due = GREATEST(c.last_contact, u.t) OPERATOR(pg_catalog.+) c.contact_interval"
									   "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(k, t, n)"
									   " WHERE c.customer_id OPERATOR(pg_catalog.=) u.k"
									   " RETURNING c.customer_id",
									   3, arrtypes);
		coverage_batch_plan = plan;
	}
}

/* a customer of the statement has no coverage row: add it, skip it or fail */
static void
HandleUnknownCustomer(CoverageUnknown unknown, CoverageHit *hit)
{
	Datum		values[3];
	int			ret;

	switch (unknown)
	{
		case COVERAGE_UNKNOWN_INSERT:
			values[0] = Int64GetDatum(hit->customer);
			values[1] = TimestampTzGetDatum(hit->latest);
			values[2] = Int64GetDatum(hit->count);
			ret = SPI_execute_plan(coverage_upsert_plan, values, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "insert into crm.coverage failed: %s", SPI_result_code_string(ret));
			break;
		case COVERAGE_UNKNOWN_IGNORE:
			break;
		case COVERAGE_UNKNOWN_ERROR:
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("interaction for unknown customer " INT64_FORMAT, hit->customer),
					 errdetail("Customer " INT64_FORMAT " has no row in crm.coverage.", hit->customer),
					 errhint("Add the customer and run crm.coverage_rebuild(), or attach with unknown_customers => 'insert' or 'ignore'.")));
	}
}

/*
 * Apply many customers at once: one UPDATE joined with the arrays (the
 * arrays are in customer order), then the customers it did not find.
 */
static void
ApplyBatch(CoverageHit *hits, int nhits, CoverageUnknown unknown)
{
	Datum	   *keys = palloc(sizeof(Datum) * nhits);
	Datum	   *times = palloc(sizeof(Datum) * nhits);
	Datum	   *counts = palloc(sizeof(Datum) * nhits);
	Datum		values[3];
	int			ret;
	int			i;

	for (i = 0; i < nhits; i++)
	{
		keys[i] = Int64GetDatum(hits[i].customer);
		times[i] = TimestampTzGetDatum(hits[i].latest);
		counts[i] = Int64GetDatum(hits[i].count);
	}
	values[0] = PointerGetDatum(construct_array(keys, nhits, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(times, nhits, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(counts, nhits, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ret = SPI_execute_plan(coverage_batch_plan, values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "update of crm.coverage failed: %s", SPI_result_code_string(ret));
	if (SPI_processed < (uint64) nhits && unknown != COVERAGE_UNKNOWN_IGNORE)
	{
		uint64		nfound = SPI_processed;
		int64	   *found = palloc(sizeof(int64) * Max(nfound, 1));
		uint64		j;
		uint64		f = 0;

		for (j = 0; j < nfound; j++)
		{
			bool		isnull;

			found[j] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull));
		}
		CrmSortInt64(found, nfound);
		for (i = 0; i < nhits; i++)
		{
			while (f < nfound && found[f] < hits[i].customer)
				f++;
			if (f < nfound && found[f] == hits[i].customer)
				continue;
			HandleUnknownCustomer(unknown, &hits[i]);
		}
	}
}



/*
 * The statement's counted interactions, one entry per customer (latest
 * time, count), in customer order; sets *nhits.
 */
static CoverageHit *
FoldStatement(CoverageTriggerInfo *info, TriggerData *trigdata, int *nhits_out)
{
	Tuplestorestate *ts = trigdata->tg_newtable;
	TupleTableSlot *slot;
	int			readptr;
	CoverageHit *hits;
	int			nhits = 0;
	int			cap = 64;
	int			i;

	/* our own read pointer, from the start */
	readptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, readptr);
	tuplestore_rescan(ts);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(trigdata->tg_relation), &TTSOpsMinimalTuple);
	hits = palloc(sizeof(CoverageHit) * cap);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		int64		customer;
		TimestampTz when;

		CHECK_FOR_INTERRUPTS();
		if (!CoverageCountedRow(info, slot, &customer, &when))
			continue;
		if (nhits == cap)
		{
			if ((Size) cap * 2 * sizeof(CoverageHit) > MaxAllocSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("too many interactions in one statement"),
						 errhint("Insert in batches of fewer than 10 million rows.")));
			cap *= 2;
			hits = repalloc(hits, sizeof(CoverageHit) * cap);
		}
		hits[nhits].customer = customer;
		hits[nhits].latest = when;
		hits[nhits].count = 1;
		nhits++;
	}
	ExecDropSingleTupleTableSlot(slot);

	if (nhits > 1)
	{
		int			out = 0;

		SortHits(hits, nhits);
		for (i = 1; i < nhits; i++)
		{
			if (hits[i].customer == hits[out].customer)
			{
				hits[out].latest = hits[i].latest;	/* sorted: the later one */
				hits[out].count += hits[i].count;
			}
			else
				hits[++out] = hits[i];
		}
		nhits = out + 1;
	}
	*nhits_out = nhits;
	return hits;
}

/* the kept statements' path: every customer, or only the missing ones (direct) */
static void
ApplySpi(CoverageHit *hits, int nhits, CoverageUnknown unknown, bool only_missing)
{
	int			i;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PreparePlans();
	if (only_missing)
	{
		/* customers without a coverage row: add, skip or fail */
		for (i = 0; i < nhits; i++)
			HandleUnknownCustomer(unknown, &hits[i]);
	}
	else if (nhits >= COVERAGE_BATCH_MIN)
		ApplyBatch(hits, nhits, unknown);
	else
	{
		for (i = 0; i < nhits; i++)
		{
			Datum		values[3];
			int			ret;

			values[0] = Int64GetDatum(hits[i].customer);
			values[1] = TimestampTzGetDatum(hits[i].latest);
			values[2] = Int64GetDatum(hits[i].count);
			ret = SPI_execute_plan(coverage_update_plan, values, NULL, false, 0);
			if (ret != SPI_OK_UPDATE)
				elog(ERROR, "update of crm.coverage failed: %s", SPI_result_code_string(ret));
			if (SPI_processed == 0)
				HandleUnknownCustomer(unknown, &hits[i]);
		}
	}
	SPI_finish();
}

/*
 * crm.coverage_trigger(): statement-level AFTER INSERT trigger with a
 * transition table.  Every counted interaction of the statement is folded
 * per customer, then each customer's coverage row is updated once, in
 * customer order (a deterministic lock order: concurrent multi-row inserts
 * do not deadlock).  GREATEST keeps the last contact from moving backwards
 * when older interactions arrive late; the row lock (and, in READ
 * COMMITTED, working on the latest version of the row) make concurrent
 * inserts for one customer add up exactly.
 */
Datum
coverage_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CoverageTriggerInfo *info;
	CoverageHit *hits;
	CoverageHit *missing;
	int			nmissing;
	int			nhits;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by trigger manager", "crm.coverage_trigger"),
				 errhint("Install it with crm.attach_coverage().")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired AFTER INSERT FOR EACH STATEMENT with a NEW TABLE transition table",
						"crm.coverage_trigger"),
				 errhint("Install it with crm.attach_coverage().")));
	info = CoverageGetTriggerInfo(trigdata);
	hits = FoldStatement(info, trigdata, &nhits);
	if (nhits == 0)
		return PointerGetDatum(NULL);
	if (CoverageApplyDirect(CoverageDirectTarget(), hits, nhits, &missing, &nmissing))
	{
		if (nmissing > 0 && info->unknown != COVERAGE_UNKNOWN_IGNORE)
			ApplySpi(missing, nmissing, info->unknown, true);
	}
	else
		ApplySpi(hits, nhits, info->unknown, false);
	return PointerGetDatum(NULL);
}
