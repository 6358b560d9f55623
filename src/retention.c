/*
 * retention.c
 *      Retention and cohorts (PRODUCT.md section 2).
 *
 *      crm.retention(VARIADIC boolean[])   the ClickHouse-style retention
 *                                          aggregate: a bitset of the
 *                                          conditions seen, per group.
 *      crm.retention(boolean, ...)         the same with 1 to 12 conditions
 *                                          as arguments and a by-value
 *                                          state (what a call with the
 *                                          conditions written out runs).
 *      crm.cohort_activity(ts, amount, period)
 *                                          the per-entity aggregate behind
 *                                          the cohort reports: the sorted
 *                                          set of periods the entity was
 *                                          active in, with order counts and
 *                                          exact revenue (128-bit fixed
 *                                          point).  Runs in parallel and
 *                                          under Citus (COMBINEFUNC, real
 *                                          state type).
 *      crm.cohort_retention(...)           report functions: run
 *      crm.retention_metrics(...)          "cohort_activity GROUP BY entity"
 *                                          over the user's inner query and
 *                                          fold the per-entity states into
 *                                          per-cohort / per-period counters
 *                                          as they stream out of the
 *                                          executor (a DestReceiver), so no
 *                                          per-entity row is materialised.
 */
#include "crm_analytics.h"

#include <limits.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "tcop/dest.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(crm_retention_transfn);
PG_FUNCTION_INFO_V1(crm_retention_combinefn);
PG_FUNCTION_INFO_V1(crm_retention_finalfn);
PG_FUNCTION_INFO_V1(crm_retention_state_in);
PG_FUNCTION_INFO_V1(crm_retention_state_out);
PG_FUNCTION_INFO_V1(crm_retention_fixed_transfn);
PG_FUNCTION_INFO_V1(crm_retention_fixed_combinefn);
PG_FUNCTION_INFO_V1(crm_retention_fixed_finalfn);
PG_FUNCTION_INFO_V1(crm_retention_fixed_state_in);
PG_FUNCTION_INFO_V1(crm_retention_fixed_state_out);
PG_FUNCTION_INFO_V1(crm_cohort_activity_transfn);
PG_FUNCTION_INFO_V1(crm_cohort_activity_combinefn);
PG_FUNCTION_INFO_V1(crm_cohort_activity_state_in);
PG_FUNCTION_INFO_V1(crm_cohort_activity_state_out);
PG_FUNCTION_INFO_V1(crm_cohort_activity_periods);
PG_FUNCTION_INFO_V1(crm_cohort_retention);
PG_FUNCTION_INFO_V1(crm_retention_metrics);

#define RETENTION_MAX_CONDS 64
#define COHORT_MAX_PERIODS	1000
#define COHORT_MAX_SCALE	30		/* decimal places kept exactly in revenue */
#define METRICS_MAX_ROWS	1000000

/* ========================================================================
 * crm.retention
 * ========================================================================
 */

/* payload of crm.retention_state */
typedef struct RetentionPayload
{
	int32		nconds;			/* 0 = no condition array seen yet */
	int32		reserved;
	uint64		seen;			/* bit k-1: condition k held on some row */
} RetentionPayload;

/* writable retention payload of a state, initialised when new */
static RetentionPayload *
RetentionPayloadRW(CrmState *st)
{
	if (st->len == 0)
	{
		memset(CrmStateReserve(st, sizeof(RetentionPayload)), 0, sizeof(RetentionPayload));
		st->len = sizeof(RetentionPayload);
	}
	return (RetentionPayload *) st->data;
}

/* validated read-only retention payload of a datum */
static RetentionPayload
RetentionPayloadRO(Datum d)
{
	Size		len;
	const char *p = CrmStatePayload(d, CRM_MAGIC_RETENTION, &len);
	RetentionPayload r;

	if (len != sizeof(RetentionPayload))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.retention_state: payload of %zu bytes", len)));
	memcpy(&r, p, sizeof(r));
	if (r.nconds < 0 || r.nconds > RETENTION_MAX_CONDS ||
		(r.nconds < 64 && (r.seen >> r.nconds) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.retention_state: %d conditions", r.nconds)));
	return r;
}

/* one row: OR the conditions that hold into the bitset */
Datum
crm_retention_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = CrmAggContext(fcinfo, "crm.retention");
	CrmState   *st = CrmStateArgRW(fcinfo, 0, aggcxt, CRM_MAGIC_RETENTION, sizeof(RetentionPayload));
	RetentionPayload *p = RetentionPayloadRW(st);

	if (!PG_ARGISNULL(1))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
		int			ndim = ARR_NDIM(arr);
		int			n;
		bits8	   *nullmap;
		const bool *vals;
		uint64		bits = 0;
		int			i;
		int			j = 0;

		if (ARR_ELEMTYPE(arr) != BOOLOID)
			elog(ERROR, "crm.retention: conditions must be boolean");
		if (ndim > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("crm.retention conditions must be a one-dimensional array")));
		n = (ndim == 0) ? 0 : ARR_DIMS(arr)[0];
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("crm.retention needs at least one condition"),
					 errhint("Call it as crm.retention(cond1, cond2, ...).")));
		if (n > RETENTION_MAX_CONDS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("crm.retention takes at most %d conditions, got %d",
							RETENTION_MAX_CONDS, n)));
		if (p->nconds == 0)
			p->nconds = n;
		else if (p->nconds != n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("crm.retention got %d conditions on one row and %d on another",
							p->nconds, n),
					 errhint("Pass the same number of conditions on every row.")));

		nullmap = ARR_NULLBITMAP(arr);
		vals = (const bool *) ARR_DATA_PTR(arr);
		for (i = 0; i < n; i++)
		{
			if (nullmap && !(nullmap[i / 8] & (1 << (i % 8))))
				continue;		/* NULL condition: false */
			if (vals[j++])
				bits |= UINT64CONST(1) << i;
		}
		p->seen |= bits;
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* merge two partial bitsets */
Datum
crm_retention_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = CrmAggContext(fcinfo, "crm.retention");
	CrmState   *st;
	RetentionPayload *p;
	RetentionPayload r;

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	st = CrmStateArgRW(fcinfo, 0, aggcxt, CRM_MAGIC_RETENTION, sizeof(RetentionPayload));
	p = RetentionPayloadRW(st);
	if (!PG_ARGISNULL(1))
	{
		r = RetentionPayloadRO(PG_GETARG_DATUM(1));
		if (p->nconds == 0)
			p->nconds = r.nconds;
		else if (r.nconds != 0 && r.nconds != p->nconds)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("crm.retention got %d conditions on one row and %d on another",
							p->nconds, r.nconds),
					 errhint("Pass the same number of conditions on every row.")));
		p->seen |= r.seen;
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* the int[] result of a bitset of nconds conditions: r[1] = cond1, r[k] = cond1 and condk */
static ArrayType *
RetentionResult(int nconds, uint64 seen)
{
	Datum		elems[RETENTION_MAX_CONDS];
	bool		first = (seen & 1) != 0;
	int			k;

	for (k = 0; k < nconds; k++)
		elems[k] = Int32GetDatum(first && ((seen >> k) & 1) ? 1 : 0);
	return construct_array(elems, nconds, INT4OID, sizeof(int32), true, TYPALIGN_INT);
}

/* r[1] = cond1 seen; r[k] = cond1 and condk seen */
Datum
crm_retention_finalfn(PG_FUNCTION_ARGS)
{
	RetentionPayload p;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	p = RetentionPayloadRO(PG_GETARG_DATUM(0));
	if (p.nconds == 0)
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(RetentionResult(p.nconds, p.seen));
}

/* text form: one character per condition, '1' = seen ("101"); '' = no rows */
Datum
crm_retention_state_out(PG_FUNCTION_ARGS)
{
	RetentionPayload p = RetentionPayloadRO(PG_GETARG_DATUM(0));
	char	   *out = palloc(p.nconds + 1);
	int			k;

	for (k = 0; k < p.nconds; k++)
		out[k] = ((p.seen >> k) & 1) ? '1' : '0';
	out[p.nconds] = '\0';
	PG_RETURN_CSTRING(out);
}

/* parse the text form, validating every character */
Datum
crm_retention_state_in(PG_FUNCTION_ARGS)
{
	const char *s = PG_GETARG_CSTRING(0);
	size_t		n = strlen(s);
	RetentionPayload p;
	size_t		k;

	if (n > RETENTION_MAX_CONDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type crm.retention_state: %zu conditions, at most %d",
						n, RETENTION_MAX_CONDS)));
	memset(&p, 0, sizeof(p));
	p.nconds = (int32) n;
	for (k = 0; k < n; k++)
	{
		if (s[k] == '1')
			p.seen |= UINT64CONST(1) << k;
		else if (s[k] != '0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type crm.retention_state: \"%s\"", s),
					 errhint("Use one character per condition, 1 = seen and 0 = not seen, e.g. '101'.")));
	}
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_RETENTION, (const char *) &p, sizeof(p)));
}

/* ========================================================================
 * crm.retention(boolean, ...): the fixed-arity overloads
 *
 * crm.retention(c1), crm.retention(c1, c2), ... up to RETENTION_FIXED_MAX
 * conditions give the same result as the VARIADIC form, which PostgreSQL
 * still picks for more conditions or an explicit VARIADIC array.  A call
 * with the conditions written out resolves to these (a non-variadic function
 * wins over a variadic one with the same effective arguments), so the
 * executor passes the conditions as plain arguments instead of building an
 * array per row, and the state, crm.retention_fixed_state, is 4 bytes passed
 * by value: it lives in the group's hash entry, with no pointer to follow.
 *
 * State bits 0..RETENTION_FIXED_MAX-1: condition k+1 held on some row; bits
 * 24..30: the number of conditions (1..RETENTION_FIXED_MAX, never 0: a
 * group without rows has a NULL state).
 * ========================================================================
 */
#define RETENTION_FIXED_MAX		12
#define RETENTION_FIXED_SHIFT	24

static inline int32
RetentionFixedMake(int nconds, uint32 seen)
{
	return (int32) (((uint32) nconds << RETENTION_FIXED_SHIFT) | seen);
}

/* number of conditions of a state, validated (a state may be typed in) */
static int
RetentionFixedConds(int32 s)
{
	uint32		u = (uint32) s;
	int			n = (int) (u >> RETENTION_FIXED_SHIFT);

	if (n < 1 || n > RETENTION_FIXED_MAX || (u & ((1u << RETENTION_FIXED_SHIFT) - 1)) >> n != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.retention_fixed_state: %d", s)));
	return n;
}

static inline uint32
RetentionFixedSeen(int32 s)
{
	return (uint32) s & ((1u << RETENTION_FIXED_SHIFT) - 1);
}

static void
RetentionCountMismatch(int a, int b)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("crm.retention got %d conditions on one row and %d on another", a, b),
			 errhint("Pass the same number of conditions on every row.")));
}

/* one row: OR the conditions (arguments 1..n) that hold into the state */
Datum
crm_retention_fixed_transfn(PG_FUNCTION_ARGS)
{
	int			nconds = PG_NARGS() - 1;
	uint32		seen = 0;
	int			i;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crm.retention called in non-aggregate context")));
	if (nconds < 1 || nconds > RETENTION_FIXED_MAX)
		elog(ERROR, "crm.retention_fixed_transfn: %d conditions", nconds);
	if (!PG_ARGISNULL(0))
	{
		int32		s = PG_GETARG_INT32(0);

		if (RetentionFixedConds(s) != nconds)
			RetentionCountMismatch(RetentionFixedConds(s), nconds);
		seen = RetentionFixedSeen(s);
	}
	for (i = 1; i <= nconds; i++)
		if (!PG_ARGISNULL(i) && PG_GETARG_BOOL(i))	/* NULL condition: false */
			seen |= 1u << (i - 1);
	PG_RETURN_INT32(RetentionFixedMake(nconds, seen));
}

/* merge two partial states (by value: nothing to copy) */
Datum
crm_retention_fixed_combinefn(PG_FUNCTION_ARGS)
{
	int32		a,
				b;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crm.retention called in non-aggregate context")));
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		a = PG_GETARG_INT32(0);
		(void) RetentionFixedConds(a);
		PG_RETURN_INT32(a);
	}
	b = PG_GETARG_INT32(1);
	if (PG_ARGISNULL(0))
	{
		(void) RetentionFixedConds(b);
		PG_RETURN_INT32(b);
	}
	a = PG_GETARG_INT32(0);
	if (RetentionFixedConds(a) != RetentionFixedConds(b))
		RetentionCountMismatch(RetentionFixedConds(a), RetentionFixedConds(b));
	PG_RETURN_INT32(a | b);
}

/* r[1] = cond1 seen; r[k] = cond1 and condk seen */
Datum
crm_retention_fixed_finalfn(PG_FUNCTION_ARGS)
{
	int32		s;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = PG_GETARG_INT32(0);
	PG_RETURN_ARRAYTYPE_P(RetentionResult(RetentionFixedConds(s), RetentionFixedSeen(s)));
}

/* text form: as crm.retention_state, one character per condition ("101") */
Datum
crm_retention_fixed_state_out(PG_FUNCTION_ARGS)
{
	int32		s = PG_GETARG_INT32(0);
	int			n = RetentionFixedConds(s);
	char	   *out = palloc(n + 1);
	int			k;

	for (k = 0; k < n; k++)
		out[k] = ((RetentionFixedSeen(s) >> k) & 1) ? '1' : '0';
	out[n] = '\0';
	PG_RETURN_CSTRING(out);
}

/* parse the text form: 1 to RETENTION_FIXED_MAX characters 0 or 1 */
Datum
crm_retention_fixed_state_in(PG_FUNCTION_ARGS)
{
	const char *s = PG_GETARG_CSTRING(0);
	size_t		n = strlen(s);
	uint32		seen = 0;
	size_t		k;

	if (n < 1 || n > RETENTION_FIXED_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type crm.retention_fixed_state: %zu conditions, 1 to %d expected",
						n, RETENTION_FIXED_MAX)));
	for (k = 0; k < n; k++)
	{
		if (s[k] == '1')
			seen |= 1u << k;
		else if (s[k] != '0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type crm.retention_fixed_state: \"%s\"", s),
					 errhint("Use one character per condition, 1 = seen and 0 = not seen, e.g. '101'.")));
	}
	PG_RETURN_INT32(RetentionFixedMake((int) n, seen));
}

/* ========================================================================
 * Periods
 * ========================================================================
 */
typedef enum CohortPeriod
{
	PERIOD_DAY,
	PERIOD_WEEK,
	PERIOD_MONTH,
	PERIOD_QUARTER,
	PERIOD_YEAR
} CohortPeriod;

#define NUM_PERIODS 5
static const char *const period_names[NUM_PERIODS] = {"day", "week", "month", "quarter", "year"};

/* parse a period name (case-insensitive, no allocation) or raise 22023 listing the valid ones */
static CohortPeriod
ParsePeriod(text *t)
{
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			i;

	for (i = 0; i < NUM_PERIODS; i++)
		if ((size_t) len == strlen(period_names[i]) && pg_strncasecmp(s, period_names[i], len) == 0)
			return (CohortPeriod) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown period \"%s\"", text_to_cstring(t)),
			 errhint("Valid periods are day, week, month, quarter, year.")));
	return PERIOD_MONTH;		/* keep compiler quiet */
}

/* floor division for possibly negative numerators */
static inline int32
FloorDiv(int32 a, int32 b)
{
	int32		q = a / b;

	if ((a % b) != 0 && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* index of the period (day, ISO week, month, ...) containing Julian day jd */
static int32
PeriodIndexFromJd(CohortPeriod period, int32 jd)
{
	int			y,
				m,
				d;

	switch (period)
	{
		case PERIOD_DAY:
			return jd;
		case PERIOD_WEEK:
			/* Julian day numbers divisible by 7 are Mondays */
			return FloorDiv(jd, 7);
		case PERIOD_MONTH:
			j2date(jd, &y, &m, &d);
			return y * 12 + (m - 1);
		case PERIOD_QUARTER:
			j2date(jd, &y, &m, &d);
			return y * 4 + (m - 1) / 3;
		case PERIOD_YEAR:
			j2date(jd, &y, &m, &d);
			return y;
	}
	return 0;
}

/* Julian day of the first day of period index idx */
static int32
PeriodStartJd(CohortPeriod period, int32 idx)
{
	int32		y;

	switch (period)
	{
		case PERIOD_DAY:
			return idx;
		case PERIOD_WEEK:
			return idx * 7;
		case PERIOD_MONTH:
			y = FloorDiv(idx, 12);
			return date2j(y, idx - y * 12 + 1, 1);
		case PERIOD_QUARTER:
			y = FloorDiv(idx, 4);
			return date2j(y, (idx - y * 4) * 3 + 1, 1);
		case PERIOD_YEAR:
			return date2j(idx, 1, 1);
	}
	return 0;
}

/* the smallest and largest period index a timestamptz can fall in */
static void
PeriodIndexBounds(CohortPeriod period, int32 *lo, int32 *hi)
{
	*lo = PeriodIndexFromJd(period, 0);
	*hi = PeriodIndexFromJd(period, date2j(294277, 1, 1));
}

static inline DateADT
PeriodStartDate(CohortPeriod period, int32 idx)
{
	return PeriodStartJd(period, idx) - POSTGRES_EPOCH_JDATE;
}

/* Julian day of ts in the session time zone (the day date_trunc would see) */
static int32
LocalJulianDay(TimestampTz ts)
{
	int64		local;
	int64		days;

	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range: an infinite timestamp has no period"),
				 errhint("Filter infinite timestamps out in the inner query.")));
	local = CrmLocalUsecs(ts);
	days = local / USECS_PER_DAY;
	if (local % USECS_PER_DAY < 0)
		days--;
	return (int32) (days + POSTGRES_EPOCH_JDATE);
}

/* ========================================================================
 * Exact revenue: numeric -> 128-bit integer scaled by 10^dscale and back
 * ========================================================================
 */
#define I128_MAX	((int128) (~(uint128) 0 >> 1))

static int128 pow10_tab[39];

static inline int128
Pow10(int e)
{
	if (pow10_tab[0] == 0)
	{
		int			i;

		pow10_tab[0] = 1;
		for (i = 1; i < 39; i++)
			pow10_tab[i] = pow10_tab[i - 1] * 10;
	}
	return pow10_tab[e];
}

static void
RevenueOverflow(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("revenue is out of the range the cohort functions sum exactly"),
			 errdetail("Amounts are summed exactly as 128-bit fixed-point numbers (about 38 significant digits)."),
			 errhint("Round the amount in the inner query, for example round(amount, 2).")));
}

static inline int128
AddChecked(int128 a, int128 b)
{
	int128		r;

	if (__builtin_add_overflow(a, b, &r))
		RevenueOverflow();
	return r;
}

/* v * 10^(to - from), to >= from */
static inline int128
Rescale(int128 v, int from, int to)
{
	int128		r;

	if (to == from || v == 0)
		return v;
	if (__builtin_mul_overflow(v, Pow10(to - from), &r))
		RevenueOverflow();
	return r;
}

/*
 * The value of a numeric datum as an integer scaled by 10^dscale, reading
 * the numeric's stored form (base-10000 digits, weight, sign, display scale:
 * the on-disk format that pg_upgrade keeps stable) without converting it to
 * text or allocating.  NaN and infinities are refused.
 */
static int128
ScaledFromNumeric(Datum d, int *dscale)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
	const char *p = VARDATA_ANY(v);
	Size		len = VARSIZE_ANY_EXHDR(v);
	uint16		h;
	int			weight;
	int			ds;
	bool		neg;
	const char *digits;
	int			ndigits;
	int			e;
	int			i;
	int128		val = 0;

	if (len < sizeof(uint16))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid numeric amount")));
	memcpy(&h, p, sizeof(uint16));
	if ((h & 0xC000) == 0xC000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be a finite number"),
				 errhint("Filter NaN and infinite amounts out in the inner query.")));
	if ((h & 0xC000) == 0x8000)
	{
		/* short format: sign, display scale and weight packed in the header */
		neg = (h & 0x2000) != 0;
		ds = (h & 0x1F80) >> 7;
		weight = (h & 0x003F);
		if (h & 0x0040)
			weight |= ~0x003F;
		digits = p + sizeof(uint16);
		ndigits = (len - sizeof(uint16)) / sizeof(int16);
	}
	else
	{
		int16		w;

		if (len < 2 * sizeof(uint16))
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid numeric amount")));
		neg = (h & 0xC000) == 0x4000;
		ds = h & 0x3FFF;
		memcpy(&w, p + sizeof(uint16), sizeof(int16));
		weight = w;
		digits = p + 2 * sizeof(uint16);
		ndigits = (len - 2 * sizeof(uint16)) / sizeof(int16);
	}
	if (ds > COHORT_MAX_SCALE)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount has %d decimal places, the cohort functions keep at most %d",
						ds, COHORT_MAX_SCALE),
				 errhint("Round the amount in the inner query, for example round(amount, 2).")));
	*dscale = ds;
	if (ndigits == 0)
		return 0;
	/* val is the digits as an integer; its last digit group has weight 10000^(weight-ndigits+1) */
	e = 4 * (weight - ndigits + 1) + ds;
	if (ndigits <= 4 && e > -4 && e <= 0)
	{
		/* the usual amount: at most 16 digits, fits in an int64 (no 128-bit division) */
		int64		v64 = 0;

		for (i = 0; i < ndigits; i++)
		{
			int16		dg;

			memcpy(&dg, digits + i * sizeof(int16), sizeof(int16));
			v64 = v64 * 10000 + dg;
		}
		/* trailing fractional digits beyond dscale are zero */
		switch (-e)
		{
			case 1:
				v64 /= 10;
				break;
			case 2:
				v64 /= 100;
				break;
			case 3:
				v64 /= 1000;
				break;
		}
		return neg ? -v64 : v64;
	}
	for (i = 0; i < ndigits; i++)
	{
		int16		dg;

		memcpy(&dg, digits + i * sizeof(int16), sizeof(int16));
		if (__builtin_mul_overflow(val, (int128) 10000, &val) ||
			__builtin_add_overflow(val, (int128) dg, &val))
			RevenueOverflow();
	}
	if (e > 38)
		RevenueOverflow();
	else if (e > 0)
		val = Rescale(val, 0, e);
	else if (e < 0)
	{
		/* trailing fractional digits beyond dscale are zero */
		if (-e > 38)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid numeric amount")));
		val /= Pow10(-e);
	}
	return neg ? -val : val;
}

/* v / 10^dscale as text, e.g. (-5, 2) -> "-0.05" */
static char *
ScaledToCString(int128 v, int dscale, char *buf, Size buflen)
{
	char	   *p = buf + buflen;
	bool		neg = v < 0;
	uint128		u = neg ? -(uint128) v : (uint128) v;
	int			ndig = 0;

	*--p = '\0';
	do
	{
		*--p = '0' + (int) (u % 10);
		u /= 10;
		ndig++;
		if (ndig == dscale)
			*--p = '.';
	} while (u != 0 || ndig <= dscale);
	if (*p == '.')
		*--p = '0';
	if (neg)
		*--p = '-';
	return p;
}

static Numeric
NumericFromScaled(int128 v, int dscale)
{
	char		buf[64];

	return DatumGetNumeric(DirectFunctionCall3(numeric_in,
											   CStringGetDatum(ScaledToCString(v, dscale, buf, sizeof(buf))),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

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

typedef struct CohortHeader
{
	int32		nentries;
	int16		period;			/* CohortPeriod */
	int8		dscale;			/* decimal places of revenue, 0..COHORT_MAX_SCALE */
	int8		wide;			/* 0: CohortNarrow entries, 1: CohortEntry */
	int32		base;			/* narrow: the period index offsets count from */
} CohortHeader;

/* the header of 0.1.0's "CHA1" states */
typedef struct CohortHeaderV1
{
	int32		period;
	int32		dscale;
	int32		nentries;
	int32		reserved;
} CohortHeaderV1;

/* wide entry; also the form every reader works with */
typedef struct CohortEntry
{
	int32		idx;			/* period index */
	int32		reserved;
	int64		orders;			/* rows in this period, >= 1 */
	int128		revenue;		/* sum of non-null amounts, scaled */
} CohortEntry;

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
static const CohortHeader *
CohortPayload(Datum d)
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

/*
 * The entries of a checked payload as wide entries: the payload's own when
 * it is wide, else converted into buf (grown in cxt as needed).
 */
static const CohortEntry *
CohortWideEntries(const CohortHeader *h, CohortEntry **buf, int *bufcap, MemoryContext cxt)
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

	return CohortWideEntries(h, &buf, &cap, CurrentMemoryContext);
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
				 errmsg("crm.cohort_activity state would exceed the maximum size"),
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
		h = CohortPayload(PointerGetDatum(v));
		CohortAlloc(st, h, CohortEntries(h), h->nentries + 4);
	}
	if (st->h->period != (int32) period)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("crm.cohort_activity got period \"%s\" and \"%s\" in one group",
						period_names[st->h->period], period_names[period]),
				 errhint("Pass the same period on every row.")));
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
			int128		r = Rescale(NarrowRevenue(&ne[i]), st->h->dscale, ds);

			if (r < PG_INT64_MIN || r > PG_INT64_MAX)
			{
				CohortWiden(st);
				break;
			}
		}
		if (!st->h->wide)
		{
			for (i = 0; i < st->h->nentries; i++)
				NarrowSetRevenue(&ne[i], (int64) Rescale(NarrowRevenue(&ne[i]), st->h->dscale, ds));
			st->h->dscale = (int8) ds;
			return;
		}
	}
	{
		CohortEntry *we = (CohortEntry *) CohortEntries(st->h);

		for (i = 0; i < st->h->nentries; i++)
			we[i].revenue = Rescale(we[i].revenue, st->h->dscale, ds);
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
					 errmsg("crm.cohort_activity: too many events in one period")));
		e->revenue = AddChecked(e->revenue, revenue);
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
		cc->period = ParsePeriod(t);	/* errors on anything but a period name */
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
				 errmsg("crm.cohort_activity: period must not be null"),
				 errhint("Valid periods are day, week, month, quarter, year.")));
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

	idx = PeriodIndexFromJd(period, LocalJulianDay(PG_GETARG_TIMESTAMPTZ(1)));
	if (!PG_ARGISNULL(2))
	{
		int			ds;

		v = ScaledFromNumeric(PG_GETARG_DATUM(2), &ds);
		if (ds > st.h->dscale)
			CohortRescale(&st, ds);
		else
			v = Rescale(v, ds, st.h->dscale);
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
		rh = CohortPayload(PG_GETARG_DATUM(0));
		CohortStateArg(fcinfo, 0, (CohortPeriod) rh->period, &st);
		PG_RETURN_POINTER(st.v);
	}
	rh = CohortPayload(PG_GETARG_DATUM(1));
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
			merged[n].revenue = Rescale(merged[n].revenue, st.h->dscale, ds);
		}
		else if (i >= ln || re[j].idx < le[i].idx)
		{
			merged[n] = re[j++];
			merged[n].revenue = Rescale(merged[n].revenue, rh->dscale, ds);
		}
		else
		{
			merged[n] = le[i];
			if (__builtin_add_overflow(le[i].orders, re[j].orders, &merged[n].orders))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("crm.cohort_activity: too many events in one period")));
			merged[n].revenue = AddChecked(Rescale(le[i].revenue, st.h->dscale, ds),
										   Rescale(re[j].revenue, rh->dscale, ds));
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
	appendStringInfoString(&buf, period_names[h->period]);
	for (i = 0; i < h->nentries; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		appendStringInfoChar(&buf, ';');
		AppendDate(&buf, PeriodStartJd((CohortPeriod) h->period, ents[i].idx));
		appendStringInfo(&buf, "," INT64_FORMAT ",%s", ents[i].orders,
						 ScaledToCString(ents[i].revenue, h->dscale, num, sizeof(num)));
	}
	return buf.data;
}

Datum
crm_cohort_activity_state_out(PG_FUNCTION_ARGS)
{
	const CohortHeader *h = CohortPayload(PG_GETARG_DATUM(0));

	PG_RETURN_CSTRING(CohortPayloadToCString(h, CohortWideCopy(h)));
}

static void
CohortSyntaxError(const char *s, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type crm.cohort_activity_state: \"%s\"", s),
			 errdetail("%s", why),
			 errhint("The form is period;start,orders,revenue;... with period starts in increasing order, e.g. 'month;2025-01-01,3,150.50'.")));
}

/* parse an optionally signed decimal, returning value scaled and its decimal count */
static const char *
ParseScaled(const char *s, const char *all, int128 *val, int *ndec)
{
	bool		neg = false;
	bool		anydigit = false;
	int128		v = 0;

	*ndec = 0;
	if (*s == '-')
		neg = true, s++;
	for (;;)
	{
		if (*s >= '0' && *s <= '9')
		{
			if (v > (I128_MAX - 9) / 10)
				CohortSyntaxError(all, "A revenue value is too large.");
			v = v * 10 + (*s - '0');
			anydigit = true;
			if (*ndec > 0)
				(*ndec)++;
			s++;
		}
		else if (*s == '.' && *ndec == 0)
		{
			*ndec = 1;
			s++;
		}
		else
			break;
	}
	if (*ndec > 0)
		(*ndec)--;
	if (!anydigit)
		CohortSyntaxError(all, "A revenue value is missing.");
	*val = neg ? -v : v;
	return s;
}

/*
 * Parse the text form.  Every field is validated; the result is then
 * printed again and must equal the input, so the text form is canonical and
 * round-trips exactly.
 */
Datum
crm_cohort_activity_state_in(PG_FUNCTION_ARGS)
{
	const char *all = PG_GETARG_CSTRING(0);
	const char *s = all;
	StringInfoData pay;
	CohortHeader h;
	int			period = -1;
	int			i;
	int32		lo,
				hi;
	char	   *again;

	memset(&h, 0, sizeof(h));
	h.dscale = -1;
	for (i = 0; i < NUM_PERIODS; i++)
	{
		size_t		l = strlen(period_names[i]);

		if (strncmp(s, period_names[i], l) == 0 && (s[l] == ';' || s[l] == '\0'))
		{
			period = i;
			s += l;
			break;
		}
	}
	if (period < 0)
		CohortSyntaxError(all, "It must start with day, week, month, quarter or year.");
	h.period = period;
	PeriodIndexBounds((CohortPeriod) period, &lo, &hi);

	initStringInfo(&pay);		/* the entries, wide */
	while (*s == ';')
	{
		CohortEntry e;
		int			y,
					m,
					d,
					nread = 0;
		long long	orders;
		char	   *end;
		int			ndec;
		int32		jd;

		CHECK_FOR_INTERRUPTS();
		s++;
		memset(&e, 0, sizeof(e));
		if (sscanf(s, "%d-%d-%d,%n", &y, &m, &d, &nread) != 3 || nread == 0)
			CohortSyntaxError(all, "A period start date is malformed.");
		if (m < 1 || m > 12 || d < 1 || d > 31 || y < -4713 || y > 294276)
			CohortSyntaxError(all, "A period start date is out of range.");
		s += nread;
		jd = date2j(y, m, d);
		if (jd < 0)
			CohortSyntaxError(all, "A period start date is out of range.");
		e.idx = PeriodIndexFromJd((CohortPeriod) period, jd);
		if (e.idx < lo || e.idx > hi || PeriodStartJd((CohortPeriod) period, e.idx) != jd)
			CohortSyntaxError(all, "A date is not the first day of a period.");
		if (h.nentries > 0 &&
			e.idx <= ((CohortEntry *) pay.data)[h.nentries - 1].idx)
			CohortSyntaxError(all, "Periods must be strictly increasing.");
		errno = 0;
		orders = strtoll(s, &end, 10);
		if (end == s || errno != 0 || orders < 1 || *end != ',')
			CohortSyntaxError(all, "An order count must be a positive integer.");
		e.orders = orders;
		s = ParseScaled(end + 1, all, &e.revenue, &ndec);
		if (ndec > COHORT_MAX_SCALE)
			CohortSyntaxError(all, "A revenue value has too many decimal places.");
		if (h.dscale >= 0 && ndec != h.dscale)
			CohortSyntaxError(all, "Every revenue value must have the same number of decimal places.");
		h.dscale = ndec;
		appendBinaryStringInfo(&pay, (char *) &e, sizeof(e));
		h.nentries++;
	}
	if (*s != '\0')
		CohortSyntaxError(all, "Unexpected characters at the end.");
	if (h.dscale < 0)
		h.dscale = 0;
	h.wide = 1;

	again = CohortPayloadToCString(&h, (const CohortEntry *) pay.data);
	if (strcmp(again, all) != 0)
		CohortSyntaxError(all, psprintf("It is not in canonical form (\"%s\").", again));
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
	h = CohortPayload(PG_GETARG_DATUM(0));
	ents = CohortWideCopy(h);
	for (i = 0; i < h->nentries; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		values[0] = DateADTGetDatum(PeriodStartDate((CohortPeriod) h->period, ents[i].idx));
		values[1] = Int64GetDatum(ents[i].orders);
		values[2] = NumericGetDatum(NumericFromScaled(ents[i].revenue, h->dscale));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ========================================================================
 * Report functions: fold per-entity states into cohorts / periods
 * ========================================================================
 */
typedef enum RollupMode
{
	ROLLUP_COHORTS,
	ROLLUP_PERIODS
} RollupMode;

/* per cohort (ROLLUP_COHORTS): counters by period_no */
typedef struct CohortAcc
{
	int32		cohort;			/* hash key: period index of first activity */
	int64		size;
	int			cap;
	int			used;			/* highest period_no seen + 1 */
	int64	   *active;
	int128	   *revenue;
} CohortAcc;

/* per calendar period (ROLLUP_PERIODS) */
typedef struct PeriodAcc
{
	int32		idx;			/* hash key: period index */
	int64		active;			/* E */
	int64		newc;			/* N: first activity in this period */
	int64		retained;		/* active here and in the previous period */
	int64		repeat;			/* active here with >= 2 orders to date */
	int64		orders;
	int128		revenue;
} PeriodAcc;

typedef struct RollupReceiver
{
	DestReceiver pub;
	RollupMode	mode;
	CohortPeriod period;
	int			periods;		/* ROLLUP_COHORTS: period_no 0..periods-1 */
	MemoryContext cxt;			/* accumulators */
	MemoryContext tmpcxt;		/* per tuple */
	HTAB	   *table;
	int			dscale;			/* of every revenue accumulator */
	bool		any;
	int32		minidx;			/* earliest / latest active period */
	int32		maxidx;
	bool		has_asof;		/* report up to the period of as_of */
	int32		asof_idx;		/* periods after it are ignored */
	CohortEntry *buf;			/* an entity's entries, widened */
	int			bufcap;
	const char *fname;			/* for errors */
	Oid			rowtypes[2];	/* what RollupReceive reads: boolean, crm.cohort_activity_state */
} RollupReceiver;

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
static void
RollupRescale(RollupReceiver *r, int ds)
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
				c->revenue[k] = Rescale(c->revenue[k], r->dscale, ds);
		}
	}
	else
	{
		PeriodAcc  *p;

		while ((p = hash_seq_search(&seq)) != NULL)
			p->revenue = Rescale(p->revenue, r->dscale, ds);
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
		c->revenue[k] = AddChecked(c->revenue[k], Rescale(ents[i].revenue, h->dscale, r->dscale));
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
		p->revenue = AddChecked(p->revenue, Rescale(ents[i].revenue, h->dscale, r->dscale));
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
	h = CohortPayload(d);
	ents = CohortWideEntries(h, &r->buf, &r->bufcap, r->cxt);
	n = h->nentries;
	/* with as_of: only the periods up to as_of's (entries are sorted) */
	while (r->has_asof && n > 0 && ents[n - 1].idx > r->asof_idx)
		n--;
	if (n > 0)
	{
		if (h->period != (int32) r->period)
			elog(ERROR, "crm_analytics: cohort state of an unexpected period");
		if (h->dscale > r->dscale)
			RollupRescale(r, h->dscale);
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
static void
RollupCreateTable(RollupReceiver *r)
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

static const CrmColumnSpec cohort_columns[] = {
	{"entity", CRM_COL_ANY, false},
	{"ts", CRM_COL_TIMESTAMP, false},
	{"amount", CRM_COL_NUMERIC, true},
};

/*
 * Run the per-entity aggregate over the inner query (in parallel when the
 * planner likes) and fold its rows into r.  SPI must be connected.  Returns
 * whether the inner query has an amount column.
 */
static bool
RollupRun(const char *fname, const char *sql, RollupReceiver *r)
{
	int			natts;
	StringInfoData q;
	SPIExecuteOptions opts;
	SPIPlanPtr	plan;
	int			ret;

	/* one SELECT with the right columns (its own plan is not needed here) */
	plan = CrmInnerQueryPrepare(fname, sql, cohort_columns, 3, &natts, NULL);
	SPI_freeplan(plan);

	RollupCreateTable(r);

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
					 period_names[r->period], sql, natts >= 3 ? ", amount" : "");

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
				RollupRescale(r, row->ds);
			continue;
		}
		if (e == NULL || row->idx < e->cohort)
		{
			t->why = TWO_PASS_CHANGED;
			break;
		}
		if (row->ds > r->dscale)
			RollupRescale(r, row->ds);
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
			c->revenue[k] = AddChecked(c->revenue[k], Rescale(row->v, row->ds, r->dscale));
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

/* amount (of base type t->amountbase) scaled, as ScaledFromNumeric(amount::numeric) */
static int128
TwoPassAmount(TwoPassReceiver *t, Datum d, int *ds)
{
	int128		v;
	MemoryContext old;

	switch (t->amountbase)
	{
		case NUMERICOID:
			return ScaledFromNumeric(d, ds);
		case INT2OID:
		case INT4OID:
		case INT8OID:
			*ds = 0;
			return CrmIntKey(d, t->amountbase);
		case FLOAT4OID:
		case FLOAT8OID:
			old = MemoryContextSwitchTo(t->r->tmpcxt);
			v = ScaledFromNumeric(DirectFunctionCall1(t->amountbase == FLOAT4OID ? float4_numeric : float8_numeric, d), ds);
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
	row->idx = PeriodIndexFromJd(r->period, LocalJulianDay(TwoPassTs(t, d)));
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
static bool
TwoPassRollup(const char *fname, const char *sql, RollupReceiver *r, bool *has_amount)
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
	plan = CrmInnerQueryPrepare(fname, sql, cohort_columns, 3, &natts, types);
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
	t.pub.rShutdown = RollupShutdown;
	t.pub.rDestroy = RollupDestroy;
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
			RollupCreateTable(r);
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
				(errmsg_internal("%s: two-pass method not used: %s", fname, t.why)));
		return false;
	}
	cohortent_destroy(t.ents);
	*has_amount = t.has_amount;
	return true;
}

/* common argument checks of the report functions */
static CohortPeriod
ReportArgs(FunctionCallInfo fcinfo, const char *fname, char **sql)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: the inner query must not be null", fname),
				 errhint("Pass a query returning (entity, ts timestamptz [, amount numeric]).")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: period must not be null", fname),
				 errhint("Valid periods are day, week, month, quarter, year.")));
	*sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	return ParsePeriod(PG_GETARG_TEXT_PP(1));
}

/*
 * Optional as_of argument argno: the last period reported is the one holding
 * as_of (events of later periods are ignored, and periods up to it are
 * reported even when they have no events).  NULL: the last period with an
 * event.
 */
static void
RollupAsOf(FunctionCallInfo fcinfo, int argno, RollupReceiver *r)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return;
	r->has_asof = true;
	r->asof_idx = PeriodIndexFromJd(r->period, LocalJulianDay(PG_GETARG_TIMESTAMPTZ(argno)));
}

static RollupReceiver *
RollupNew(RollupMode mode, CohortPeriod period, int periods)
{
	RollupReceiver *r = palloc0(sizeof(RollupReceiver));

	r->mode = mode;
	r->period = period;
	r->periods = periods;
	r->cxt = AllocSetContextCreate(CurrentMemoryContext, "crm cohort rollup", ALLOCSET_DEFAULT_SIZES);
	r->tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "crm cohort rollup row", ALLOCSET_DEFAULT_SIZES);
	return r;
}

static void
RollupFree(RollupReceiver *r)
{
	MemoryContextDelete(r->cxt);
	MemoryContextDelete(r->tmpcxt);
	pfree(r);
}

static int
CompareInt32Key(const void *a, const void *b)
{
	int32		x = **(const int32 *const *) a;
	int32		y = **(const int32 *const *) b;

	return (x > y) - (x < y);
}

/* numeric a / b rounded to scale places */
static Datum
NumericRatio(Numeric a, int64 b, int scale)
{
	Datum		q = DirectFunctionCall2(numeric_div, NumericGetDatum(a),
										NumericGetDatum(int64_to_numeric(b)));

	return DirectFunctionCall2(numeric_round, q, Int32GetDatum(scale));
}

/*
 * crm.cohort_retention(events_sql text, period text, periods int [, as_of timestamptz])
 *   -> TABLE(cohort date, period_no int, cohort_size bigint, active bigint,
 *            retention_rate numeric, revenue numeric, cumulative_ltv numeric)
 */
Datum
crm_cohort_retention(PG_FUNCTION_ARGS)
{
	const char *fname = "crm.cohort_retention";
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql;
	CohortPeriod period;
	int			periods;
	RollupReceiver *r;
	bool		has_amount;
	CohortAcc **cohorts;
	HASH_SEQ_STATUS seq;
	CohortAcc  *c;
	long		ncohorts;
	long		i;
	int			ltv_scale;
	MemoryContext outer;

	period = ReportArgs(fcinfo, fname, &sql);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s: periods must not be null", fname)));
	periods = PG_GETARG_INT32(2);
	if (periods < 1 || periods > COHORT_MAX_PERIODS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: periods must be between 1 and %d, got %d", fname, COHORT_MAX_PERIODS, periods),
				 errhint("periods is the number of period columns per cohort (period_no 0 .. periods-1).")));

	InitMaterializedSRF(fcinfo, 0);
	outer = CurrentMemoryContext;
	r = RollupNew(ROLLUP_COHORTS, period, periods);
	RollupAsOf(fcinfo, 3, r);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!TwoPassRollup(fname, sql, r, &has_amount))
	{
		/* start over with a new receiver, outside SPI's memory as the first */
		MemoryContext spi = MemoryContextSwitchTo(outer);

		RollupFree(r);
		r = RollupNew(ROLLUP_COHORTS, period, periods);
		RollupAsOf(fcinfo, 3, r);
		MemoryContextSwitchTo(spi);
		has_amount = RollupRun(fname, sql, r);
	}
	if (r->has_asof)
		r->maxidx = r->asof_idx;

	ncohorts = hash_get_num_entries(r->table);
	cohorts = palloc(sizeof(CohortAcc *) * Max(ncohorts, 1));
	hash_seq_init(&seq, r->table);
	i = 0;
	while ((c = hash_seq_search(&seq)) != NULL)
		cohorts[i++] = c;
	qsort(cohorts, ncohorts, sizeof(CohortAcc *), CompareInt32Key);
	ltv_scale = Max(r->dscale, 2);

	for (i = 0; i < ncohorts; i++)
	{
		int64		kmax;
		int64		k;
		int128		cum = 0;

		CHECK_FOR_INTERRUPTS();
		c = cohorts[i];
		/* young cohorts: no period after the last one in the data */
		kmax = Min((int64) periods - 1, (int64) r->maxidx - c->cohort);
		for (k = 0; k <= kmax; k++)
		{
			Datum		values[7];
			bool		nulls[7] = {false, false, false, false, false, false, false};
			int64		active = (k < c->used) ? c->active[k] : 0;
			int128		rev = (k < c->used) ? c->revenue[k] : 0;

			cum = AddChecked(cum, rev);
			values[0] = DateADTGetDatum(PeriodStartDate(period, c->cohort));
			values[1] = Int32GetDatum((int32) k);
			values[2] = Int64GetDatum(c->size);
			values[3] = Int64GetDatum(active);
			values[4] = NumericRatio(int64_to_numeric(active), c->size, 4);
			if (has_amount)
			{
				values[5] = NumericGetDatum(NumericFromScaled(rev, r->dscale));
				values[6] = NumericRatio(NumericFromScaled(cum, r->dscale), c->size, ltv_scale);
			}
			else
				nulls[5] = nulls[6] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();
	RollupFree(r);
	return (Datum) 0;
}

/*
 * crm.retention_metrics(events_sql text, period text [, as_of timestamptz])
 *   -> TABLE(period_start date, customers_start bigint, new_customers bigint,
 *            active_customers bigint, retained bigint, churned bigint,
 *            churn_rate numeric, retention_rate numeric, orders bigint,
 *            revenue numeric, repeat_customers bigint,
 *            repeat_purchase_rate numeric, aov numeric)
 * one row per calendar period from the first active one to the last active
 * one (or as_of's).
 */
Datum
crm_retention_metrics(PG_FUNCTION_ARGS)
{
	const char *fname = "crm.retention_metrics";
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *sql;
	CohortPeriod period;
	RollupReceiver *r;
	bool		has_amount;
	int64		p;
	int64		prev_active = 0;
	int			aov_scale;

	period = ReportArgs(fcinfo, fname, &sql);
	InitMaterializedSRF(fcinfo, 0);
	r = RollupNew(ROLLUP_PERIODS, period, 0);
	RollupAsOf(fcinfo, 2, r);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	has_amount = RollupRun(fname, sql, r);
	if (r->has_asof && r->any)
		r->maxidx = r->asof_idx;
	aov_scale = Max(r->dscale, 2);

	if (r->any && (int64) r->maxidx - r->minidx + 1 > METRICS_MAX_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s: the data spans " INT64_FORMAT " periods, at most %d are reported",
						fname, (int64) r->maxidx - r->minidx + 1, METRICS_MAX_ROWS),
				 errhint("Use a longer period or restrict the time range in the inner query.")));

	for (p = r->minidx; r->any && p <= r->maxidx; p++)
	{
		int32		key = (int32) p;
		PeriodAcc  *a = hash_search(r->table, &key, HASH_FIND, NULL);
		PeriodAcc	zero;
		Datum		values[13];
		bool		nulls[13];
		int64		S = prev_active;

		if (a == NULL)
		{
			memset(&zero, 0, sizeof(zero));
			a = &zero;
		}
		memset(nulls, 0, sizeof(nulls));
		values[0] = DateADTGetDatum(PeriodStartDate(period, key));
		values[1] = Int64GetDatum(S);
		values[2] = Int64GetDatum(a->newc);
		values[3] = Int64GetDatum(a->active);
		values[4] = Int64GetDatum(a->retained);
		values[5] = Int64GetDatum(S - a->retained);
		if (S > 0)
		{
			values[6] = NumericRatio(int64_to_numeric(S - a->retained), S, 4);
			values[7] = NumericRatio(int64_to_numeric(a->active - a->newc), S, 4);
		}
		else
			nulls[6] = nulls[7] = true;
		values[8] = Int64GetDatum(a->orders);
		if (has_amount)
			values[9] = NumericGetDatum(NumericFromScaled(a->revenue, r->dscale));
		else
			nulls[9] = true;
		values[10] = Int64GetDatum(a->repeat);
		if (a->active > 0)
			values[11] = NumericRatio(int64_to_numeric(a->repeat), a->active, 4);
		else
			nulls[11] = true;
		if (has_amount && a->orders > 0)
			values[12] = NumericRatio(NumericFromScaled(a->revenue, r->dscale), a->orders, aov_scale);
		else
			nulls[12] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		prev_active = a->active;
	}
	SPI_finish();
	RollupFree(r);
	return (Datum) 0;
}
