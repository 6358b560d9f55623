/*
 * cohort_two_pass.c
 *      crm.cohort_retention in two passes over the inner query, used when
 *      crm_analytics.cohort_two_pass is on (docs/retention.md, "How it
 *      runs"); cohort_report.c falls back to the aggregate path
 *      (cohort_rollup.c) when this one does not apply or gives up.
 */
#include "retention.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* ========================================================================
 * cohort_retention in two passes (crm_analytics.cohort_two_pass)
 *
 * The per-entity aggregate keeps, for every entity, the list of periods it
 * was active in: a state per group in the executor's hash table, several
 * cache misses per row at a million entities.  When the entity is an
 * integer and at most 64 periods are reported, the report can instead read
 * the inner query twice: pass 1 finds each entity's first period (its
 * cohort) in a compact open-addressing table (24 bytes per entity), pass 2
 * adds every event to its cohort's counters and marks the period_no in the
 * entity's 64-bit set, so an entity counts once per period.  No list per
 * entity is kept.
 *
 * The two passes run with their own snapshots (as two statements do), so
 * pass 2 checks that it sees what pass 1 saw: every entity known, no event
 * before its entity's cohort, the same latest period (it bounds young
 * cohorts), and, at the end, every entity active in its cohort period.
 * Then the result is exactly the one of pass 2's data.  If
 * the check fails (rows changed between the passes, a volatile inner
 * query), or the table outgrows work_mem * hash_mem_multiplier, the report
 * runs the aggregate path instead.
 * ========================================================================
 */
typedef struct CohortEnt
{
	int64		key;
	int32		cohort;			/* period index of the first event */
	char		status;			/* simplehash's */
	uint64		seen;			/* pass 2: period_no 0..63 with an event */
} CohortEnt;

static inline uint32
CohortKeyHash(int64 key)
{
	return hash_combine(murmurhash32((uint32) key), murmurhash32((uint32) ((uint64) key >> 32)));
}

#define SH_PREFIX		cohortent
#define SH_ELEMENT_TYPE CohortEnt
#define SH_KEY_TYPE		int64
#define SH_KEY			key
#define SH_HASH_KEY(tb, k) CohortKeyHash(k)
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

#define COHORT_TWO_PASS_MAX_PERIODS 64
#define TWO_PASS_CHANGED "the inner query returned other rows in its second run"

/*
 * Rows wait in a small batch: the bucket of each row's entity is prefetched
 * when the row arrives and probed when the batch is full, so the cache
 * misses of a batch overlap instead of stalling one after the other.
 */
#define TWO_PASS_BATCH	32

typedef struct TwoPassRow
{
	int128		v;				/* amount scaled by 10^ds */
	int64		key;
	uint32		hash;
	int32		idx;			/* period index of ts */
	int			ds;				/* -1: no amount */
} TwoPassRow;

typedef struct TwoPassReceiver
{
	DestReceiver pub;
	RollupReceiver *r;
	int			pass;			/* 1 or 2 */
	Oid			enttype;		/* int2, int4 or int8 */
	bool		has_amount;
	const char *fname;			/* for errors */
	int			natts;			/* the inner query's columns, as checked */
	Oid			types[3];		/* their exact types (a domain's oid for a domain) */
	Oid			tsbase;			/* base types of ts and amount */
	Oid			amountbase;
	cohortent_hash *ents;
	Size		memlimit;
	const char *why;			/* set when the two-pass path gives up */
	int32		minc;			/* cohorts seen in pass 1 */
	int32		maxc;
	CohortAcc **acc;			/* pass 2: cohort's counters, by cohort - minc */
	bool		any2;			/* pass 2: a row was accepted */
	int32		maxidx2;		/* pass 2: latest period accepted (pass 1's is r->maxidx) */
	int			nrows;			/* rows waiting in batch */
	TwoPassRow	batch[TWO_PASS_BATCH];
} TwoPassReceiver;

/* pass 1, a batch: entity -> first period */
static void
TwoPassFlush1(TwoPassReceiver *t)
{
	int			i;

	for (i = 0; i < t->nrows && t->why == NULL; i++)
	{
		TwoPassRow *row = &t->batch[i];
		bool		found;
		CohortEnt  *e = cohortent_insert_hash(t->ents, row->key, row->hash, &found);

		if (!found)
		{
			e->cohort = row->idx;
			e->seen = 0;
			if ((Size) t->ents->size * sizeof(CohortEnt) > t->memlimit)
				t->why = "the table of entities outgrew work_mem * hash_mem_multiplier";
		}
		else if (row->idx < e->cohort)
			e->cohort = row->idx;
	}
	t->nrows = 0;
}

/* pass 2, a batch: every event into its entity's cohort counters */
static void
TwoPassFlush2(TwoPassReceiver *t)
{
	RollupReceiver *r = t->r;
	int			i;

	for (i = 0; i < t->nrows && t->why == NULL; i++)
	{
		TwoPassRow *row = &t->batch[i];
		CohortEnt  *e = cohortent_lookup_hash(t->ents, row->key, row->hash);
		int64		k;
		CohortAcc  *c;

		if (r->has_asof && row->idx > r->asof_idx)
		{
			/* ignored, but its amount's scale counts, as in the entity's state */
			if (e != NULL && row->ds > r->dscale)
				RetentionRollupRescale(r, row->ds);
			continue;
		}
		if (e == NULL || row->idx < e->cohort)
		{
			t->why = TWO_PASS_CHANGED;
			break;
		}
		if (row->ds > r->dscale)
			RetentionRollupRescale(r, row->ds);
		if (!t->any2 || row->idx > t->maxidx2)
			t->maxidx2 = row->idx;
		t->any2 = true;
		k = (int64) row->idx - e->cohort;
		if (k >= r->periods)
			continue;
		c = t->acc[e->cohort - t->minc];
		if (!(e->seen & (UINT64CONST(1) << k)))
		{
			e->seen |= UINT64CONST(1) << k;
			c->active[k]++;
		}
		if (row->ds >= 0)
			c->revenue[k] = RetentionAddChecked(c->revenue[k], RetentionRescale(row->v, row->ds, r->dscale));
	}
	t->nrows = 0;
}

static void
TwoPassFlush(TwoPassReceiver *t)
{
	if (t->nrows == 0)
		return;
	if (t->pass == 1)
		TwoPassFlush1(t);
	else
		TwoPassFlush2(t);
}

static void
TwoPassShutdown(DestReceiver *self)
{
	(void) self;
}

static void
TwoPassDestroy(DestReceiver *self)
{
	(void) self;
}

/* the two-pass receiver reads the inner query's own rows: the columns checked */
static void
TwoPassStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	TwoPassReceiver *t = (TwoPassReceiver *) self;

	(void) operation;
	CrmCheckResultDesc(t->fname, typeinfo, t->natts, t->types);
}

/* ts (of base type t->tsbase) as timestamptz, as ts::timestamptz would give */
static inline TimestampTz
TwoPassTs(TwoPassReceiver *t, Datum d)
{
	switch (t->tsbase)
	{
		case TIMESTAMPTZOID:
			return DatumGetTimestampTz(d);
		case TIMESTAMPOID:
			return DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz, d));
		case DATEOID:
			return DatumGetTimestampTz(DirectFunctionCall1(date_timestamptz, d));
	}
	elog(ERROR, "unexpected ts type %u", t->tsbase);
	return 0;					/* keep compiler quiet */
}

/* amount (of base type t->amountbase) scaled, as RetentionScaledFromNumeric(amount::numeric) */
static int128
TwoPassAmount(TwoPassReceiver *t, Datum d, int *ds)
{
	int128		v;
	MemoryContext old;

	switch (t->amountbase)
	{
		case NUMERICOID:
			return RetentionScaledFromNumeric(d, ds);
		case INT2OID:
		case INT4OID:
		case INT8OID:
			*ds = 0;
			return CrmIntKey(d, t->amountbase);
		case FLOAT4OID:
		case FLOAT8OID:
			old = MemoryContextSwitchTo(t->r->tmpcxt);
			v = RetentionScaledFromNumeric(DirectFunctionCall1(t->amountbase == FLOAT4OID ? float4_numeric : float8_numeric, d), ds);
			MemoryContextSwitchTo(old);
			MemoryContextReset(t->r->tmpcxt);
			return v;
	}
	elog(ERROR, "unexpected amount type %u", t->amountbase);
	return 0;					/* keep compiler quiet */
}

/* one row of either pass: decoded now, probed with its batch */
static bool
TwoPassReceive(TupleTableSlot *slot, DestReceiver *self)
{
	TwoPassReceiver *t = (TwoPassReceiver *) self;
	RollupReceiver *r = t->r;
	TwoPassRow *row = &t->batch[t->nrows];
	bool		isnull;
	Datum		d;

	d = slot_getattr(slot, 1, &isnull);
	if (isnull)
		return true;			/* NULL entity: the row is dropped */
	row->key = CrmIntKey(d, t->enttype);
	d = slot_getattr(slot, 2, &isnull);
	if (isnull)
		return true;			/* NULL ts: the row is ignored */
	row->idx = RetentionPeriodIndex(r->period, RetentionLocalJulianDay(TwoPassTs(t, d)));
	row->ds = -1;
	row->v = 0;
	if (t->pass == 1)
	{
		if (r->has_asof && row->idx > r->asof_idx)
			return true;
		if (!r->any || row->idx > r->maxidx)
			r->maxidx = row->idx;
		if (!r->any || row->idx < r->minidx)
			r->minidx = row->idx;
		r->any = true;
	}
	else if (t->has_amount)
	{
		d = slot_getattr(slot, 3, &isnull);
		if (!isnull)
			row->v = TwoPassAmount(t, d, &row->ds);
	}
	row->hash = CohortKeyHash(row->key);
	__builtin_prefetch(&t->ents->data[row->hash & t->ents->sizemask]);
	if (++t->nrows == TWO_PASS_BATCH)
	{
		TwoPassFlush(t);
		if (t->why != NULL)
			return false;
	}
	return true;
}

/*
 * Run pass t->pass over the inner query into t (pass 2 also reads the
 * amount).  plan is the inner query's own plan, prepared from its text
 * alone (CrmInnerQueryPrepare): nothing is wrapped around it, the
 * receiver drops NULL entities and casts ts and amount itself.
 */
static void
TwoPassRun(SPIPlanPtr plan, TwoPassReceiver *t)
{
	SPIExecuteOptions opts;
	int			ret;

	memset(&opts, 0, sizeof(opts));
	opts.read_only = false;
	opts.tcount = 0;
	opts.dest = &t->pub;
	ret = SPI_execute_plan_extended(plan, &opts);
	if (ret < 0)
		elog(ERROR, "SPI_execute_plan_extended failed: %s", SPI_result_code_string(ret));
	TwoPassFlush(t);
}

/*
 * cohort_retention's counters in r by the two-pass method; SPI must be
 * connected.  false when the method does not apply or gave up: r is then
 * partly filled, and the caller starts over with a new receiver.
 */
bool
RetentionTwoPassRollup(const char *fname, const char *sql, RollupReceiver *r, bool *has_amount)
{
	Oid			types[3];
	int			natts;
	SPIPlanPtr	plan;
	TwoPassReceiver t;
	MemoryContext old;
	cohortent_iterator it;
	CohortEnt  *e;
	int64		range;
	int32		cohort;

	if (!CrmCohortTwoPass || r->mode != ROLLUP_COHORTS || r->periods > COHORT_TWO_PASS_MAX_PERIODS)
		return false;
	plan = CrmInnerQueryPrepare(fname, sql, RetentionCohortColumns, 3, &natts, types);
	if (types[0] != INT2OID && types[0] != INT4OID && types[0] != INT8OID)
	{
		SPI_freeplan(plan);
		return false;
	}

	memset(&t, 0, sizeof(t));
	t.r = r;
	t.enttype = types[0];
	t.has_amount = natts >= 3;
	t.fname = fname;
	t.natts = natts;
	memcpy(t.types, types, sizeof(Oid) * natts);
	t.tsbase = getBaseType(types[1]);
	t.amountbase = t.has_amount ? getBaseType(types[2]) : InvalidOid;
	t.memlimit = get_hash_memory_limit();
	t.pub.receiveSlot = TwoPassReceive;
	t.pub.rStartup = TwoPassStartup;
	t.pub.rShutdown = TwoPassShutdown;
	t.pub.rDestroy = TwoPassDestroy;
	t.pub.mydest = DestNone;

	old = MemoryContextSwitchTo(r->cxt);
	t.ents = cohortent_create(r->cxt, 1024, NULL);
	MemoryContextSwitchTo(old);

	t.pass = 1;
	TwoPassRun(plan, &t);

	if (t.why == NULL)
	{
		/* the cohorts: sizes now, counters filled by pass 2 */
		t.minc = PG_INT32_MAX;
		t.maxc = PG_INT32_MIN;
		cohortent_start_iterate(t.ents, &it);
		while ((e = cohortent_iterate(t.ents, &it)) != NULL)
		{
			t.minc = Min(t.minc, e->cohort);
			t.maxc = Max(t.maxc, e->cohort);
		}
		range = (t.ents->members == 0) ? 0 : (int64) t.maxc - t.minc + 1;
		if (range > (int64) t.ents->members + 4096)
			t.why = "the cohorts are spread too thin";
		else if ((Size) t.ents->size * sizeof(CohortEnt) + (Size) range * sizeof(CohortAcc *) +
				 (Size) Min(range, (int64) t.ents->members) * (sizeof(CohortAcc) + r->periods * (sizeof(int64) + sizeof(int128)))
				 > t.memlimit)
			t.why = "the cohort counters outgrow work_mem * hash_mem_multiplier";
		else
		{
			RetentionRollupCreateTable(r);
			t.acc = MemoryContextAllocZero(r->cxt, sizeof(CohortAcc *) * Max(range, 1));
			cohortent_start_iterate(t.ents, &it);
			while ((e = cohortent_iterate(t.ents, &it)) != NULL)
			{
				CohortAcc  *c = t.acc[e->cohort - t.minc];

				if (c == NULL)
				{
					bool		found;

					cohort = e->cohort;
					c = hash_search(r->table, &cohort, HASH_ENTER, &found);
					c->size = 0;
					c->cap = r->periods;
					c->used = r->periods;
					c->active = MemoryContextAllocZero(r->cxt, sizeof(int64) * r->periods);
					c->revenue = MemoryContextAllocZero(r->cxt, sizeof(int128) * r->periods);
					t.acc[e->cohort - t.minc] = c;
				}
				c->size++;
			}
			t.pass = 2;
			TwoPassRun(plan, &t);
		}
	}
	if (t.why == NULL && (t.any2 != r->any || (r->any && t.maxidx2 != r->maxidx)))
		t.why = TWO_PASS_CHANGED;	/* the latest period moved */
	if (t.why == NULL)
	{
		/* every entity must have been seen in its cohort period again */
		cohortent_start_iterate(t.ents, &it);
		while ((e = cohortent_iterate(t.ents, &it)) != NULL)
			if (!(e->seen & 1))
			{
				t.why = TWO_PASS_CHANGED;
				break;
			}
	}
	SPI_freeplan(plan);
	if (t.why != NULL)
	{
		ereport(DEBUG1,
				(errmsg_internal("two-pass method of %s not used: %s", fname, t.why)));
		return false;
	}
	cohortent_destroy(t.ents);
	*has_amount = t.has_amount;
	return true;
}
