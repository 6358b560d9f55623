/*
 * funnel.c
 *      Sales funnel (PRODUCT.md section 1): the aggregates crm.window_funnel
 *      (both contract overloads and their fixed-arity twins of 1 to 12
 *      steps), crm.window_funnel_times and crm.funnel_counts, their
 *      state types crm.window_funnel_state and crm.funnel_counts_state, and
 *      the step-flag helper used by crm.funnel_report.
 *
 * window_funnel keeps, per group, one 16-byte entry (ts, step mask) for
 * every row that matches at least one step (plus, in strict_order mode, the
 * rows that match none), appended in place to one flat varlena (FunnelFlat)
 * that is one allocator chunk per group.  Partial states
 * are concatenated by the combine function; the final function sorts the
 * entries by time and scans them once, group of equal timestamps by group
 * of equal timestamps, so the answer never depends on the input order.
 *
 * Semantics (docs/funnel.md has the long form):
 *   a chain is a sequence of events e1..ek, e_j matching step j, in the order
 *   of (ts, step index), every ts within window of ts(e1) (bound inclusive);
 *   the level is the largest k reached by a chain.  strict_increase requires
 *   strictly increasing timestamps, strict_once distinct rows; these two are
 *   computed exactly (not by ClickHouse's greedy scan).  strict_order and
 *   strict_deduplication end the scan at an event, as in ClickHouse.
 */
#include "crm_analytics.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "nodes/primnodes.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "common/hashfn.h"
#include "common/int.h"

PG_FUNCTION_INFO_V1(funnel_window_transfn);
PG_FUNCTION_INFO_V1(funnel_window_mode_transfn);
PG_FUNCTION_INFO_V1(funnel_window_args_transfn);
PG_FUNCTION_INFO_V1(funnel_window_mode_args_transfn);
PG_FUNCTION_INFO_V1(funnel_window_names_transfn);
PG_FUNCTION_INFO_V1(funnel_window_mode_names_transfn);
PG_FUNCTION_INFO_V1(funnel_window_combinefn);
PG_FUNCTION_INFO_V1(funnel_window_finalfn);
PG_FUNCTION_INFO_V1(funnel_window_times_finalfn);
PG_FUNCTION_INFO_V1(funnel_window_state_in);
PG_FUNCTION_INFO_V1(funnel_window_state_out);
PG_FUNCTION_INFO_V1(funnel_counts_transfn);
PG_FUNCTION_INFO_V1(funnel_counts_combinefn);
PG_FUNCTION_INFO_V1(funnel_counts_finalfn);
PG_FUNCTION_INFO_V1(funnel_counts_state_in);
PG_FUNCTION_INFO_V1(funnel_counts_state_out);
PG_FUNCTION_INFO_V1(funnel_step_flags);

#define FUNNEL_MAX_STEPS	64
#define FUNNEL_BIT(j)		(UINT64CONST(1) << (j))

/* mode flags */
#define FM_DEDUP		0x01		/* strict_deduplication */
#define FM_ORDER		0x02		/* strict_order */
#define FM_INCREASE		0x04		/* strict_increase */
#define FM_ONCE			0x08		/* strict_once */
#define FM_REENTRY		0x10		/* allow_reentry (with strict_order only) */
#define FM_ALL			0x1f

#define FUNNEL_MODE_WORDS "strict_deduplication, strict_order, strict_increase, strict_once, allow_reentry"

/* interrupts are checked every FUNNEL_CFI_EVERY events of a group */
#define FUNNEL_CFI_EVERY	4096
#define FUNNEL_CFI(i) \
	do { \
		if (((i) & (FUNNEL_CFI_EVERY - 1)) == 0) \
			CHECK_FOR_INTERRUPTS(); \
	} while (0)

/* a window_funnel state's parameters, in memory */
typedef struct FunnelHeader
{
	int32		nsteps;			/* 1..64 */
	uint32		flags;			/* FM_* */
	int64		window;			/* microseconds, >= 0 */
	uint64		steps_id;		/* identity of the step names (0: boolean steps) */
} FunnelHeader;

/* payload of a CRM_MAGIC_FUNNEL_V1 state: this header, then FunnelEvent[] */
typedef struct FunnelHeaderV1
{
	int32		nsteps;
	uint32		flags;
	int64		window;
} FunnelHeaderV1;

typedef struct FunnelEvent
{
	int64		ts;				/* finite timestamptz */
	uint64		mask;			/* bit j-1 set: the row matches step j */
} FunnelEvent;

/*
 * A window_funnel state: one flat varlena, updated in place.
 *
 *     FunnelFlat (24 bytes) | int64 ts[cap] | mask[cap]
 *
 * The varlena size is the capacity in bytes, a power of two (exactly one
 * allocator chunk); cap = (size - 24) / (8 + w) events, w the width of a
 * step mask (1, 2, 4 or 8 bytes for up to 8, 16, 32 or 64 steps), so a
 * 4-step funnel costs 9 bytes per matching row.  Events in use are counted
 * in the header; the unused tail is zeroed.  The transition function
 * appends in place while an event fits; when it does not, it returns a copy
 * twice as large, allocated in the per-row context, which nodeAgg copies into
 * the aggregate context (freeing the old one): growth costs two copies
 * log2(n) times and nothing per row.  One small allocation per group keeps
 * hash aggregation over a million entities compact.  The first chunk (128
 * bytes: 10 events of up to 8 steps) is allocated on the group's first row,
 * whatever it matches, in the memory context that has just received the
 * group's hash entry, so it usually sits right after it: as long as it does
 * not grow, reading it costs no cache miss of its own (measured: about 10% of
 * a 10M-row hash aggregation over 1M groups).
 *
 * The first 8 bytes are those of every crm_analytics state (varlena header,
 * magic); states of the older layouts CRM_MAGIC_FUNNEL_V1 (a FunnelHeaderV1 and
 * FunnelEvent pairs) and CRM_MAGIC_FUNNEL_V2 (the 24-byte header of 0.2.0,
 * without steps_id) are still read, e.g. from a table of partial states.
 */
typedef struct FunnelFlat
{
	int32		vl_len_;		/* varlena header: capacity in bytes */
	uint32		magic;			/* CRM_MAGIC_FUNNEL */
	int64		window;			/* microseconds, >= 0 */
	int16		nsteps;			/* 1..64 */
	uint16		flags;			/* FM_* */
	int32		nevents;		/* events in use */
	uint64		steps_id;		/* step-name form: hash of the step names; else 0 */
} FunnelFlat;

/* the 0.2.0 layout (CRM_MAGIC_FUNNEL_V2): the same without steps_id (24 bytes) */
typedef struct FunnelFlatV2
{
	int32		vl_len_;
	uint32		magic;
	int64		window;
	int16		nsteps;
	uint16		flags;
	int32		nevents;
} FunnelFlatV2;

#define FUNNEL_FLAT_HDRSZ	sizeof(FunnelFlat)
#define FUNNEL_FLAT_MIN		128	/* smallest capacity: 10 events of up to 8 steps */

/* bytes per step mask for nsteps steps */
static inline int
FunnelMaskWidth(int nsteps)
{
	return nsteps <= 8 ? 1 : nsteps <= 16 ? 2 : nsteps <= 32 ? 4 : 8;
}

/* events that fit in a state of size bytes */
static inline int64
FunnelCapacityAt(Size size, int w, Size hdrsz)
{
	Size		b;

	if (size < hdrsz)
		return 0;
	b = size - hdrsz;
	/* constant divisors: this runs on every appended row */
	switch (w)
	{
		case 1:
			return (int64) (b / (sizeof(int64) + 1));
		case 2:
			return (int64) (b / (sizeof(int64) + 2));
		case 4:
			return (int64) (b / (sizeof(int64) + 4));
		default:
			return (int64) (b / (sizeof(int64) + 8));
	}
}

static inline int64
FunnelCapacity(Size size, int w)
{
	return FunnelCapacityAt(size, w, FUNNEL_FLAT_HDRSZ);
}

static inline int64 *
FunnelTimes(FunnelFlat *st)
{
	return (int64 *) ((char *) st + FUNNEL_FLAT_HDRSZ);
}

static inline char *
FunnelMasks(FunnelFlat *st, int w)
{
	return (char *) st + FUNNEL_FLAT_HDRSZ + sizeof(int64) * FunnelCapacity(VARSIZE(st), w);
}

static inline uint64
FunnelMaskGet(const char *masks, int w, int64 i)
{
	switch (w)
	{
		case 1:
			return ((const uint8 *) masks)[i];
		case 2:
			return ((const uint16 *) masks)[i];
		case 4:
			return ((const uint32 *) masks)[i];
		default:
			return ((const uint64 *) masks)[i];
	}
}

static inline void
FunnelMaskSet(char *masks, int w, int64 i, uint64 mask)
{
	switch (w)
	{
		case 1:
			((uint8 *) masks)[i] = (uint8) mask;
			break;
		case 2:
			((uint16 *) masks)[i] = (uint16) mask;
			break;
		case 4:
			((uint32 *) masks)[i] = (uint32) mask;
			break;
		default:
			((uint64 *) masks)[i] = mask;
			break;
	}
}

/* payload of a funnel_counts state: header, then int64 hist[nsteps + 1] */
typedef struct FunnelCountsHeader
{
	int32		nsteps;
	int32		pad;
} FunnelCountsHeader;

/* per-call-site cache of the parsed mode text */
typedef struct FunnelModeCache
{
	int			len;
	uint32		flags;
	char		text[FLEXIBLE_ARRAY_MEMBER];
} FunnelModeCache;

/*
 * fn_extra of a window_funnel transition function: what the arguments that
 * are the same on every row (window, mode, step names) were last parsed to,
 * and whether the call context was checked, so that a row costs none of it.
 */
typedef struct FunnelCallCache
{
	bool		agg_checked;	/* AggCheckCallContext passed for this flinfo */
	bool		args_const;		/* window and mode are constants of the query */
	bool		have_window;
	Interval	window_iv;		/* the window argument last seen ... */
	int64		window_us;		/* ... and its length in microseconds */
	FunnelModeCache *mode;		/* the mode argument last seen, parsed */
	struct FunnelStepsCache *steps;	/* the step names last seen (text[] form) */
} FunnelCallCache;

static inline FunnelCallCache *
FunnelCache(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FunnelCallCache));
	return (FunnelCallCache *) fcinfo->flinfo->fn_extra;
}

/* ------------------------------------------------------------------------
 * argument checking
 * ------------------------------------------------------------------------
 */

/* interval -> microseconds (1 month = 30 days, 1 day = 24 h, as interval comparison does); saturates */
static int64
FunnelWindowUsec(FunctionCallInfo fcinfo, int argno)
{
	Interval   *iv;
	int64		days_us;
	int64		months_us;
	int64		total;
	FunnelCallCache *cc = FunnelCache(fcinfo);

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("window_funnel window must not be null"),
				 errhint("Pass an interval such as '30 days'.")));
	iv = PG_GETARG_INTERVAL_P(argno);
	if (cc->have_window && cc->window_iv.time == iv->time && cc->window_iv.day == iv->day &&
		cc->window_iv.month == iv->month)
		return cc->window_us;
	if (pg_mul_s64_overflow((int64) iv->month, INT64CONST(30) * USECS_PER_DAY, &months_us))
		months_us = iv->month < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	if (pg_mul_s64_overflow((int64) iv->day, USECS_PER_DAY, &days_us))
		days_us = iv->day < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	if (pg_add_s64_overflow(months_us, days_us, &total))
		total = months_us < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	if (pg_add_s64_overflow(total, iv->time, &total))
		total = iv->time < 0 ? PG_INT64_MIN : PG_INT64_MAX;
	if (total < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window_funnel window must not be negative"),
				 errhint("Pass a window of zero or more, such as '30 days'.")));
	cc->window_iv = *iv;
	cc->window_us = total;
	cc->have_window = true;
	return total;
}

/* parse "strict_order, strict_increase" into FM_* flags */
static uint32
FunnelParseMode(const char *s, int len)
{
	uint32		flags = 0;
	int			i = 0;

	while (i < len)
	{
		int			start;
		int			end;
		int			wl;
		const char *w;

		while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
			i++;
		start = i;
		while (i < len && s[i] != ',')
			i++;
		end = i;
		while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\n'))
			end--;
		w = s + start;
		wl = end - start;
		if (wl == 20 && strncmp(w, "strict_deduplication", 20) == 0)
			flags |= FM_DEDUP;
		else if (wl == 12 && strncmp(w, "strict_order", 12) == 0)
			flags |= FM_ORDER;
		else if (wl == 15 && strncmp(w, "strict_increase", 15) == 0)
			flags |= FM_INCREASE;
		else if (wl == 11 && strncmp(w, "strict_once", 11) == 0)
			flags |= FM_ONCE;
		else if (wl == 13 && strncmp(w, "allow_reentry", 13) == 0)
			flags |= FM_REENTRY;
		else if (wl == 0 && start == 0 && i >= len)
			break;				/* the empty mode '' (or blanks) */
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown window_funnel mode \"%.*s\"", wl, w),
					 errhint("The mode is '' or a comma-separated list of " FUNNEL_MODE_WORDS ".")));
		if (i < len)
		{
			i++;				/* skip the comma: a word must follow */
			if (i >= len)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown window_funnel mode \"\""),
						 errhint("The mode is '' or a comma-separated list of " FUNNEL_MODE_WORDS ".")));
		}
	}
	if ((flags & FM_REENTRY) && !(flags & FM_ORDER))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window_funnel mode allow_reentry requires strict_order"),
				 errhint("Use \"strict_order, allow_reentry\".")));
	return flags;
}

/* mode flags of argument argno, cached per call site */
static uint32
FunnelModeArg(FunctionCallInfo fcinfo, int argno)
{
	text	   *t;
	int			len;
	FunnelCallCache *cc = FunnelCache(fcinfo);
	FunnelModeCache *cache = cc->mode;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("window_funnel mode must not be null"),
				 errhint("Pass '' for the default mode.")));
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);
	if (cache != NULL && cache->len == len && memcmp(cache->text, VARDATA_ANY(t), len) == 0)
		return cache->flags;

	cache = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, offsetof(FunnelModeCache, text) + len + 1);
	cache->flags = FunnelParseMode(VARDATA_ANY(t), len);
	cache->len = len;
	memcpy(cache->text, VARDATA_ANY(t), len);
	cache->text[len] = '\0';
	if (cc->mode)
		pfree(cc->mode);
	cc->mode = cache;
	return cache->flags;
}

/* check the step count of a funnel: 1..64 */
static void
FunnelCheckSteps(int nsteps, const char *what)
{
	if (nsteps < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs at least 1 step", what),
				 errhint("Pass one boolean condition per funnel step.")));
	if (nsteps > FUNNEL_MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s supports at most %d steps, got %d", what, FUNNEL_MAX_STEPS, nsteps),
				 errhint("Merge steps or split the funnel in two.")));
}

/* step mask of a boolean[] argument (NULL elements are false); sets *nsteps */
static uint64
FunnelStepMask(ArrayType *arr, int *nsteps)
{
	int			n;
	bits8	   *nulls;
	const bool *vals;
	uint64		mask = 0;
	int			i;

	if (ARR_ELEMTYPE(arr) != BOOLOID)
		elog(ERROR, "window_funnel steps must be a boolean array");
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("window_funnel steps must be a one-dimensional array")));
	n = ARR_NDIM(arr) == 0 ? 0 : ARR_DIMS(arr)[0];
	FunnelCheckSteps(n, "window_funnel");
	*nsteps = n;
	nulls = ARR_NULLBITMAP(arr);
	vals = (const bool *) ARR_DATA_PTR(arr);
	if (nulls == NULL)
	{
		for (i = 0; i < n; i++)
			if (vals[i])
				mask |= UINT64CONST(1) << i;
	}
	else
	{
		int			k = 0;

		for (i = 0; i < n; i++)
		{
			if (nulls[i / 8] & (1 << (i % 8)))
			{
				if (vals[k])
					mask |= UINT64CONST(1) << i;
				k++;
			}
		}
	}
	return mask;
}

/* ------------------------------------------------------------------------
 * window_funnel transition and combine
 * ------------------------------------------------------------------------
 */

/*
 * A new state with header h and room for at least min_events events (a
 * power-of-two size unless exact), allocated in CurrentMemoryContext, holding
 * the first n events of src when src is not NULL.
 */
static FunnelFlat *
FunnelFlatNew(const FunnelHeader *h, int64 min_events, bool exact, FunnelFlat *src, int64 n)
{
	int			w = FunnelMaskWidth(h->nsteps);
	Size		size;
	FunnelFlat *st;

	/*
	 * The final function expands the events to FunnelEvents in one palloc,
	 * so that bounds a state too (it is the tighter limit for every width).
	 */
	if (min_events > (int64) ((MaxAllocSize - FUNNEL_FLAT_HDRSZ) / (sizeof(int64) + w)) ||
		min_events > (int64) (MaxAllocSize / sizeof(FunnelEvent)))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("window_funnel state would exceed the maximum size of %zu bytes",
						(Size) MaxAllocSize),
				 errhint("Aggregate over smaller groups (for example GROUP BY the entity).")));
	size = FUNNEL_FLAT_HDRSZ + (Size) min_events * (sizeof(int64) + w);
	if (!exact)
	{
		Size		cap = FUNNEL_FLAT_MIN;

		while (cap < size)
			cap *= 2;
		size = Min(cap, MaxAllocSize);
	}
	st = (FunnelFlat *) palloc0(size);
	SET_VARSIZE(st, size);
	st->magic = CRM_MAGIC_FUNNEL;
	st->window = h->window;
	st->nsteps = (int16) h->nsteps;
	st->flags = (uint16) h->flags;
	st->nevents = 0;
	st->steps_id = h->steps_id;
	if (src != NULL && n > 0)
	{
		memcpy(FunnelTimes(st), FunnelTimes(src), sizeof(int64) * n);
		memcpy(FunnelMasks(st, w), FunnelMasks(src, w), (Size) w * n);
		st->nevents = (int32) n;
	}
	return st;
}

/* the header of a state of the current layout */
static inline FunnelHeader
FunnelFlatHeader(const FunnelFlat *st)
{
	FunnelHeader h;

	h.nsteps = st->nsteps;
	h.flags = st->flags;
	h.window = st->window;
	h.steps_id = st->steps_id;
	return h;
}

/* append one event, growing (into a new copy) when full; returns the state */
static inline FunnelFlat *
FunnelFlatPush(FunnelFlat *st, int64 ts, uint64 mask)
{
	int			w = FunnelMaskWidth(st->nsteps);

	if (st->nevents >= FunnelCapacity(VARSIZE(st), w))
	{
		FunnelHeader h = FunnelFlatHeader(st);

		st = FunnelFlatNew(&h, (int64) st->nevents + 1, false, st, st->nevents);
	}
	FunnelTimes(st)[st->nevents] = ts;
	FunnelMaskSet(FunnelMasks(st, w), w, st->nevents, mask);
	st->nevents++;
	return st;
}

static bool FunnelRead(Datum d, FunnelHeader *h, FunnelEvent **events, int64 *nevents,
					   FunnelEvent *buf, int bufn);

#define FUNNEL_STACK_EVENTS 32

/*
 * The state argument argno of a transition or combine function, ready to be
 * appended to in place: the argument itself when it is a state of the
 * current layout (nodeAgg owns it in the aggregate context and hands it to
 * us only), otherwise a new copy; NULL when the argument is NULL or the
 * empty state.
 */
static FunnelFlat *
FunnelStateArg(FunctionCallInfo fcinfo, int argno)
{
	struct varlena *v;
	FunnelFlat *st;
	FunnelHeader h;
	FunnelEvent buf[FUNNEL_STACK_EVENTS];
	FunnelEvent *ev;
	int64		n;
	int64		i;

	if (PG_ARGISNULL(argno))
		return NULL;
	v = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno));
	st = (FunnelFlat *) v;
	if (VARATT_IS_4B_U(v) && VARSIZE(v) >= FUNNEL_FLAT_HDRSZ && ((uintptr_t) v) % MAXIMUM_ALIGNOF == 0 &&
		st->magic == CRM_MAGIC_FUNNEL && st->nsteps >= 1 && st->nsteps <= FUNNEL_MAX_STEPS &&
		st->nevents >= 0 && st->nevents <= FunnelCapacity(VARSIZE(v), FunnelMaskWidth(st->nsteps)))
		return st;
	if (!FunnelRead(PointerGetDatum(v), &h, &ev, &n, buf, FUNNEL_STACK_EVENTS))
		return NULL;			/* the empty state '' */
	st = FunnelFlatNew(&h, n, false, NULL, 0);
	for (i = 0; i < n; i++)
	{
		FUNNEL_CFI(i);
		st = FunnelFlatPush(st, ev[i].ts, ev[i].mask);
	}
	return st;
}

/*
 * One row, already reduced to its step mask, into the state: shared by every
 * transition function.  window and mode are checked on every row (they must
 * be the same on all rows of a group); a row with a NULL or infinite time, or
 * matching no step (outside strict_order), leaves the state as it is.
 * uniform: window, mode and step count (and the step names) are constants of
 * the call, so no row can disagree with the group's earlier ones.  steps_id:
 * the identity of the step names (step-name form), 0 for boolean steps; when
 * the call is not uniform it must be the same on every row of a group.
 */
static Datum
FunnelAppend(FunctionCallInfo fcinfo, int ts_arg, int nsteps, uint64 mask, int64 window, uint32 flags,
			 uint64 steps_id, bool uniform)
{
	FunnelFlat *st;
	TimestampTz ts;

	if (unlikely(nsteps < 1 || nsteps > FUNNEL_MAX_STEPS))
		FunnelCheckSteps(nsteps, "window_funnel");

	/*
	 * A row that matches no step (outside strict_order) cannot change the
	 * answer: when window, mode and step count are constants (so the row
	 * cannot disagree with the group's state either), return the state
	 * untouched, without reading it (in a hash aggregation over many groups,
	 * reading it is a cache miss).  The state itself is still created on the
	 * group's first row, whatever it matches: it is then allocated right
	 * after the group's hash entry, in the same memory block, where reading
	 * it later costs little.
	 */
	if (mask == 0 && uniform && !(flags & FM_ORDER) && !PG_ARGISNULL(0))
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));

	st = FunnelStateArg(fcinfo, 0);
	if (st == NULL)
	{
		FunnelHeader h;

		h.nsteps = nsteps;
		h.flags = flags;
		h.window = window;
		h.steps_id = steps_id;
		st = FunnelFlatNew(&h, 0, false, NULL, 0);
	}
	else
	{
		if (st->nsteps != nsteps)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("window_funnel got %d steps on one row and %d on another", st->nsteps, nsteps),
					 errhint("Every row of a group must pass the same number of steps.")));
		if (st->window != window || st->flags != flags)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("window_funnel window and mode must be the same on every row of a group")));
		/* constant step names cannot differ: compared only when they are not */
		if (!uniform && st->steps_id != steps_id)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("window_funnel_by_name got different step names on rows of one group"),
					 errhint("Every row of a group must pass the same steps array.")));
	}

	if (mask == 0 && !(flags & FM_ORDER))
		PG_RETURN_POINTER(st);
	if (PG_ARGISNULL(ts_arg))
		PG_RETURN_POINTER(st);
	ts = PG_GETARG_TIMESTAMPTZ(ts_arg);
	if (TIMESTAMP_NOT_FINITE(ts))
		PG_RETURN_POINTER(st);	/* infinite times are ignored like NULL */
	PG_RETURN_POINTER(FunnelFlatPush(st, ts, mask));
}

typedef struct FunnelStepsCache
{
	Size		arrsize;		/* bytes of the cached steps array ... */
	char	   *arrbytes;		/* ... and a copy of them */
	bool		constant;		/* the argument is a constant of the query */
	uint64		id;				/* hash of the names (never 0): their identity in a state */
	int			n;
	int		   *lens;			/* byte length of name k, -1 for a NULL element */
	uint64	   *heads;			/* its first (up to) 8 bytes, zero-padded */
	const char **names;			/* its bytes, inside arrbytes */
} FunnelStepsCache;

/* the first (up to) 8 bytes of a string as one zero-padded word */
static inline uint64
FunnelHead(const char *p, int len)
{
	uint64		h = 0;

	memcpy(&h, p, Min(len, 8));
	return h;
}

/*
 * Whether aggregated argument argno (0-based, as in the call) of the
 * aggregate whose transition function is running is a constant of the query
 * (after constant folding, ARRAY['a', 'b'] is one).
 */
static bool
FunnelAggArgIsConst(FunctionCallInfo fcinfo, int argno)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);
	TargetEntry *tle;

	if (aggref == NULL || aggref->aggdirectargs != NIL || argno >= list_length(aggref->args))
		return false;
	tle = list_nth_node(TargetEntry, aggref->args, argno);
	return IsA(tle->expr, Const);
}

/*
 * The step names of a text[] argument, parsed once per call site and kept in
 * *slot (in fn_mcxt), parsed again whenever the array's bytes change.
 * constant is set when the argument is aggregated argument const_argno (-1:
 * not an aggregate's) and a constant of the query: the caller then need not
 * call again.
 */
static FunnelStepsCache *
FunnelStepsArg(FunctionCallInfo fcinfo, FunnelStepsCache **slot, ArrayType *arr, int const_argno,
			   const char *what)
{
	FunnelStepsCache *c = *slot;
	MemoryContext old;
	Datum	   *names;
	bool	   *nulls;
	int			i;

	if (c != NULL && c->arrsize == VARSIZE(arr) && memcmp(c->arrbytes, arr, c->arrsize) == 0)
		return c;
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s steps must be a one-dimensional array", what)));
	if (c != NULL)
	{
		pfree(c->arrbytes);
		pfree(c->lens);
		pfree(c->heads);
		pfree(c->names);
		pfree(c);
		*slot = NULL;
	}
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	c = palloc0(sizeof(FunnelStepsCache));
	c->arrsize = VARSIZE(arr);
	c->arrbytes = palloc(c->arrsize);
	memcpy(c->arrbytes, arr, c->arrsize);
	/* the names point into our copy, which lives as long as the cache */
	deconstruct_array((ArrayType *) c->arrbytes, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &c->n);
	c->lens = palloc(sizeof(int) * Max(c->n, 1));
	c->heads = palloc0(sizeof(uint64) * Max(c->n, 1));
	c->names = palloc0(sizeof(char *) * Max(c->n, 1));
	for (i = 0; i < c->n; i++)
	{
		text	   *t;

		c->lens[i] = -1;
		if (nulls[i])
			continue;
		t = (text *) DatumGetPointer(names[i]);
		if (VARATT_IS_EXTENDED(t))
			t = pg_detoast_datum_packed(t);
		c->lens[i] = VARSIZE_ANY_EXHDR(t);
		c->names[i] = VARDATA_ANY(t);
		c->heads[i] = FunnelHead(c->names[i], c->lens[i]);
	}
	/* identity of the names: length and bytes of each, NULL elements marked */
	c->id = hash_bytes_uint32_extended((uint32) c->n, UINT64CONST(0x46756e6e656c));
	for (i = 0; i < c->n; i++)
	{
		uint64		seed = c->id ^ ((uint64) (uint32) (c->lens[i] + 1) << 32);

		c->id = c->lens[i] < 0 ? hash_bytes_uint32_extended(0xffffffff, seed) :
			hash_bytes_extended((const unsigned char *) c->names[i], c->lens[i], seed);
	}
	if (c->id == 0)
		c->id = 1;
	c->constant = const_argno >= 0 && FunnelAggArgIsConst(fcinfo, const_argno);
	pfree(names);
	pfree(nulls);
	MemoryContextSwitchTo(old);
	FunnelCheckSteps(c->n, what);
	*slot = c;
	return c;
}

/* the step mask of a step name: bit k-1 set when it equals name k (byte-wise) */
static inline uint64
FunnelNameMask(const FunnelStepsCache *c, const char *step, int len)
{
	uint64		mask = 0;
	uint64		head = FunnelHead(step, len);
	int			i;

	/* candidates: same length and first 8 bytes, without a branch per name */
	for (i = 0; i < c->n; i++)
		mask |= (uint64) ((c->lens[i] == len) & (c->heads[i] == head)) << i;
	if (len > 8 && mask != 0)
	{
		uint64		m;

		/* long names: the candidates must agree on the rest too */
		for (m = mask; m != 0; m &= m - 1)
		{
			i = pg_rightmost_one_pos64(m);
			if (memcmp(c->names[i] + 8, step + 8, len - 8) != 0)
				mask &= ~FUNNEL_BIT(i);
		}
	}
	return mask;
}

/*
 * What every transition function does first: check the call context (once
 * per call site), then the window and the mode of the row (their errors come
 * before any other).  When both are constants of the query, they are read
 * and checked on the first row only.
 */
static inline void
FunnelPrologue(FunctionCallInfo fcinfo, int mode_arg, int64 *window, uint32 *flags)
{
	FunnelCallCache *cc;

	if (unlikely(fcinfo->flinfo == NULL))
		CrmAggContext(fcinfo, "window_funnel");	/* errors out: not an aggregate call */
	cc = FunnelCache(fcinfo);
	if (unlikely(!cc->agg_checked))
	{
		/* a direct call errors out here, every time */
		CrmAggContext(fcinfo, "window_funnel");
		/* aggregated argument k is function argument k + 1 (after the state) */
		cc->args_const = FunnelAggArgIsConst(fcinfo, 0) &&
			(mode_arg < 0 || FunnelAggArgIsConst(fcinfo, mode_arg - 1));
		cc->agg_checked = true;
	}
	if (cc->args_const && cc->have_window && (mode_arg < 0 || cc->mode != NULL))
	{
		*window = cc->window_us;
		*flags = mode_arg >= 0 ? cc->mode->flags : 0;
		return;
	}
	*window = FunnelWindowUsec(fcinfo, 1);
	*flags = mode_arg >= 0 ? FunnelModeArg(fcinfo, mode_arg) : 0;
}

/* a row of the VARIADIC form: the steps come as one boolean[] argument */
static Datum
FunnelTransitionArray(FunctionCallInfo fcinfo, int mode_arg, int ts_arg)
{
	int			steps_arg = ts_arg + 1;
	int			nsteps;
	uint64		mask;
	int64		window;
	uint32		flags;

	FunnelPrologue(fcinfo, mode_arg, &window, &flags);
	if (PG_ARGISNULL(steps_arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("window_funnel steps must not be a null array"),
				 errhint("Pass the step conditions as separate arguments or as VARIADIC ARRAY[...].")));
	mask = FunnelStepMask(PG_GETARG_ARRAYTYPE_P(steps_arg), &nsteps);
	/* the array's length may change from row to row: never uniform */
	return FunnelAppend(fcinfo, ts_arg, nsteps, mask, window, flags, 0, false);
}

/*
 * A row of a fixed-arity form: one boolean argument per step after ts, read
 * directly (no array is built per row).  A NULL step is false.
 */
static Datum
FunnelTransitionArgs(FunctionCallInfo fcinfo, int mode_arg, int ts_arg)
{
	int			nsteps = PG_NARGS() - ts_arg - 1;
	uint64		mask = 0;
	int64		window;
	uint32		flags;
	int			i;

	FunnelPrologue(fcinfo, mode_arg, &window, &flags);
	for (i = 0; i < nsteps; i++)
		if (!PG_ARGISNULL(ts_arg + 1 + i) && PG_GETARG_BOOL(ts_arg + 1 + i))
			mask |= UINT64CONST(1) << i;
	/* the step count is the function's */
	return FunnelAppend(fcinfo, ts_arg, nsteps, mask, window, flags, 0, FunnelCache(fcinfo)->args_const);
}

/*
 * A row of the step-name form: the row's step name and the funnel's step
 * names as a text[]; the row matches step k when its name equals name k
 * byte for byte (a NULL name matches nothing).  One comparison per step
 * against names parsed once, instead of one boolean expression per step.
 */
static Datum
FunnelTransitionNames(FunctionCallInfo fcinfo, int mode_arg, int ts_arg)
{
	int			step_arg = ts_arg + 1;
	int			steps_arg = ts_arg + 2;
	FunnelCallCache *cc;
	FunnelStepsCache *c;
	uint64		mask = 0;
	int64		window;
	uint32		flags;

	FunnelPrologue(fcinfo, mode_arg, &window, &flags);
	cc = FunnelCache(fcinfo);
	if (PG_ARGISNULL(steps_arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("window_funnel steps must not be a null array"),
				 errhint("Pass the step names as a text[], such as ARRAY['lead', 'deal', 'won'].")));
	c = cc->steps;
	if (c == NULL || !c->constant)
		c = FunnelStepsArg(fcinfo, &cc->steps, PG_GETARG_ARRAYTYPE_P(steps_arg), steps_arg - 1, "window_funnel");
	if (!PG_ARGISNULL(step_arg))
	{
		text	   *step = PG_GETARG_TEXT_PP(step_arg);

		mask = FunnelNameMask(c, VARDATA_ANY(step), VARSIZE_ANY_EXHDR(step));
	}
	return FunnelAppend(fcinfo, ts_arg, c->n, mask, window, flags, c->id, cc->args_const && c->constant);
}

/*
 * crm.window_funnel / window_funnel_times transition, no mode:
 * (state, window interval, ts timestamptz, steps boolean[])
 */
Datum
funnel_window_transfn(PG_FUNCTION_ARGS)
{
	return FunnelTransitionArray(fcinfo, -1, 2);
}

/* the same with a mode: (state, window, mode text, ts, steps) */
Datum
funnel_window_mode_transfn(PG_FUNCTION_ARGS)
{
	return FunnelTransitionArray(fcinfo, 2, 3);
}

/* fixed arity, no mode: (state, window interval, ts timestamptz, step1 bool, ..., stepN bool) */
Datum
funnel_window_args_transfn(PG_FUNCTION_ARGS)
{
	return FunnelTransitionArgs(fcinfo, -1, 2);
}

/* step names, no mode: (state, window interval, ts timestamptz, step text, steps text[]) */
Datum
funnel_window_names_transfn(PG_FUNCTION_ARGS)
{
	return FunnelTransitionNames(fcinfo, -1, 2);
}

/* step names with a mode: (state, window, mode text, ts, step text, steps text[]) */
Datum
funnel_window_mode_names_transfn(PG_FUNCTION_ARGS)
{
	return FunnelTransitionNames(fcinfo, 2, 3);
}

/* fixed arity with a mode: (state, window, mode text, ts, step1, ..., stepN) */
Datum
funnel_window_mode_args_transfn(PG_FUNCTION_ARGS)
{
	return FunnelTransitionArgs(fcinfo, 2, 3);
}

/*
 * The content of a window_funnel state of either layout (flat, possibly
 * toasted or short-headed): *h and the events as (ts, mask) pairs, in buf
 * when they fit in bufn, else palloc'd (the caller may sort them in place).
 * Returns false for the empty state ''.
 */
static bool
FunnelRead(Datum d, FunnelHeader *h, FunnelEvent **events, int64 *nevents, FunnelEvent *buf, int bufn)
{
	struct varlena *v = pg_detoast_datum((struct varlena *) DatumGetPointer(d));
	uint32		magic;
	Size		size = VARSIZE(v);
	int64		n;
	int64		i;
	FunnelEvent *ev;

	*events = NULL;
	*nevents = 0;
	if (size < CRM_STATE_FLAT_HDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid window_funnel state: %zu bytes is too short", size)));
	memcpy(&magic, VARDATA(v), sizeof(uint32));
	if (magic != CRM_MAGIC_FUNNEL && magic != CRM_MAGIC_FUNNEL_V2 && magic != CRM_MAGIC_FUNNEL_V1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm_analytics state: wrong state type")));
	if (size == CRM_STATE_FLAT_HDRSZ)
		return false;
	if (((uintptr_t) v) % MAXIMUM_ALIGNOF != 0)
	{
		struct varlena *copy = palloc(size);

		memcpy(copy, v, size);
		v = copy;
	}
	if (magic == CRM_MAGIC_FUNNEL || magic == CRM_MAGIC_FUNNEL_V2)
	{
		/* the two flat layouts differ only in the header (V2: no steps_id) */
		Size		hdrsz = magic == CRM_MAGIC_FUNNEL ? sizeof(FunnelFlat) : sizeof(FunnelFlatV2);
		const FunnelFlatV2 *st = (const FunnelFlatV2 *) v;
		int			w;
		int64		cap;
		const int64 *ts;
		const char *masks;

		if (size < hdrsz || st->nsteps < 1 || st->nsteps > FUNNEL_MAX_STEPS)
			goto corrupt;
		w = FunnelMaskWidth(st->nsteps);
		cap = FunnelCapacityAt(size, w, hdrsz);
		if (st->nevents < 0 || st->nevents > cap)
			goto corrupt;
		h->nsteps = st->nsteps;
		h->flags = st->flags;
		h->window = st->window;
		h->steps_id = magic == CRM_MAGIC_FUNNEL ? ((const FunnelFlat *) v)->steps_id : 0;
		n = st->nevents;
		ts = (const int64 *) ((const char *) v + hdrsz);
		masks = (const char *) v + hdrsz + sizeof(int64) * cap;
		ev = n <= bufn ? buf : palloc(sizeof(FunnelEvent) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			FUNNEL_CFI(i);
			ev[i].ts = ts[i];
			ev[i].mask = FunnelMaskGet(masks, w, i);
		}
	}
	else
	{
		const char *p = (const char *) v + CRM_STATE_FLAT_HDRSZ;
		Size		len = size - CRM_STATE_FLAT_HDRSZ;
		FunnelHeaderV1 h1;

		if (len < sizeof(FunnelHeaderV1) || (len - sizeof(FunnelHeaderV1)) % sizeof(FunnelEvent) != 0)
			goto corrupt;
		memcpy(&h1, p, sizeof(FunnelHeaderV1));
		h->nsteps = h1.nsteps;
		h->flags = h1.flags;
		h->window = h1.window;
		h->steps_id = 0;
		if (h->nsteps < 1 || h->nsteps > FUNNEL_MAX_STEPS)
			goto corrupt;
		n = (len - sizeof(FunnelHeaderV1)) / sizeof(FunnelEvent);
		ev = n <= bufn ? buf : palloc(sizeof(FunnelEvent) * Max(n, 1));
		if (n > 0)
			memcpy(ev, p + sizeof(FunnelHeaderV1), sizeof(FunnelEvent) * n);
	}
	*events = ev;
	*nevents = n;
	return true;
corrupt:
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid window_funnel state of %zu bytes", size)));
	return false;
}

/* combine: append the right state's events to the left state, in place */
Datum
funnel_window_combinefn(PG_FUNCTION_ARGS)
{
	FunnelFlat *st;
	FunnelHeader rh;
	FunnelEvent buf[FUNNEL_STACK_EVENTS];
	FunnelEvent *rev;
	int64		rn;
	int64		i;

	CrmAggContext(fcinfo, "window_funnel combine");
	st = FunnelStateArg(fcinfo, 0);
	if (PG_ARGISNULL(1) || !FunnelRead(PG_GETARG_DATUM(1), &rh, &rev, &rn, buf, FUNNEL_STACK_EVENTS))
	{
		if (st == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(st);
	}
	if (st == NULL)
		st = FunnelFlatNew(&rh, rn, false, NULL, 0);
	else if (st->nsteps != rh.nsteps || st->window != rh.window || st->flags != rh.flags ||
			 st->steps_id != rh.steps_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot combine window_funnel states with different steps, window or mode")));
	else if (rn > FunnelCapacity(VARSIZE(st), FunnelMaskWidth(st->nsteps)) - st->nevents)
		st = FunnelFlatNew(&rh, (int64) st->nevents + rn, false, st, st->nevents);
	for (i = 0; i < rn; i++)
	{
		FUNNEL_CFI(i);
		st = FunnelFlatPush(st, rev[i].ts, rev[i].mask);
	}
	PG_RETURN_POINTER(st);
}

/* ------------------------------------------------------------------------
 * window_funnel final: sort, then one scan by groups of equal timestamps
 * ------------------------------------------------------------------------
 */

/* order events by (ts, mask) */
static int
FunnelEventCmp(const void *a, const void *b)
{
	const FunnelEvent *x = (const FunnelEvent *) a;
	const FunnelEvent *y = (const FunnelEvent *) b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->mask != y->mask)
		return x->mask < y->mask ? -1 : 1;
	return 0;
}

/* scan working storage: per level (0-based j = level j+1) the best chain start */
typedef struct FunnelScan
{
	int			n;				/* steps */
	uint32		flags;
	uint64		window;
	int			level;			/* highest level reached so far */
	bool		started;		/* a step-1 event was seen */
	uint64		has;			/* bit j: committed (or live) level j+1 reached */
	int64		first[FUNNEL_MAX_STEPS];	/* its chain's step-1 time (latest) */
	uint64		phas;			/* bit j: pending, this timestamp group */
	int64		pfirst[FUNNEL_MAX_STEPS];
	/* times: chain[j * n + i] = time of step i+1 in the chain of level j+1 */
	int64	   *chain;
	int64	   *pchain;
	int64	   *best;			/* chain of the first time 'level' was reached */
} FunnelScan;

/* a new highest level: remember the chain that reached it */
static inline void
FunnelNoteLevel(FunnelScan *s, int lvl, const int64 *chain)
{
	if (lvl > s->level)
	{
		s->level = lvl;
		if (s->best)
			memcpy(s->best, chain, sizeof(int64) * lvl);
	}
}

/* set (pending or live) level j (0-based) to a chain = prefix of level j-1 + t repeated */
static inline void
FunnelOffer(FunnelScan *s, bool pending, int j, int64 first, const int64 *prefix, int prefix_len, int64 t)
{
	uint64	   *hasv = pending ? &s->phas : &s->has;
	int64	   *firstv = pending ? s->pfirst : s->first;

	if ((*hasv & FUNNEL_BIT(j)) && firstv[j] >= first)
		return;					/* keep the earlier chain with the same or a later start */
	*hasv |= FUNNEL_BIT(j);
	firstv[j] = first;
	if (s->chain)
	{
		int64	   *c = (pending ? s->pchain : s->chain) + (Size) j * s->n;
		int			i;

		if (prefix_len > 0 && c != prefix)
			memmove(c, prefix, sizeof(int64) * prefix_len);
		for (i = prefix_len; i <= j; i++)
			c[i] = t;
	}
	if (!pending)
		FunnelNoteLevel(s, j + 1, s->chain ? s->chain + (Size) j * s->n : NULL);
}

/* move the pending chains of a timestamp group into the committed ones */
static void
FunnelCommit(FunnelScan *s)
{
	uint64		p = s->phas;
	int			j;

	/* live offers (no pending ones) have noted their level already */
	if (p == 0)
		return;
	s->phas = 0;
	for (; p != 0; p &= p - 1)
	{
		j = pg_rightmost_one_pos64(p);
		if ((s->has & FUNNEL_BIT(j)) && s->first[j] >= s->pfirst[j])
			continue;
		s->has |= FUNNEL_BIT(j);
		s->first[j] = s->pfirst[j];
		if (s->chain)
			memcpy(s->chain + (Size) j * s->n, s->pchain + (Size) j * s->n, sizeof(int64) * (j + 1));
	}
	j = pg_leftmost_one_pos64(s->has);
	FunnelNoteLevel(s, j + 1, s->chain ? s->chain + (Size) j * s->n : NULL);
}

/* is level j (0-based) reached, counting this group's pending chains */
static inline bool
FunnelReached(const FunnelScan *s, int j)
{
	return ((s->has | s->phas) & FUNNEL_BIT(j)) != 0;
}

/*
 * One event (t, step j+1) in (ts, step) order, for every mode but
 * strict_once without strict_increase.  Returns false when the scan ends.
 */
static bool
FunnelEventStep(FunnelScan *s, int64 t, int j)
{
	bool		incr = (s->flags & FM_INCREASE) != 0;

	if (j == 0)
	{
		s->started = true;
		FunnelOffer(s, incr, 0, t, NULL, 0, t);
		return true;
	}
	if ((s->flags & FM_DEDUP) && FunnelReached(s, j))
		return false;
	if ((s->flags & FM_ORDER) && s->started && !FunnelReached(s, j - 1))
		return (s->flags & FM_REENTRY) != 0;	/* allow_reentry: the event is ignored */
	/* extend the chain of level j-1 with the latest start (committed only when strict_increase) */
	if ((s->has & FUNNEL_BIT(j - 1)) && (uint64) t - (uint64) s->first[j - 1] <= s->window)
		FunnelOffer(s, incr, j, s->first[j - 1],
					s->chain ? s->chain + (Size) (j - 1) * s->n : NULL, j, t);
	return true;
}

/* Kuhn's augmenting path: give step k a row of the group (rows[r] = step mask) */
static bool
FunnelAugment(int k, const uint64 *rows, int nrows, int *row_step, bool *seen)
{
	int			r;

	for (r = 0; r < nrows; r++)
	{
		FUNNEL_CFI(r);
		if (seen[r] || !(rows[r] & (UINT64CONST(1) << k)))
			continue;
		seen[r] = true;
		if (row_step[r] < 0 || FunnelAugment(row_step[r], rows, nrows, row_step, seen))
		{
			row_step[r] = k;
			return true;
		}
	}
	return false;
}

/*
 * strict_once (without strict_increase): the rows of one timestamp group can
 * fill a run of consecutive steps j..k when the steps can be matched to
 * distinct rows.  For every valid start j, extend the matching step by step.
 */
static void
FunnelGroupOnce(FunnelScan *s, int64 t, const FunnelEvent *ev, int nrows)
{
	uint64	   *rows;
	int		   *row_step;
	bool	   *seen;
	uint64		any = 0;
	int			j;
	int			r;

	if (nrows == 1)
	{
		/* one row fills one step: start a chain or extend a committed one */
		for (j = 0; j < s->n; j++)
		{
			if (!(ev[0].mask & (UINT64CONST(1) << j)))
				continue;
			if (j == 0)
			{
				s->started = true;
				FunnelOffer(s, true, 0, t, NULL, 0, t);
			}
			else if ((s->has & FUNNEL_BIT(j - 1)) && (uint64) t - (uint64) s->first[j - 1] <= s->window)
				FunnelOffer(s, true, j, s->first[j - 1],
							s->chain ? s->chain + (Size) (j - 1) * s->n : NULL, j, t);
		}
		return;
	}
	rows = palloc(sizeof(uint64) * nrows);
	row_step = palloc(sizeof(int) * nrows);
	seen = palloc(sizeof(bool) * nrows);
	for (r = 0; r < nrows; r++)
	{
		rows[r] = ev[r].mask;
		any |= ev[r].mask;
	}
	/*
	 * Later starts first: on a tie in the chain start the chain that keeps
	 * more earlier (committed) steps is offered first and wins.
	 */
	for (j = s->n - 1; j >= 0; j--)
	{
		int64		first;
		int			k;

		if (!(any & (UINT64CONST(1) << j)))
			continue;
		if (j == 0)
		{
			first = t;
			s->started = true;
		}
		else if ((s->has & FUNNEL_BIT(j - 1)) && (uint64) t - (uint64) s->first[j - 1] <= s->window)
			first = s->first[j - 1];
		else
			continue;
		for (r = 0; r < nrows; r++)
			row_step[r] = -1;
		for (k = j; k < s->n; k++)
		{
			memset(seen, 0, sizeof(bool) * nrows);
			if (!FunnelAugment(k, rows, nrows, row_step, seen))
				break;
			FunnelOffer(s, true, k, first,
						(s->chain && j > 0) ? s->chain + (Size) (j - 1) * s->n : NULL, j, t);
		}
	}
	pfree(rows);
	pfree(row_step);
	pfree(seen);
}

/* the sort of long event lists: comparison inlined, interrupts checked */
#define ST_SORT funnel_event_sort
#define ST_ELEMENT_TYPE FunnelEvent
#define ST_COMPARE(a, b) FunnelEventCmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * strict_once (without strict_increase) with strict_deduplication and/or
 * strict_order: the steps of the group are taken in ascending order, as the
 * other modes do, and each ends the scan when its mode says so (a step
 * already reached under strict_deduplication; a step whose previous one is
 * not reached under strict_order, unless allow_reentry ignores it).  The rows
 * of the group then fill only the steps taken before the one that ended the
 * scan, with strict_once's matching (a row fills at most one step of a
 * chain).  Returns false when the scan ends after this group.
 */
static bool
FunnelGroupOnceModes(FunnelScan *s, int64 t, const FunnelEvent *ev, int nrows)
{
	FunnelEvent sbuf[FUNNEL_STACK_EVENTS];
	FunnelEvent *mev;
	uint64		any = 0;
	uint64		twice = 0;
	uint64		allowed = 0;
	bool		unmatched = false;
	bool		go = true;
	int			r;

	for (r = 0; r < nrows; r++)
	{
		twice |= any & ev[r].mask;
		any |= ev[r].mask;
		if (ev[r].mask == 0)
			unmatched = true;
	}
	/* strict_order: a row matching no step sorts first in its group */
	if ((s->flags & FM_ORDER) && unmatched && s->started)
		return false;
	if (s->n < 64)
		any &= FUNNEL_BIT(s->n) - 1;
	mev = nrows <= FUNNEL_STACK_EVENTS ? sbuf : palloc(sizeof(FunnelEvent) * nrows);
	for (; any != 0; any &= any - 1)
	{
		int			j = pg_rightmost_one_pos64(any);

		if (j > 0 && (s->flags & FM_DEDUP) && FunnelReached(s, j))
		{
			go = false;
			break;
		}
		if (j > 0 && (s->flags & FM_ORDER) && s->started && !FunnelReached(s, j - 1))
		{
			if (s->flags & FM_REENTRY)
				continue;		/* the step is ignored, the rows still fill the others */
			go = false;
			break;
		}
		allowed |= FUNNEL_BIT(j);
		for (r = 0; r < nrows; r++)
		{
			FUNNEL_CFI(r);
			mev[r].ts = ev[r].ts;
			mev[r].mask = ev[r].mask & allowed;
		}
		/* offers only grow with the allowed steps: rerunning keeps the earlier ones */
		FunnelGroupOnce(s, t, mev, nrows);
		/* a second row of the step at the same time is a repetition */
		if ((twice & FUNNEL_BIT(j)) && j > 0 && (s->flags & FM_DEDUP) && FunnelReached(s, j))
		{
			go = false;
			break;
		}
	}
	if (mev != sbuf)
		pfree(mev);
	return go;
}

/* sort events by (ts, mask): insertion sort for the short lists of one entity, the sort template beyond */
static void
FunnelSortEvents(FunnelEvent *ev, int64 n)
{
	int64		i;

	if (n > 32)
	{
		funnel_event_sort(ev, n);
		return;
	}
	for (i = 1; i < n; i++)
	{
		FunnelEvent x = ev[i];
		int64		k = i;

		while (k > 0 && (ev[k - 1].ts > x.ts || (ev[k - 1].ts == x.ts && ev[k - 1].mask > x.mask)))
		{
			ev[k] = ev[k - 1];
			k--;
		}
		ev[k] = x;
	}
}

/*
 * The level of the events ev[0..nev) (the caller's copy, sorted here in
 * place); when times is not NULL it receives the chain (level entries).
 * The scan arrays are initialised for the state's step count only.
 */
static int
FunnelEvaluate(const FunnelHeader *h, FunnelEvent *ev, int64 nev, int64 *times)
{
	FunnelScan	scan;
	FunnelScan *s = &scan;
	int64		i;
	int			level;

	if (nev == 0)
		return 0;
	for (i = 1; i < nev; i++)
	{
		FUNNEL_CFI(i);
		if (FunnelEventCmp(&ev[i - 1], &ev[i]) > 0)
			break;
	}
	if (i < nev)
		FunnelSortEvents(ev, nev);

	s->n = h->nsteps;
	s->flags = h->flags;
	s->window = (uint64) h->window;
	s->level = 0;
	s->started = false;
	s->has = 0;
	s->phas = 0;
	s->chain = NULL;
	s->pchain = NULL;
	s->best = NULL;
	if (times)
	{
		s->chain = palloc0(sizeof(int64) * s->n * s->n);
		s->pchain = palloc0(sizeof(int64) * s->n * s->n);
		s->best = times;
	}

	i = 0;
	while (i < nev && s->level < s->n)
	{
		int64		t = ev[i].ts;
		int64		g = i;
		bool		stop = false;

		while (g < nev && ev[g].ts == t)
		{
			FUNNEL_CFI(g);
			g++;
		}
		/* one check per group too: a group of one event each may be long */
		CHECK_FOR_INTERRUPTS();

		if ((s->flags & FM_ONCE) && !(s->flags & FM_INCREASE) && !(s->flags & (FM_DEDUP | FM_ORDER)))
			FunnelGroupOnce(s, t, ev + i, (int) Min(g - i, INT_MAX));
		else if ((s->flags & FM_ONCE) && !(s->flags & FM_INCREASE))
			stop = !FunnelGroupOnceModes(s, t, ev + i, (int) Min(g - i, INT_MAX));
		else
		{
			uint64		any = 0;
			uint64		twice = 0;
			bool		unmatched = false;
			int64		r;
			int			j;

			for (r = i; r < g; r++)
			{
				twice |= any & ev[r].mask;
				any |= ev[r].mask;
				if (ev[r].mask == 0)
					unmatched = true;
			}
			/* strict_order: a row matching no step sorts first in its group */
			if ((s->flags & FM_ORDER) && unmatched && s->started)
				stop = true;
			/* the steps of the group in ascending order (none beyond the state's steps) */
			if (s->n < 64)
				any &= FUNNEL_BIT(s->n) - 1;
			for (; !stop && any != 0; any &= any - 1)
			{
				j = pg_rightmost_one_pos64(any);
				if (!FunnelEventStep(s, t, j))
					stop = true;
				/* a second event of the same step at the same time */
				else if ((twice & FUNNEL_BIT(j)) && !FunnelEventStep(s, t, j))
					stop = true;
			}
		}
		FunnelCommit(s);
		if (stop)
			break;
		i = g;
	}
	level = s->level;
	if (s->chain)
	{
		pfree(s->chain);
		pfree(s->pchain);
	}
	return level;
}

/* crm.window_funnel final function -> int */
Datum
funnel_window_finalfn(PG_FUNCTION_ARGS)
{
	FunnelHeader h;
	FunnelEvent buf[FUNNEL_STACK_EVENTS];
	FunnelEvent *ev;
	int64		n;

	CrmAggContext(fcinfo, "window_funnel");
	if (PG_ARGISNULL(0) || !FunnelRead(PG_GETARG_DATUM(0), &h, &ev, &n, buf, FUNNEL_STACK_EVENTS))
		PG_RETURN_INT32(0);
	PG_RETURN_INT32(FunnelEvaluate(&h, ev, n, NULL));
}

/* crm.window_funnel_times final function -> timestamptz[] */
Datum
funnel_window_times_finalfn(PG_FUNCTION_ARGS)
{
	FunnelHeader h;
	FunnelEvent buf[FUNNEL_STACK_EVENTS];
	FunnelEvent *ev;
	int64		n;
	int64		times[FUNNEL_MAX_STEPS];
	Datum		elems[FUNNEL_MAX_STEPS];
	int			level = 0;
	int			i;

	CrmAggContext(fcinfo, "window_funnel_times");
	if (!PG_ARGISNULL(0) && FunnelRead(PG_GETARG_DATUM(0), &h, &ev, &n, buf, FUNNEL_STACK_EVENTS))
		level = FunnelEvaluate(&h, ev, n, times);
	for (i = 0; i < level; i++)
		elems[i] = TimestampTzGetDatum(times[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, level, TIMESTAMPTZOID, sizeof(TimestampTz),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* ------------------------------------------------------------------------
 * crm.window_funnel_state text form:
 *   steps=4;mode=5;window=86400000000;events=2;<ts>:<mask>,<ts>:<mask>
 * ts in microseconds since 2000-01-01 UTC, mask in decimal (bit j-1 = step j).
 * A state of the step-name form has ";names=<id>" after the window: the
 * identity (a 64-bit hash) of its step names.
 * ------------------------------------------------------------------------
 */

/* parse a signed 64-bit integer at *p, advance; error on anything else */
static int64
FunnelParseInt64(const char **p, const char *what)
{
	char	   *end;
	long long	v;

	errno = 0;
	if (!(**p == '-' || (**p >= '0' && **p <= '9')))
		goto bad;
	v = strtoll(*p, &end, 10);
	if (errno != 0 || end == *p)
		goto bad;
	*p = end;
	return (int64) v;
bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type crm.window_funnel_state: bad %s", what)));
	return 0;
}

static uint64
FunnelParseUInt64(const char **p, const char *what)
{
	char	   *end;
	unsigned long long v;

	errno = 0;
	if (!(**p >= '0' && **p <= '9'))
		goto bad;
	v = strtoull(*p, &end, 10);
	if (errno != 0 || end == *p)
		goto bad;
	*p = end;
	return (uint64) v;
bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type %s: bad %s", "crm.window_funnel_state", what)));
	return 0;
}

/* expect the literal lit at *p */
static void
FunnelExpect(const char **p, const char *lit, const char *type)
{
	size_t		l = strlen(lit);

	if (strncmp(*p, lit, l) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: expected \"%s\"", type, lit)));
	*p += l;
}

/* crm.window_funnel_state input function: validates every field */
Datum
funnel_window_state_in(PG_FUNCTION_ARGS)
{
	const char *p = PG_GETARG_CSTRING(0);
	const char *type = "crm.window_funnel_state";
	FunnelHeader h;
	int64		steps;
	int64		flags;
	int64		nev;
	int64		i;
	FunnelFlat *st;
	uint64		limit;

	memset(&h, 0, sizeof(h));
	if (*p == '\0')
		PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_FUNNEL, NULL, 0));
	FunnelExpect(&p, "steps=", type);
	steps = FunnelParseInt64(&p, "steps");
	if (steps < 1 || steps > FUNNEL_MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: steps must be 1 to %d", type, FUNNEL_MAX_STEPS)));
	FunnelExpect(&p, ";mode=", type);
	flags = FunnelParseInt64(&p, "mode");
	if (flags < 0 || (flags & ~FM_ALL) != 0 ||
		((flags & FM_REENTRY) && !(flags & FM_ORDER)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: invalid mode flags", type)));
	FunnelExpect(&p, ";window=", type);
	h.window = FunnelParseInt64(&p, "window");
	if (h.window < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: negative window", type)));
	h.steps_id = 0;
	if (strncmp(p, ";names=", 7) == 0)
	{
		p += 7;
		h.steps_id = FunnelParseUInt64(&p, "names");
		if (h.steps_id == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: names must not be 0", type)));
	}
	FunnelExpect(&p, ";events=", type);
	nev = FunnelParseInt64(&p, "event count");
	if (nev < 0 || (Size) nev > (MaxAllocSize - FUNNEL_FLAT_HDRSZ) / sizeof(FunnelEvent) ||
		(Size) nev > strlen(p))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: event count %lld does not match the text",
						type, (long long) nev)));
	h.nsteps = (int32) steps;
	h.flags = (uint32) flags;
	limit = steps == 64 ? PG_UINT64_MAX : ((UINT64CONST(1) << steps) - 1);

	st = FunnelFlatNew(&h, nev, true, NULL, 0);
	if (nev > 0)
		FunnelExpect(&p, ";", type);
	for (i = 0; i < nev; i++)
	{
		FunnelEvent e;

		FUNNEL_CFI(i);
		if (i > 0)
			FunnelExpect(&p, ",", type);
		e.ts = FunnelParseInt64(&p, "event time");
		if (TIMESTAMP_NOT_FINITE(e.ts) || !IS_VALID_TIMESTAMP(e.ts))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: event time out of range", type)));
		FunnelExpect(&p, ":", type);
		e.mask = FunnelParseUInt64(&p, "step mask");
		if ((e.mask & ~limit) != 0 || (e.mask == 0 && !(flags & FM_ORDER)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: step mask %llu does not fit %d steps",
							type, (unsigned long long) e.mask, (int) steps)));
		st = FunnelFlatPush(st, e.ts, e.mask);
	}
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: trailing characters \"%s\"", type, p)));
	PG_RETURN_POINTER(st);
}

/* crm.window_funnel_state output function */
Datum
funnel_window_state_out(PG_FUNCTION_ARGS)
{
	FunnelHeader h;
	FunnelEvent *ev;
	int64		n;
	int64		i;
	StringInfoData buf;

	initStringInfo(&buf);
	if (FunnelRead(PG_GETARG_DATUM(0), &h, &ev, &n, NULL, 0))
	{
		appendStringInfo(&buf, "steps=%d;mode=%u;window=" INT64_FORMAT, h.nsteps, h.flags, h.window);
		if (h.steps_id != 0)
			appendStringInfo(&buf, ";names=" UINT64_FORMAT, h.steps_id);
		appendStringInfo(&buf, ";events=" INT64_FORMAT, n);
		for (i = 0; i < n; i++)
		{
			FUNNEL_CFI(i);
			appendStringInfo(&buf, "%c" INT64_FORMAT ":" UINT64_FORMAT, i == 0 ? ';' : ',',
							 ev[i].ts, ev[i].mask);
		}
	}
	PG_RETURN_CSTRING(buf.data);
}

/* ------------------------------------------------------------------------
 * crm.funnel_counts(level int, steps int) -> bigint[]
 * ------------------------------------------------------------------------
 */

/* validated view of a funnel_counts state: header and hist[nsteps + 1] */
static const FunnelCountsHeader *
FunnelCountsPayload(Datum d, const int64 **hist)
{
	Size		len;
	const char *p = CrmStatePayload(d, CRM_MAGIC_FUNNEL_COUNTS, &len);
	const FunnelCountsHeader *h = (const FunnelCountsHeader *) p;

	if (len == 0)
		return NULL;
	if (len < sizeof(FunnelCountsHeader) || h->nsteps < 1 || h->nsteps > FUNNEL_MAX_STEPS ||
		len != sizeof(FunnelCountsHeader) + sizeof(int64) * (h->nsteps + 1))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid funnel_counts state: %zu payload bytes", len)));
	*hist = (const int64 *) (p + sizeof(FunnelCountsHeader));
	return h;
}

/* new funnel_counts state payload for nsteps */
static void
FunnelCountsInit(CrmState *st, int nsteps)
{
	Size		sz = sizeof(FunnelCountsHeader) + sizeof(int64) * (nsteps + 1);
	char	   *p = CrmStateReserve(st, sz);

	memset(p, 0, sz);
	((FunnelCountsHeader *) p)->nsteps = nsteps;
	st->len = sz;
}

/* transition: count the row's level; NULL levels are skipped */
Datum
funnel_counts_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "funnel_counts");
	CrmState   *st;
	int32		nsteps;
	int32		level;
	int64	   *hist;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("funnel_counts steps must not be null"),
				 errhint("Pass the number of funnel steps, the same as given to window_funnel.")));
	nsteps = PG_GETARG_INT32(2);
	FunnelCheckSteps(nsteps, "funnel_counts");
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_FUNNEL_COUNTS,
						  sizeof(FunnelCountsHeader) + sizeof(int64) * (FUNNEL_MAX_STEPS + 1));
	if (st->len == 0)
		FunnelCountsInit(st, nsteps);
	else if (((FunnelCountsHeader *) st->data)->nsteps != nsteps)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("funnel_counts got %d steps on one row and %d on another",
						((FunnelCountsHeader *) st->data)->nsteps, nsteps)));
	if (PG_ARGISNULL(1))
		return CrmStateGetDatum(st);
	level = PG_GETARG_INT32(1);
	if (level < 0 || level > nsteps)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("funnel_counts level %d is outside 0..%d", level, nsteps),
				 errhint("Pass the level returned by window_funnel with the same number of steps.")));
	hist = (int64 *) (st->data + sizeof(FunnelCountsHeader));
	if (unlikely(hist[level] == PG_INT64_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("funnel_counts count out of range")));
	hist[level]++;
	return CrmStateGetDatum(st);
}

/* combine: add the right histogram to the left one */
Datum
funnel_counts_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "funnel_counts combine");
	CrmState   *st;
	const FunnelCountsHeader *rh;
	const int64 *rhist = NULL;
	int64	   *lhist;
	int			i;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		return CrmStateGetDatum(CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_FUNNEL_COUNTS, 0));
	}
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_FUNNEL_COUNTS, 0);
	rh = FunnelCountsPayload(PG_GETARG_DATUM(1), &rhist);
	if (rh == NULL)
		return CrmStateGetDatum(st);
	if (st->len == 0)
		FunnelCountsInit(st, rh->nsteps);
	else if (((FunnelCountsHeader *) st->data)->nsteps != rh->nsteps)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot combine funnel_counts states of %d and %d steps",
						((FunnelCountsHeader *) st->data)->nsteps, rh->nsteps)));
	lhist = (int64 *) (st->data + sizeof(FunnelCountsHeader));
	for (i = 0; i <= rh->nsteps; i++)
		if (pg_add_s64_overflow(lhist[i], rhist[i], &lhist[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("funnel_counts count out of range")));
	return CrmStateGetDatum(st);
}

/* final: element k = rows with level >= k; NULL when no row was seen */
Datum
funnel_counts_finalfn(PG_FUNCTION_ARGS)
{
	const FunnelCountsHeader *h;
	const int64 *hist = NULL;
	Datum		elems[FUNNEL_MAX_STEPS];
	int64		acc = 0;
	int			k;

	CrmAggContext(fcinfo, "funnel_counts");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	h = FunnelCountsPayload(PG_GETARG_DATUM(0), &hist);
	if (h == NULL)
		PG_RETURN_NULL();
	for (k = h->nsteps; k >= 1; k--)
	{
		/* a state from text input may hold counts that no real input reaches */
		if (pg_add_s64_overflow(acc, hist[k], &acc))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("funnel_counts count out of range")));
		elems[k - 1] = Int64GetDatum(acc);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, h->nsteps, INT8OID, sizeof(int64),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* crm.funnel_counts_state input: "steps=4;hist=h0,h1,...,h4" */
Datum
funnel_counts_state_in(PG_FUNCTION_ARGS)
{
	const char *p = PG_GETARG_CSTRING(0);
	const char *type = "crm.funnel_counts_state";
	FunnelCountsHeader h;
	int64		hist[FUNNEL_MAX_STEPS + 1];
	int64		steps;
	int			i;
	StringInfoData buf;

	if (*p == '\0')
		PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_FUNNEL_COUNTS, NULL, 0));
	FunnelExpect(&p, "steps=", type);
	steps = FunnelParseInt64(&p, "steps");
	if (steps < 1 || steps > FUNNEL_MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: steps must be 1 to %d", type, FUNNEL_MAX_STEPS)));
	FunnelExpect(&p, ";hist=", type);
	for (i = 0; i <= steps; i++)
	{
		if (i > 0)
			FunnelExpect(&p, ",", type);
		hist[i] = FunnelParseInt64(&p, "count");
		if (hist[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: negative count", type)));
	}
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: trailing characters \"%s\"", type, p)));
	memset(&h, 0, sizeof(h));
	h.nsteps = (int32) steps;
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (const char *) &h, sizeof(h));
	appendBinaryStringInfo(&buf, (const char *) hist, sizeof(int64) * (steps + 1));
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_FUNNEL_COUNTS, buf.data, buf.len));
}

/* crm.funnel_counts_state output */
Datum
funnel_counts_state_out(PG_FUNCTION_ARGS)
{
	const FunnelCountsHeader *h;
	const int64 *hist = NULL;
	StringInfoData buf;
	int			i;

	h = FunnelCountsPayload(PG_GETARG_DATUM(0), &hist);
	initStringInfo(&buf);
	if (h != NULL)
	{
		appendStringInfo(&buf, "steps=%d;hist=", h->nsteps);
		for (i = 0; i <= h->nsteps; i++)
			appendStringInfo(&buf, "%s" INT64_FORMAT, i ? "," : "", hist[i]);
	}
	PG_RETURN_CSTRING(buf.data);
}

/* ------------------------------------------------------------------------
 * crm._funnel_step_flags(step text, steps text[]) -> boolean[]
 * used by crm.funnel_report: element k = (step = steps[k]); NULL step -> all false
 * ------------------------------------------------------------------------
 */
Datum
funnel_step_flags(PG_FUNCTION_ARGS)
{
	FunnelStepsCache *c;
	Datum		out[FUNNEL_MAX_STEPS];
	text	   *step = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	uint64		mask;
	int			i;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("funnel steps must not be null")));
	c = FunnelStepsArg(fcinfo, (FunnelStepsCache **) &fcinfo->flinfo->fn_extra, PG_GETARG_ARRAYTYPE_P(1), -1,
					   "funnel_report");
	mask = step == NULL ? 0 : FunnelNameMask(c, VARDATA_ANY(step), VARSIZE_ANY_EXHDR(step));
	for (i = 0; i < c->n; i++)
		out[i] = BoolGetDatum((mask & FUNNEL_BIT(i)) != 0);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, c->n, BOOLOID, 1, true, TYPALIGN_CHAR));
}
