/*
 * funnel_agg.c
 *      The aggregates crm.window_funnel (both contract overloads and their
 *      fixed-arity twins of 1 to 12 steps), crm.window_funnel_by_name and
 *      crm.window_funnel_times: argument checks, the transition functions and
 *      the combine function (docs/funnel.md).
 *
 * window_funnel keeps, per group, one entry (ts, step mask) for every row
 * that matches at least one step (plus, in strict_order mode, the rows that
 * match none), appended in place to one flat varlena (FunnelFlat, funnel.h)
 * that is one allocator chunk per group.  Partial states are concatenated by
 * the combine function; the final function (funnel_scan.c) sorts the entries
 * by time and scans them once, so the answer never depends on the input
 * order.
 */
#include "funnel.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "nodes/primnodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "common/int.h"

PG_FUNCTION_INFO_V1(funnel_window_transfn);
PG_FUNCTION_INFO_V1(funnel_window_mode_transfn);
PG_FUNCTION_INFO_V1(funnel_window_args_transfn);
PG_FUNCTION_INFO_V1(funnel_window_mode_args_transfn);
PG_FUNCTION_INFO_V1(funnel_window_names_transfn);
PG_FUNCTION_INFO_V1(funnel_window_mode_names_transfn);
PG_FUNCTION_INFO_V1(funnel_window_combinefn);

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

/*
 * The error context of an error raised while a funnel aggregate runs: the
 * name of the aggregate ("in crm.window_funnel_by_name"), so that messages
 * need no routine-name prefix.
 */
int
FunnelErrContext(FunctionCallInfo fcinfo)
{
	Aggref	   *aggref = (fcinfo != NULL && fcinfo->flinfo != NULL) ? AggGetAggref(fcinfo) : NULL;
	char	   *name = aggref != NULL ? get_func_name(aggref->aggfnoid) : NULL;

	return errcontext("in crm.%s", name != NULL ? name : "window_funnel");
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
				 errmsg("window must not be null"),
				 FunnelErrContext(fcinfo),
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
				 errmsg("window must not be negative"),
				 FunnelErrContext(fcinfo),
				 errhint("Pass a window of zero or more, such as '30 days'.")));
	cc->window_iv = *iv;
	cc->window_us = total;
	cc->have_window = true;
	return total;
}

/* parse "strict_order, strict_increase" into FM_* flags */
static uint32
FunnelParseMode(FunctionCallInfo fcinfo, const char *s, int len)
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
					 errmsg("unknown funnel mode \"%.*s\"", wl, w),
					 FunnelErrContext(fcinfo),
					 errhint("The mode is '' or a comma-separated list of " FUNNEL_MODE_WORDS ".")));
		if (i < len)
		{
			i++;				/* skip the comma: a word must follow */
			if (i >= len)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown funnel mode \"\""),
						 FunnelErrContext(fcinfo),
						 errhint("The mode is '' or a comma-separated list of " FUNNEL_MODE_WORDS ".")));
		}
	}
	if ((flags & FM_REENTRY) && !(flags & FM_ORDER))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mode allow_reentry requires strict_order"),
				 FunnelErrContext(fcinfo),
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
				 errmsg("mode must not be null"),
				 FunnelErrContext(fcinfo),
				 errhint("Pass '' for the default mode.")));
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);
	if (cache != NULL && cache->len == len && memcmp(cache->text, VARDATA_ANY(t), len) == 0)
		return cache->flags;

	cache = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, offsetof(FunnelModeCache, text) + len + 1);
	cache->flags = FunnelParseMode(fcinfo, VARDATA_ANY(t), len);
	cache->len = len;
	memcpy(cache->text, VARDATA_ANY(t), len);
	cache->text[len] = '\0';
	if (cc->mode)
		pfree(cc->mode);
	cc->mode = cache;
	return cache->flags;
}

/* check the step count of a funnel: 1..64 */
void
FunnelCheckSteps(int nsteps, const char *what)
{
	if (nsteps < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a funnel needs at least 1 step"),
				 errcontext("in crm.%s", what),
				 errhint("Pass one boolean condition per funnel step.")));
	if (nsteps > FUNNEL_MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a funnel supports at most %d steps, got %d", FUNNEL_MAX_STEPS, nsteps),
				 errcontext("in crm.%s", what),
				 errhint("Merge steps or split the funnel in two.")));
}

/* step mask of a boolean[] argument (NULL elements are false); sets *nsteps */
static uint64
FunnelStepMask(FunctionCallInfo fcinfo, ArrayType *arr, int *nsteps)
{
	int			n;
	bits8	   *nulls;
	const bool *vals;
	uint64		mask = 0;
	int			i;

	if (ARR_ELEMTYPE(arr) != BOOLOID)
		elog(ERROR, "steps must be a boolean array");
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("steps must be a one-dimensional array"),
				 FunnelErrContext(fcinfo)));
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
					 errmsg("got %d steps on one row and %d on another", st->nsteps, nsteps),
					 FunnelErrContext(fcinfo),
					 errhint("Every row of a group must pass the same number of steps.")));
		if (st->window != window || st->flags != flags)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("window and mode must be the same on every row of a group"),
					 FunnelErrContext(fcinfo)));
		/* constant step names cannot differ: compared only when they are not */
		if (!uniform && st->steps_id != steps_id)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("got different step names on rows of one group"),
					 FunnelErrContext(fcinfo),
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

/*
 * Whether aggregated argument argno (0-based, as in the call) of the
 * aggregate whose transition function is running is a constant of the query
 * (after constant folding, ARRAY['a', 'b'] is one).
 */
bool
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
				 errmsg("steps must not be a null array"),
				 FunnelErrContext(fcinfo),
				 errhint("Pass the step conditions as separate arguments or as VARIADIC ARRAY[...].")));
	mask = FunnelStepMask(fcinfo, PG_GETARG_ARRAYTYPE_P(steps_arg), &nsteps);
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
				 errmsg("steps must not be a null array"),
				 FunnelErrContext(fcinfo),
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
				 errmsg("cannot combine window_funnel states with different steps, window or mode"),
				 FunnelErrContext(fcinfo)));
	else if (rn > FunnelCapacity(VARSIZE(st), FunnelMaskWidth(st->nsteps)) - st->nevents)
		st = FunnelFlatNew(&rh, (int64) st->nevents + rn, false, st, st->nevents);
	for (i = 0; i < rn; i++)
	{
		FUNNEL_CFI(i);
		st = FunnelFlatPush(st, rev[i].ts, rev[i].mask);
	}
	PG_RETURN_POINTER(st);
}
