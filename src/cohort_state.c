/*
 * cohort_state.c
 *      crm.cohort_activity(ts, amount, period), the per-entity aggregate
 *      behind the cohort reports (docs/retention.md): the sorted set of
 *      periods the entity was active in, with order counts and exact
 *      revenue (128-bit fixed point, retention_money.c).  Runs in parallel
 *      and under Citus (COMBINEFUNC, real state type
 *      crm.cohort_activity_state with a text form), and
 *      crm.cohort_activity_periods(state), the periods inside a state.
 */
#include "retention.h"

#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(crm_cohort_activity_transfn);
PG_FUNCTION_INFO_V1(crm_cohort_activity_combinefn);
PG_FUNCTION_INFO_V1(crm_cohort_activity_state_in);
PG_FUNCTION_INFO_V1(crm_cohort_activity_state_out);
PG_FUNCTION_INFO_V1(crm_cohort_activity_periods);

/* ========================================================================
 * crm.cohort_activity: per-entity activity
 *
 * A state is a flat varlena updated in place (a million entities means a
 * million states in one hash table, so each is one small allocation with
 * no pointer to follow):
 *
 *     [varlena header][magic "CHA2"][CohortHeader][entries][zeroed slack]
 *
 * nentries entries sorted by period index (strictly increasing), revenue
 * scaled by 10^dscale.  Narrow entries (12 bytes: the period as an int16
 * offset from the header's base, uint16 orders, int64 revenue) are used
 * while every value fits, so a typical customer's state is one 128-byte
 * chunk; a state whose values outgrow them turns wide (32 bytes: int32
 * period, int64 orders, int128 revenue), so sums stay exact to 128 bits.
 * The slack after the entries is room to grow in place; VARSIZE covers it.
 * 0.1.0 wrote "CHA1" states (16-byte header, wide entries, no slack); they
 * are still read (a state may be stored in a table).
 *
 * The transition function returns the same pointer while the state has
 * room; when it must grow it returns a bigger copy in the per-call context,
 * which nodeAgg copies into the aggregate context, freeing the old one.
 * ========================================================================
 */

/* the header of 0.1.0's "CHA1" states */
typedef struct CohortHeaderV1
{
	int32		period;
	int32		dscale;
	int32		nentries;
	int32		reserved;
} CohortHeaderV1;

/* narrow entry (4-byte aligned) */
typedef struct CohortNarrow
{
	int16		off;			/* period index - base */
	uint16		orders;
	uint32		rev_lo;			/* revenue, an int64 in two halves */
	int32		rev_hi;
} CohortNarrow;

static inline int64
NarrowRevenue(const CohortNarrow *e)
{
	return (int64) (((uint64) (uint32) e->rev_hi << 32) | e->rev_lo);
}

static inline void
NarrowSetRevenue(CohortNarrow *e, int64 v)
{
	e->rev_lo = (uint32) ((uint64) v & 0xFFFFFFFF);
	e->rev_hi = (int32) (uint32) ((uint64) v >> 32);
}

/* entries start after the header: narrow at once, wide MAXALIGNed */
#define COHORT_ENTOFF(wide)	((wide) ? MAXALIGN(sizeof(CohortHeader)) : sizeof(CohortHeader))
#define COHORT_PREFIX(wide)	(CRM_STATE_FLAT_HDRSZ + COHORT_ENTOFF(wide))
#define COHORT_ESIZE(wide)	((wide) ? sizeof(CohortEntry) : sizeof(CohortNarrow))
#define COHORT_MIN_BYTES	128		/* a new state: 9 narrow entries */

/* check a payload (CohortHeader, entries, slack) before trusting it */
static const CohortHeader *
CohortCheckPayload(const char *payload, Size len)
{
	const CohortHeader *h = (const CohortHeader *) payload;

	if (len < MAXALIGN(sizeof(CohortHeader)) ||
		h->nentries < 0 || (h->wide != 0 && h->wide != 1) ||
		(Size) h->nentries > (len - COHORT_ENTOFF(h->wide)) / COHORT_ESIZE(h->wide) ||
		h->period < 0 || h->period >= NUM_PERIODS ||
		h->dscale < 0 || h->dscale > COHORT_MAX_SCALE)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.cohort_activity_state of %zu bytes", len)));
	return h;
}

/* read-only, validated payload of a state datum (flat, packed, toasted or "CHA1") */
const CohortHeader *
RetentionCohortPayload(Datum d)
{
	struct varlena *v = PG_DETOAST_DATUM(d);
	uint32		magic;
	Size		len;
	char	   *p;

	if (VARSIZE(v) < CRM_STATE_FLAT_HDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.cohort_activity_state: %u bytes is too short", (unsigned) VARSIZE(v))));
	memcpy(&magic, VARDATA(v), sizeof(uint32));
	len = VARSIZE(v) - CRM_STATE_FLAT_HDRSZ;
	p = (char *) v + CRM_STATE_FLAT_HDRSZ;
	if (magic == CRM_MAGIC_COHORT_V1)
	{
		/* 0.1.0: 16-byte header, wide entries, exact length */
		CohortHeaderV1 old;
		char	   *copy;
		CohortHeader *h;

		if (len < sizeof(CohortHeaderV1))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid crm.cohort_activity_state of %zu bytes", len)));
		memcpy(&old, p, sizeof(old));
		if (old.nentries < 0 || old.reserved != 0 ||
			old.period < 0 || old.period >= NUM_PERIODS ||
			old.dscale < 0 || old.dscale > COHORT_MAX_SCALE ||
			(len - sizeof(CohortHeaderV1)) != (Size) old.nentries * sizeof(CohortEntry))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid crm.cohort_activity_state of %zu bytes", len)));
		copy = palloc(MAXALIGN(sizeof(CohortHeader)) + len - sizeof(CohortHeaderV1));
		h = (CohortHeader *) copy;
		memset(h, 0, MAXALIGN(sizeof(CohortHeader)));
		h->nentries = old.nentries;
		h->period = (int16) old.period;
		h->dscale = (int8) old.dscale;
		h->wide = 1;
		memcpy(copy + MAXALIGN(sizeof(CohortHeader)), p + sizeof(CohortHeaderV1), len - sizeof(CohortHeaderV1));
		return CohortCheckPayload(copy, MAXALIGN(sizeof(CohortHeader)) + len - sizeof(CohortHeaderV1));
	}
	if (magic != CRM_MAGIC_COHORT)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm_analytics state: wrong state type")));
	return CohortCheckPayload(p, len);
}

static inline char *
CohortEntries(const CohortHeader *h)
{
	return (char *) h + COHORT_ENTOFF(h->wide);
}

/* the entries as wide entries (retention.h) */
const CohortEntry *
RetentionCohortWideEntries(const CohortHeader *h, CohortEntry **buf, int *bufcap, MemoryContext cxt)
{
	const CohortNarrow *ne;
	int			i;

	if (h->wide)
		return (const CohortEntry *) CohortEntries(h);
	if (h->nentries > *bufcap)
	{
		int			cap = Max(h->nentries, Max(*bufcap * 2, 16));

		if (*buf)
			pfree(*buf);
		*buf = MemoryContextAlloc(cxt, sizeof(CohortEntry) * cap);
		*bufcap = cap;
	}
	ne = (const CohortNarrow *) CohortEntries(h);
	for (i = 0; i < h->nentries; i++)
	{
		(*buf)[i].idx = h->base + ne[i].off;
		(*buf)[i].reserved = 0;
		(*buf)[i].orders = ne[i].orders;
		(*buf)[i].revenue = NarrowRevenue(&ne[i]);
	}
	return *buf;
}

/* one-off wide copy of the entries (palloc'd unless the payload is wide) */
static const CohortEntry *
CohortWideCopy(const CohortHeader *h)
{
	CohortEntry *buf = NULL;
	int			cap = 0;

	return RetentionCohortWideEntries(h, &buf, &cap, CurrentMemoryContext);
}

/* a writable state: the varlena and its parts */
typedef struct CohortState
{
	struct varlena *v;
	CohortHeader *h;
	int			cap;			/* entries that fit */
} CohortState;

/*
 * A new flat state in the current context holding header h and the first
 * h->nentries entries of ents (in h's layout), with room for cap entries.
 */
static void
CohortAlloc(CohortState *st, const CohortHeader *h, const char *ents, int cap)
{
	Size		esize = COHORT_ESIZE(h->wide);
	Size		bytes = COHORT_PREFIX(h->wide) + (Size) cap * esize;
	Size		used = COHORT_PREFIX(h->wide) + (Size) h->nentries * esize;
	uint32		magic = CRM_MAGIC_COHORT;

	Assert(cap >= h->nentries);
	if (bytes < COHORT_MIN_BYTES)
		bytes = COHORT_MIN_BYTES;
	if (!AllocSizeIsValid(bytes))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("crm.cohort_activity_state would exceed the maximum size"),
				 errhint("Aggregate per entity: GROUP BY the entity.")));
	st->v = (struct varlena *) palloc(bytes);
	SET_VARSIZE(st->v, bytes);
	memcpy(VARDATA(st->v), &magic, sizeof(uint32));
	st->h = (CohortHeader *) ((char *) st->v + CRM_STATE_FLAT_HDRSZ);
	memset(st->h, 0, COHORT_ENTOFF(h->wide));
	memcpy(st->h, h, sizeof(CohortHeader));
	if (h->nentries > 0)
		memcpy(CohortEntries(st->h), ents, (Size) h->nentries * esize);
	memset((char *) st->v + used, 0, bytes - used);		/* the slack is stored and sent too */
	st->cap = (int) ((bytes - COHORT_PREFIX(h->wide)) / esize);
}

/* room for one more entry (a bigger copy when full) */
static void
CohortMakeRoom(CohortState *st)
{
	Size		bytes;

	if (st->h->nentries < st->cap)
		return;
	bytes = VARSIZE(st->v) * 2;
	CohortAlloc(st, st->h, CohortEntries(st->h),
				(int) ((bytes - COHORT_PREFIX(st->h->wide)) / COHORT_ESIZE(st->h->wide)));
}

/*
 * The writable state of argument argno of an aggregate support function for
 * period (a new one when NULL).  Our own flat state, passed back by nodeAgg,
 * is used in place; anything else (stored, packed, toasted, "CHA1") is
 * copied first.
 */
static void
CohortStateArg(FunctionCallInfo fcinfo, int argno, CohortPeriod period, CohortState *st)
{
	struct varlena *v;
	const CohortHeader *h;
	uint32		magic;

	if (PG_ARGISNULL(argno))
	{
		CohortHeader nh;

		memset(&nh, 0, sizeof(nh));
		nh.period = period;
		CohortAlloc(st, &nh, NULL, 0);
		return;
	}
	v = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno));
	if (!VARATT_IS_EXTENDED(v) && VARSIZE(v) >= COHORT_PREFIX(true) &&
		(memcpy(&magic, VARDATA(v), sizeof(uint32)), magic == CRM_MAGIC_COHORT))
	{
		h = CohortCheckPayload((char *) v + CRM_STATE_FLAT_HDRSZ, VARSIZE(v) - CRM_STATE_FLAT_HDRSZ);
		st->v = v;
		st->h = (CohortHeader *) h;
		st->cap = (int) ((VARSIZE(v) - COHORT_PREFIX(h->wide)) / COHORT_ESIZE(h->wide));
	}
	else
	{
		h = RetentionCohortPayload(PointerGetDatum(v));
		CohortAlloc(st, h, CohortEntries(h), h->nentries + 4);
	}
	if (st->h->period != (int32) period)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("got period \"%s\" and \"%s\" in one group",
						RetentionPeriodNames[st->h->period], RetentionPeriodNames[period]),
				 errhint("Pass the same period on every row."),
				 errcontext("in crm.cohort_activity")));
}

/* turn a narrow state wide (a copy) */
static void
CohortWiden(CohortState *st)
{
	CohortHeader nh = *st->h;
	const CohortEntry *wide;

	if (st->h->wide)
		return;
	wide = CohortWideCopy(st->h);
	nh.wide = 1;
	nh.base = 0;
	CohortAlloc(st, &nh, (const char *) wide, nh.nentries + 4);
}

/* bring the whole state to dscale ds (ds >= current), widening if needed */
static void
CohortRescale(CohortState *st, int ds)
{
	int			i;

	if (ds <= st->h->dscale)
		return;
	if (!st->h->wide)
	{
		CohortNarrow *ne = (CohortNarrow *) CohortEntries(st->h);

		for (i = 0; i < st->h->nentries; i++)
		{
			int128		r = RetentionRescale(NarrowRevenue(&ne[i]), st->h->dscale, ds);

			if (r < PG_INT64_MIN || r > PG_INT64_MAX)
			{
				CohortWiden(st);
				break;
			}
		}
		if (!st->h->wide)
		{
			for (i = 0; i < st->h->nentries; i++)
				NarrowSetRevenue(&ne[i], (int64) RetentionRescale(NarrowRevenue(&ne[i]), st->h->dscale, ds));
			st->h->dscale = (int8) ds;
			return;
		}
	}
	{
		CohortEntry *we = (CohortEntry *) CohortEntries(st->h);

		for (i = 0; i < st->h->nentries; i++)
			we[i].revenue = RetentionRescale(we[i].revenue, st->h->dscale, ds);
		st->h->dscale = (int8) ds;
	}
}

/* period index of entry i */
static inline int32
CohortIdxAt(const CohortHeader *h, const char *ents, int i)
{
	if (h->wide)
		return ((const CohortEntry *) ents)[i].idx;
	return h->base + ((const CohortNarrow *) ents)[i].off;
}

/* position of period idx among the entries, and whether it is there */
static inline int
CohortFind(const CohortHeader *h, int32 idx, bool *found)
{
	const char *ents = CohortEntries(h);
	int			n = h->nentries;
	int			lo = 0,
				hi = n;

	if (n > 0 && CohortIdxAt(h, ents, n - 1) <= idx)
	{
		*found = CohortIdxAt(h, ents, n - 1) == idx;
		return *found ? n - 1 : n;
	}
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (CohortIdxAt(h, ents, mid) < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < n && CohortIdxAt(h, ents, lo) == idx;
	return lo;
}

/*
 * Add orders events and revenue (scaled to the state's dscale) to period
 * idx, inserting the entry in order when missing.  A narrow state turns
 * wide when the period is too far from its base or a value does not fit.
 */
static void
CohortAdd(CohortState *st, int32 idx, int64 orders, int128 revenue)
{
	bool		found;
	int			pos;

	if (!st->h->wide)
	{
		int64		off;

		if (st->h->nentries == 0)
			st->h->base = idx;
		off = (int64) idx - st->h->base;
		if (off < PG_INT16_MIN || off > PG_INT16_MAX)
			CohortWiden(st);
	}
	pos = CohortFind(st->h, idx, &found);
	if (!found)
	{
		Size		esize;
		char	   *ents;

		CohortMakeRoom(st);
		esize = COHORT_ESIZE(st->h->wide);
		ents = CohortEntries(st->h);
		if (pos < st->h->nentries)
			memmove(ents + (pos + 1) * esize, ents + pos * esize, (st->h->nentries - pos) * esize);
		memset(ents + pos * esize, 0, esize);
		if (st->h->wide)
			((CohortEntry *) ents)[pos].idx = idx;
		else
			((CohortNarrow *) ents)[pos].off = (int16) (idx - st->h->base);
		st->h->nentries++;
	}
	if (!st->h->wide)
	{
		CohortNarrow *e = &((CohortNarrow *) CohortEntries(st->h))[pos];
		int64		r;

		if (orders <= PG_UINT16_MAX - e->orders &&
			revenue >= PG_INT64_MIN && revenue <= PG_INT64_MAX &&
			!__builtin_add_overflow(NarrowRevenue(e), (int64) revenue, &r))
		{
			e->orders += (uint16) orders;
			NarrowSetRevenue(e, r);
			return;
		}
		CohortWiden(st);
	}
	{
		CohortEntry *e = &((CohortEntry *) CohortEntries(st->h))[pos];

		if (__builtin_add_overflow(e->orders, orders, &e->orders))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("too many events in one period"),
					 errcontext("in crm.cohort_activity")));
		e->revenue = RetentionAddChecked(e->revenue, revenue);
	}
}

/*
 * Replace the entries of st with n wide entries at dscale ds, narrow when
 * every value fits; in place when there is room.
 */
static void
CohortStore(CohortState *st, const CohortEntry *ents, int n, int ds)
{
	CohortHeader nh = *st->h;
	int			i;
	bool		narrow = true;

	for (i = 0; i < n && narrow; i++)
		narrow = ents[i].orders <= PG_UINT16_MAX &&
			(int64) ents[i].idx - ents[0].idx <= PG_INT16_MAX &&
			ents[i].revenue >= PG_INT64_MIN && ents[i].revenue <= PG_INT64_MAX;
	nh.nentries = 0;
	nh.dscale = (int8) ds;
	nh.wide = narrow ? 0 : 1;
	nh.base = (narrow && n > 0) ? ents[0].idx : 0;
	if (nh.wide != st->h->wide ||
		n > (int) ((VARSIZE(st->v) - COHORT_PREFIX(nh.wide)) / COHORT_ESIZE(nh.wide)))
		CohortAlloc(st, &nh, NULL, n + 4);
	else
		*st->h = nh;
	st->cap = (int) ((VARSIZE(st->v) - COHORT_PREFIX(nh.wide)) / COHORT_ESIZE(nh.wide));
	if (narrow)
	{
		CohortNarrow *ne = (CohortNarrow *) CohortEntries(st->h);

		for (i = 0; i < n; i++)
		{
			ne[i].off = (int16) (ents[i].idx - nh.base);
			ne[i].orders = (uint16) ents[i].orders;
			NarrowSetRevenue(&ne[i], (int64) ents[i].revenue);
		}
	}
	else
		memcpy(CohortEntries(st->h), ents, sizeof(CohortEntry) * n);
	st->h->nentries = n;
}

/* per-call cache of the transition function: time zone and period */
typedef struct CohortCallCache
{
	int			periodlen;		/* -1: not parsed yet */
	char		periodtext[8];
	CohortPeriod period;
} CohortCallCache;

/* the period argument, parsed once per distinct value */
static CohortPeriod
CachedPeriod(CohortCallCache *cc, text *t)
{
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len != cc->periodlen || memcmp(VARDATA_ANY(t), cc->periodtext, len) != 0)
	{
		cc->period = RetentionParsePeriod(t);	/* errors on anything but a period name */
		if (len <= (int) sizeof(cc->periodtext))
		{
			memcpy(cc->periodtext, VARDATA_ANY(t), len);
			cc->periodlen = len;
		}
	}
	return cc->period;
}

/*
 * crm.cohort_activity transition: one event (ts, amount) of the entity.
 * NULL ts: the row is ignored.  NULL amount: the row counts as activity
 * and adds no revenue.  Negative amounts (refunds) are added as they are.
 */
Datum
crm_cohort_activity_transfn(PG_FUNCTION_ARGS)
{
	CohortCallCache *cc = (CohortCallCache *) fcinfo->flinfo->fn_extra;
	CohortState st;
	CohortPeriod period;
	int32		idx;
	int128		v = 0;

	(void) CrmAggContext(fcinfo, "crm.cohort_activity");
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("period must not be null"),
				 errhint("Valid periods are day, week, month, quarter, year."),
				 errcontext("in crm.cohort_activity")));
	if (cc == NULL)
	{
		cc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CohortCallCache));
		cc->periodlen = -1;
		fcinfo->flinfo->fn_extra = cc;
	}
	period = CachedPeriod(cc, PG_GETARG_TEXT_PP(3));
	CohortStateArg(fcinfo, 0, period, &st);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(st.v);

	idx = RetentionPeriodIndex(period, RetentionLocalJulianDay(PG_GETARG_TIMESTAMPTZ(1)));
	if (!PG_ARGISNULL(2))
	{
		int			ds;

		v = RetentionScaledFromNumeric(PG_GETARG_DATUM(2), &ds);
		if (ds > st.h->dscale)
			CohortRescale(&st, ds);
		else
			v = RetentionRescale(v, ds, st.h->dscale);
	}
	CohortAdd(&st, idx, 1, v);
	PG_RETURN_POINTER(st.v);
}

/* merge two per-entity states (sorted merge of their periods) */
Datum
crm_cohort_activity_combinefn(PG_FUNCTION_ARGS)
{
	CohortState st;
	const CohortHeader *rh;
	const CohortEntry *re;
	const CohortEntry *le;
	CohortEntry *merged;
	int			ds;
	int			i = 0,
				j = 0,
				n = 0;
	int			ln;

	(void) CrmAggContext(fcinfo, "crm.cohort_activity");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		rh = RetentionCohortPayload(PG_GETARG_DATUM(0));
		CohortStateArg(fcinfo, 0, (CohortPeriod) rh->period, &st);
		PG_RETURN_POINTER(st.v);
	}
	rh = RetentionCohortPayload(PG_GETARG_DATUM(1));
	CohortStateArg(fcinfo, 0, (CohortPeriod) rh->period, &st);
	if (rh->nentries == 0)
	{
		/* nothing to add; only the scale may grow */
		CohortRescale(&st, rh->dscale);
		PG_RETURN_POINTER(st.v);
	}
	re = CohortWideCopy(rh);
	le = CohortWideCopy(st.h);
	ln = st.h->nentries;
	ds = Max(st.h->dscale, rh->dscale);

	merged = palloc(sizeof(CohortEntry) * ((Size) ln + rh->nentries));
	while (i < ln || j < rh->nentries)
	{
		if ((n & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		if (j >= rh->nentries || (i < ln && le[i].idx < re[j].idx))
		{
			merged[n] = le[i++];
			merged[n].revenue = RetentionRescale(merged[n].revenue, st.h->dscale, ds);
		}
		else if (i >= ln || re[j].idx < le[i].idx)
		{
			merged[n] = re[j++];
			merged[n].revenue = RetentionRescale(merged[n].revenue, rh->dscale, ds);
		}
		else
		{
			merged[n] = le[i];
			if (__builtin_add_overflow(le[i].orders, re[j].orders, &merged[n].orders))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("too many events in one period"),
						 errcontext("in crm.cohort_activity")));
			merged[n].revenue = RetentionAddChecked(RetentionRescale(le[i].revenue, st.h->dscale, ds),
										   RetentionRescale(re[j].revenue, rh->dscale, ds));
			i++, j++;
		}
		merged[n].reserved = 0;
		n++;
	}
	CohortStore(&st, merged, n, ds);
	PG_RETURN_POINTER(st.v);
}

/* "2025-03-01" (years below 1 as astronomical numbers, e.g. "-0044-03-01") */
static void
AppendDate(StringInfo buf, int32 jd)
{
	int			y,
				m,
				d;

	j2date(jd, &y, &m, &d);
	if (y < 0)
		appendStringInfo(buf, "-%04d-%02d-%02d", -y, m, d);
	else
		appendStringInfo(buf, "%04d-%02d-%02d", y, m, d);
}

/* text form of a payload: "month;2025-01-01,3,150.50;2025-03-01,1,20.00" */
static char *
CohortPayloadToCString(const CohortHeader *h, const CohortEntry *ents)
{
	StringInfoData buf;
	char		num[64];
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, RetentionPeriodNames[h->period]);
	for (i = 0; i < h->nentries; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		appendStringInfoChar(&buf, ';');
		AppendDate(&buf, RetentionPeriodStartJd((CohortPeriod) h->period, ents[i].idx));
		appendStringInfoChar(&buf, ',');
		CrmTextWriteInt64(&buf, ents[i].orders);
		appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, RetentionScaledToCString(ents[i].revenue, h->dscale, num, sizeof(num)));
	}
	return buf.data;
}

Datum
crm_cohort_activity_state_out(PG_FUNCTION_ARGS)
{
	const CohortHeader *h = RetentionCohortPayload(PG_GETARG_DATUM(0));

	PG_RETURN_CSTRING(CohortPayloadToCString(h, CohortWideCopy(h)));
}

/*
 * A revenue value: an optionally signed decimal of up to 38 digits; *val is
 * its digits as an integer, *ndec the number of digits after the point.
 */
static void
ReadScaled(CrmTextReader *r, int128 *val, int *ndec)
{
	const char *start = r->p;
	bool		neg = CrmTextSkip(r, "-");
	bool		anydigit = false;
	int128		v = 0;

	*ndec = -1;					/* no point yet */
	for (;; r->p++)
	{
		char		c = *r->p;

		if (c >= '0' && c <= '9')
		{
			if (v > (I128_MAX - 9) / 10)
			{
				r->p = start;
				CrmTextError(r, "The revenue value is too large");
			}
			v = v * 10 + (c - '0');
			anydigit = true;
			if (*ndec >= 0)
				(*ndec)++;
		}
		else if (c == '.' && *ndec < 0)
			*ndec = 0;
		else
			break;
	}
	if (!anydigit)
	{
		r->p = start;
		CrmTextError(r, "Expected a revenue value");
	}
	if (*ndec < 0)
		*ndec = 0;
	*val = neg ? -v : v;
}

/* the period name the text starts with */
static CohortPeriod
ReadPeriodName(CrmTextReader *r)
{
	int			i;

	for (i = 0; i < NUM_PERIODS; i++)
	{
		const char *start = r->p;

		if (CrmTextSkip(r, RetentionPeriodNames[i]) && (*r->p == ';' || *r->p == '\0'))
			return (CohortPeriod) i;
		r->p = start;
	}
	CrmTextError(r, "Expected day, week, month, quarter or year");
	return PERIOD_MONTH;		/* keep compiler quiet */
}

/* "2025-03-01," as a period index of period (the date must start a period) */
static int32
ReadPeriodStart(CrmTextReader *r, CohortPeriod period)
{
	const char *start = r->p;
	int32		lo,
				hi,
				idx,
				jd;
	int			y,
				m,
				d;

	y = (int) CrmTextReadInt64(r, "year", -4713, 294276);
	CrmTextExpect(r, "-");
	m = (int) CrmTextReadInt64(r, "month", 1, 12);
	CrmTextExpect(r, "-");
	d = (int) CrmTextReadInt64(r, "day", 1, 31);
	CrmTextExpect(r, ",");
	jd = date2j(y, m, d);
	RetentionPeriodIndexBounds(period, &lo, &hi);
	idx = (jd < 0) ? lo - 1 : RetentionPeriodIndex(period, jd);
	if (idx < lo || idx > hi || RetentionPeriodStartJd(period, idx) != jd)
	{
		r->p = start;
		CrmTextError(r, "Expected the first day of a %s", RetentionPeriodNames[period]);
	}
	return idx;
}

/*
 * Read the text form (the one every version wrote).  Every field is
 * validated; the result is then printed again and must equal the input, so
 * the text form is canonical and round-trips exactly.
 */
Datum
crm_cohort_activity_state_in(PG_FUNCTION_ARGS)
{
	const char *all = PG_GETARG_CSTRING(0);
	CrmTextReader r;
	StringInfoData pay;
	CohortHeader h;
	char	   *again;
	size_t		same;

	CrmTextReaderInit(&r, all, "crm.cohort_activity_state");
	memset(&h, 0, sizeof(h));
	h.dscale = -1;
	h.period = ReadPeriodName(&r);
	initStringInfo(&pay);		/* the entries, wide */
	while (CrmTextSkip(&r, ";"))
	{
		CohortEntry e;
		const char *start = r.p;
		int			ndec;

		CHECK_FOR_INTERRUPTS();
		memset(&e, 0, sizeof(e));
		e.idx = ReadPeriodStart(&r, (CohortPeriod) h.period);
		if (h.nentries > 0 && e.idx <= ((CohortEntry *) pay.data)[h.nentries - 1].idx)
		{
			r.p = start;
			CrmTextError(&r, "Periods must be strictly increasing");
		}
		e.orders = CrmTextReadInt64(&r, "order count", 1, PG_INT64_MAX);
		CrmTextExpect(&r, ",");
		start = r.p;
		ReadScaled(&r, &e.revenue, &ndec);
		if (ndec > COHORT_MAX_SCALE)
		{
			r.p = start;
			CrmTextError(&r, "A revenue value has more than %d decimal places", COHORT_MAX_SCALE);
		}
		if (h.dscale >= 0 && ndec != h.dscale)
		{
			r.p = start;
			CrmTextError(&r, "Every revenue value must have the same number of decimal places");
		}
		h.dscale = ndec;
		appendBinaryStringInfo(&pay, (char *) &e, sizeof(e));
		h.nentries++;
	}
	CrmTextExpectEnd(&r);
	if (h.dscale < 0)
		h.dscale = 0;
	h.wide = 1;

	again = CohortPayloadToCString(&h, (const CohortEntry *) pay.data);
	for (same = 0; again[same] != '\0' && again[same] == all[same]; same++)
		;
	if (again[same] != all[same])
	{
		r.p = all + same;
		CrmTextError(&r, "Not in canonical form, which is \"%s\"", again);
	}
	{
		CohortState st;
		CohortHeader nh = h;

		nh.nentries = 0;
		nh.wide = 0;
		CohortAlloc(&st, &nh, NULL, h.nentries);
		CohortStore(&st, (const CohortEntry *) pay.data, h.nentries, h.dscale);
		PG_RETURN_POINTER(st.v);
	}
}

/*
 * crm.cohort_activity_periods(state) -> TABLE(period_start date, orders bigint,
 * revenue numeric): the periods an entity was active in.
 */
Datum
crm_cohort_activity_periods(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const CohortHeader *h;
	const CohortEntry *ents;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	h = RetentionCohortPayload(PG_GETARG_DATUM(0));
	ents = CohortWideCopy(h);
	for (i = 0; i < h->nentries; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		values[0] = DateADTGetDatum(RetentionPeriodStartDate((CohortPeriod) h->period, ents[i].idx));
		values[1] = Int64GetDatum(ents[i].orders);
		values[2] = NumericGetDatum(RetentionNumericFromScaled(ents[i].revenue, h->dscale));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

