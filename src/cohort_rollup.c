/*
 * cohort_rollup.c
 *      The aggregate path of the cohort reports (docs/retention.md): run
 *      "crm.cohort_activity ... GROUP BY entity" over the user's inner query
 *      (in parallel when the planner likes) and fold the per-entity states
 *      into per-cohort (cohort_retention) or per-period (retention_metrics)
 *      counters as they stream out of the executor, in a DestReceiver, so
 *      no per-entity row is materialised.
 */
#include "retention.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

RollupReceiver *
RetentionRollupNew(RollupMode mode, CohortPeriod period, int periods)
{
	RollupReceiver *r = palloc0(sizeof(RollupReceiver));

	r->mode = mode;
	r->period = period;
	r->periods = periods;
	r->cxt = AllocSetContextCreate(CurrentMemoryContext, "crm cohort rollup", ALLOCSET_DEFAULT_SIZES);
	r->tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "crm cohort rollup row", ALLOCSET_DEFAULT_SIZES);
	return r;
}

void
RetentionRollupFree(RollupReceiver *r)
{
	MemoryContextDelete(r->cxt);
	MemoryContextDelete(r->tmpcxt);
	pfree(r);
}

/* the aggregate path's receiver is handed (entity IS NULL, cohort_activity(...)) */
static void
RollupStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	RollupReceiver *r = (RollupReceiver *) self;

	(void) operation;
	CrmCheckResultDesc(r->fname, typeinfo, 2, r->rowtypes);
}

static void
RollupShutdown(DestReceiver *self)
{
	(void) self;
}

static void
RollupDestroy(DestReceiver *self)
{
	(void) self;
}

/* bring every revenue accumulator to dscale ds */
void
RetentionRollupRescale(RollupReceiver *r, int ds)
{
	HASH_SEQ_STATUS seq;

	if (ds <= r->dscale)
		return;
	hash_seq_init(&seq, r->table);
	if (r->mode == ROLLUP_COHORTS)
	{
		CohortAcc  *c;

		while ((c = hash_seq_search(&seq)) != NULL)
		{
			int			k;

			for (k = 0; k < c->used; k++)
				c->revenue[k] = RetentionRescale(c->revenue[k], r->dscale, ds);
		}
	}
	else
	{
		PeriodAcc  *p;

		while ((p = hash_seq_search(&seq)) != NULL)
			p->revenue = RetentionRescale(p->revenue, r->dscale, ds);
	}
	r->dscale = ds;
}

/* one entity's state into its cohort's counters */
static void
RollupCohortEntity(RollupReceiver *r, const CohortHeader *h, const CohortEntry *ents, int n)
{
	int32		cohort = ents[0].idx;
	bool		found;
	CohortAcc  *c = hash_search(r->table, &cohort, HASH_ENTER, &found);
	int			i;

	if (!found)
	{
		c->size = 0;
		c->cap = 0;
		c->used = 0;
		c->active = NULL;
		c->revenue = NULL;
	}
	c->size++;
	for (i = 0; i < n; i++)
	{
		int64		k = (int64) ents[i].idx - cohort;

		if (k >= r->periods)
			break;
		if (k >= c->cap)
		{
			int			newcap = Min(Max(c->cap * 2, (int) k + 4), r->periods);

			if (c->active == NULL)
			{
				c->active = MemoryContextAllocZero(r->cxt, newcap * sizeof(int64));
				c->revenue = MemoryContextAllocZero(r->cxt, newcap * sizeof(int128));
			}
			else
			{
				c->active = repalloc(c->active, newcap * sizeof(int64));
				c->revenue = repalloc(c->revenue, newcap * sizeof(int128));
				memset(c->active + c->cap, 0, (newcap - c->cap) * sizeof(int64));
				memset(c->revenue + c->cap, 0, (newcap - c->cap) * sizeof(int128));
			}
			c->cap = newcap;
		}
		c->active[k]++;
		c->revenue[k] = RetentionAddChecked(c->revenue[k], RetentionRescale(ents[i].revenue, h->dscale, r->dscale));
		if (k + 1 > c->used)
			c->used = (int) k + 1;
	}
}

/* one entity's state into the calendar periods it was active in */
static void
RollupPeriodEntity(RollupReceiver *r, const CohortHeader *h, const CohortEntry *ents, int n)
{
	int64		to_date = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		bool		found;
		PeriodAcc  *p = hash_search(r->table, &ents[i].idx, HASH_ENTER, &found);

		if (!found)
		{
			int32		key = p->idx;

			memset(p, 0, sizeof(PeriodAcc));
			p->idx = key;
		}
		to_date += ents[i].orders;
		p->active++;
		if (i == 0)
			p->newc++;
		else if (ents[i - 1].idx == ents[i].idx - 1)
			p->retained++;
		if (to_date >= 2)
			p->repeat++;
		p->orders += ents[i].orders;
		p->revenue = RetentionAddChecked(p->revenue, RetentionRescale(ents[i].revenue, h->dscale, r->dscale));
	}
}

/* DestReceiver callback: one row of "entity IS NULL, cohort_activity ... GROUP BY entity" */
static bool
RollupReceive(TupleTableSlot *slot, DestReceiver *self)
{
	RollupReceiver *r = (RollupReceiver *) self;
	bool		isnull;
	Datum		d;
	MemoryContext old;
	const CohortHeader *h;
	const CohortEntry *ents;
	int			n;

	d = slot_getattr(slot, 1, &isnull);
	if (isnull || DatumGetBool(d))
		return true;			/* the NULL entity */
	d = slot_getattr(slot, 2, &isnull);
	if (isnull)
		return true;
	old = MemoryContextSwitchTo(r->tmpcxt);
	h = RetentionCohortPayload(d);
	ents = RetentionCohortWideEntries(h, &r->buf, &r->bufcap, r->cxt);
	n = h->nentries;
	/* with as_of: only the periods up to as_of's (entries are sorted) */
	while (r->has_asof && n > 0 && ents[n - 1].idx > r->asof_idx)
		n--;
	if (n > 0)
	{
		if (h->period != (int32) r->period)
			elog(ERROR, "cohort state of an unexpected period %d", h->period);
		if (h->dscale > r->dscale)
			RetentionRollupRescale(r, h->dscale);
		if (!r->any || ents[0].idx < r->minidx)
			r->minidx = ents[0].idx;
		if (!r->any || ents[n - 1].idx > r->maxidx)
			r->maxidx = ents[n - 1].idx;
		r->any = true;
		if (r->mode == ROLLUP_COHORTS)
			RollupCohortEntity(r, h, ents, n);
		else
			RollupPeriodEntity(r, h, ents, n);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->tmpcxt);
	return true;
}

/* r's per-cohort or per-period accumulators (empty) */
void
RetentionRollupCreateTable(RollupReceiver *r)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int32);
	ctl.entrysize = (r->mode == ROLLUP_COHORTS) ? sizeof(CohortAcc) : sizeof(PeriodAcc);
	ctl.hcxt = r->cxt;
	r->table = hash_create("crm cohort rollup", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* the oid of crm.cohort_activity_state, found without the search_path */
static Oid
CohortStateTypeOid(void)
{
	Oid			nsp = get_namespace_oid("crm", false);
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum("cohort_activity_state"),
										ObjectIdGetDatum(nsp));

	if (!OidIsValid(typid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("type crm.cohort_activity_state does not exist")));
	return typid;
}

const CrmColumnSpec RetentionCohortColumns[3] = {
	{"entity", CRM_COL_ANY, false},
	{"ts", CRM_COL_TIMESTAMP, false},
	{"amount", CRM_COL_NUMERIC, true},
};

/*
 * Run the per-entity aggregate over the inner query (in parallel when the
 * planner likes) and fold its rows into r.  SPI must be connected.  Returns
 * whether the inner query has an amount column.
 */
bool
RetentionRollupRun(const char *fname, const char *sql, RollupReceiver *r)
{
	int			natts;
	StringInfoData q;
	SPIExecuteOptions opts;
	SPIPlanPtr	plan;
	int			ret;

	/* one SELECT with the right columns (its own plan is not needed here) */
	plan = CrmInnerQueryPrepare(fname, sql, RetentionCohortColumns, 3, &natts, NULL);
	SPI_freeplan(plan);

	RetentionRollupCreateTable(r);

	initStringInfo(&q);
	/*
	 * Rows with a NULL entity are skipped before aggregation (as documented:
	 * their ts and amount are never looked at, so they cannot raise errors);
	 * RollupReceive also drops a NULL group should one ever arrive.
	 *
	 * sql passed CrmInnerQueryValidate, so "(sql\n)" is one subquery
	 * (inner_query.c explains why); CrmPrepareSelect checks that the
	 * whole text is one SELECT all the same, and RollupStartup checks the
	 * columns the receiver is handed.
	 */
	appendStringInfo(&q,
					 "SELECT crm_q.entity IS NULL,\n"
					 "       crm.cohort_activity(crm_q.ts::pg_catalog.timestamptz, %s, '%s'::pg_catalog.text)\n"
					 "  FROM (%s\n) AS crm_q(entity, ts%s)\n"
					 " WHERE crm_q.entity IS NOT NULL\n"
					 " GROUP BY crm_q.entity",
					 natts >= 3 ? "crm_q.amount::pg_catalog.numeric" : "NULL::pg_catalog.numeric",
					 RetentionPeriodNames[r->period], sql, natts >= 3 ? ", amount" : "");

	plan = CrmPrepareSelect(fname, q.data);

	r->pub.receiveSlot = RollupReceive;
	r->pub.rStartup = RollupStartup;
	r->pub.rShutdown = RollupShutdown;
	r->pub.rDestroy = RollupDestroy;
	r->pub.mydest = DestNone;
	r->fname = fname;
	r->rowtypes[0] = BOOLOID;
	r->rowtypes[1] = CohortStateTypeOid();

	memset(&opts, 0, sizeof(opts));
	opts.read_only = false;
	opts.tcount = 0;
	opts.dest = &r->pub;
	ret = SPI_execute_plan_extended(plan, &opts);
	if (ret < 0)
		elog(ERROR, "SPI_execute_plan_extended failed: %s", SPI_result_code_string(ret));
	SPI_freeplan(plan);
	pfree(q.data);
	return natts >= 3;
}

