/*
 * clv.c
 *      Lifetime value (product section 4): the per-customer summary
 *      crm.clv_summary (frequency, recency, T, monetary with the `lifetimes`
 *      conventions), the BG/NBD and Gamma-Gamma models fitted by maximum
 *      likelihood on compressed distinct patterns (crm.bgnbd_fit,
 *      crm.gamma_gamma_fit), their predictions (expected purchases, P(alive),
 *      expected spend, discounted CLV), the Gaussian hypergeometric function
 *      they need, and a simulator that draws customers from known parameters.
 *
 * Models: Fader, Hardie & Lee (2005) "Counting your customers the easy way"
 * (BG/NBD; log-likelihood in the form of Hardie's note 027) and Fader &
 * Hardie note 025 (Gamma-Gamma spend model).
 */
#include "crm_analytics.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(clv_summary_transfn);
PG_FUNCTION_INFO_V1(clv_summary_combinefn);
PG_FUNCTION_INFO_V1(clv_summary_finalfn);
PG_FUNCTION_INFO_V1(clv_summary_state_in);
PG_FUNCTION_INFO_V1(clv_summary_state_out);
PG_FUNCTION_INFO_V1(clv_bgnbd_transfn);
PG_FUNCTION_INFO_V1(clv_bgnbd_combinefn);
PG_FUNCTION_INFO_V1(clv_bgnbd_finalfn);
PG_FUNCTION_INFO_V1(clv_bgnbd_state_in);
PG_FUNCTION_INFO_V1(clv_bgnbd_state_out);
PG_FUNCTION_INFO_V1(clv_gg_transfn);
PG_FUNCTION_INFO_V1(clv_gg_combinefn);
PG_FUNCTION_INFO_V1(clv_gg_finalfn);
PG_FUNCTION_INFO_V1(clv_gg_state_in);
PG_FUNCTION_INFO_V1(clv_gg_state_out);
PG_FUNCTION_INFO_V1(clv_bgnbd_expected_purchases);
PG_FUNCTION_INFO_V1(clv_bgnbd_p_alive);
PG_FUNCTION_INFO_V1(clv_gg_expected_value);
PG_FUNCTION_INFO_V1(clv_clv);
PG_FUNCTION_INFO_V1(clv_hyp2f1);
PG_FUNCTION_INFO_V1(clv_simulate);


/* ========================================================================
 * Part 1: crm.clv_summary
 *
 * Payload: ClvSummaryHeader, then entries, each a ClvSummaryEntry followed
 * by the amount as a numeric varlena (4-byte header), padded to MAXALIGN.
 * Rows are appended as they come; the final function sorts by period and
 * merges rows of the same period.
 * ========================================================================
 */
typedef struct ClvSummaryHeader
{
	int64		obs_end;		/* observation_end (timestamptz) */
	int64		unit;			/* unit in microseconds */
	int64		gran;			/* period length: min(unit, 1 day) */
	int64		obs_period;		/* period number of observation_end */
	int64		nentries;
} ClvSummaryHeader;

typedef struct ClvSummaryEntry
{
	int64		period;
	int32		nbytes;			/* size of the numeric that follows */
	int32		pad;
} ClvSummaryEntry;

/* floor division for a possibly negative numerator */
static inline int64
FloorDiv(int64 a, int64 b)
{
	int64		q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* period number of ts: calendar period of length gran in the session time zone */
static int64
SummaryPeriod(TimestampTz ts, int64 gran)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv_summary: timestamps must be finite")));
	return FloorDiv(CrmLocalUsecs(ts), gran);
}

/* unit interval -> microseconds, checked */
static int64
SummaryUnit(Interval *unit)
{
	int64		us;

	if (unit->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv_summary: unit must not contain months or years"),
				 errhint("Months differ in length; use a fixed unit such as '7 days' or '30 days'.")));
	us = (int64) unit->day * USECS_PER_DAY + unit->time;
	if (us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv_summary: unit must be positive"),
				 errhint("Use for example '1 day' or '7 days'.")));
	return us;
}

/*
 * The summary state is kept per customer, so a GROUP BY over a million
 * customers holds a million states.  Expanded objects (CrmState) each own a
 * memory context, and PostgreSQL's hash aggregation walks every child
 * context of the aggregate context whenever it adds a group
 * (hash_agg_check_limits -> MemoryContextMemAllocated), which is quadratic
 * in the number of groups.  So this state is a flat varlena, still updated
 * in place: [varlena header][magic][int64 used][payload, cap bytes].  It
 * grows by doubling into a new buffer in the per-call context, which
 * nodeAgg copies into the aggregate context (freeing the old one); between
 * growths the same pointer is returned and nothing is copied.
 */
typedef struct SumState
{
	struct varlena *v;
	char	   *data;			/* payload: ClvSummaryHeader then entries */
	Size		len;			/* payload bytes in use */
	Size		cap;			/* payload bytes allocated */
} SumState;

#define SUM_PREFIX (CRM_STATE_FLAT_HDRSZ + sizeof(int64))

/* a flat summary state of payload capacity cap, in the current context */
static void
SumStateAlloc(SumState *st, Size cap, const char *payload, Size len)
{
	uint32		magic = CRM_MAGIC_CLV_SUMMARY;
	int64		used = (int64) len;

	if (!AllocSizeIsValid(SUM_PREFIX + cap))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("clv_summary: state would exceed the maximum size"),
				 errhint("Aggregate per customer: GROUP BY the customer.")));
	st->v = (struct varlena *) palloc(SUM_PREFIX + cap);
	SET_VARSIZE(st->v, SUM_PREFIX + cap);
	memcpy((char *) st->v + VARHDRSZ, &magic, sizeof(uint32));
	memcpy((char *) st->v + CRM_STATE_FLAT_HDRSZ, &used, sizeof(int64));
	st->data = (char *) st->v + SUM_PREFIX;
	st->cap = cap;
	st->len = len;
	if (len > 0)
		memcpy(st->data, payload, len);
}

/* payload and used length of a summary state datum (read-only, validated) */
static const char *
SumPayload(Datum d, Size *len)
{
	Size		rawlen;
	const char *raw = CrmStatePayload(d, CRM_MAGIC_CLV_SUMMARY, &rawlen);
	int64		used;

	if (rawlen < sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid clv_summary state: too short")));
	memcpy(&used, raw, sizeof(int64));
	if (used < 0 || (Size) used > rawlen - sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid clv_summary state: bad length")));
	*len = (Size) used;
	return raw + sizeof(int64);
}

/* the writable state of argument argno (a new one when NULL) */
static void
SumStateArg(FunctionCallInfo fcinfo, int argno, SumState *st)
{
	struct varlena *v;
	int64		used;

	if (PG_ARGISNULL(argno))
	{
		SumStateAlloc(st, 128, NULL, 0);
		return;
	}
	v = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(argno));
	if (VARATT_IS_EXTENDED(v) || VARSIZE(v) < SUM_PREFIX)
	{
		const char *payload;
		Size		len;

		payload = SumPayload(PG_GETARG_DATUM(argno), &len);
		SumStateAlloc(st, Max(len, 128), payload, len);
		return;
	}
	/* our own state from the previous call: check it, then use it in place */
	{
		Size		len;

		(void) SumPayload(PointerGetDatum(v), &len);
	}
	memcpy(&used, (char *) v + CRM_STATE_FLAT_HDRSZ, sizeof(int64));
	st->v = v;
	st->data = (char *) v + SUM_PREFIX;
	st->cap = VARSIZE(v) - SUM_PREFIX;
	st->len = (Size) used;
}

/* room for extra more bytes; returns a pointer to the first free byte */
static char *
SumReserve(SumState *st, Size extra)
{
	if (st->len + extra > st->cap)
	{
		SumState	grown;

		SumStateAlloc(&grown, Max(st->cap * 2, st->len + extra), st->data, st->len);
		*st = grown;
	}
	return st->data + st->len;
}

/* the state as a datum, with its used length stored */
static Datum
SumDatum(SumState *st)
{
	int64		used = (int64) st->len;

	memcpy((char *) st->v + CRM_STATE_FLAT_HDRSZ, &used, sizeof(int64));
	return PointerGetDatum(st->v);
}

/* header of a writable summary state (payload may move on reserve) */
static inline ClvSummaryHeader *
SummaryHeader(SumState *st)
{
	return (ClvSummaryHeader *) st->data;
}

/* append one (period, amount) entry */
static void
SummaryAppend(SumState *st, int64 period, Numeric amount)
{
	int32		nb = VARSIZE(amount);
	Size		sz = sizeof(ClvSummaryEntry) + MAXALIGN(nb);
	char	   *p = SumReserve(st, sz);
	ClvSummaryEntry e;

	e.period = period;
	e.nbytes = nb;
	e.pad = 0;
	memset(p, 0, sz);
	memcpy(p, &e, sizeof(e));
	memcpy(p + sizeof(e), amount, nb);
	st->len += sz;
	SummaryHeader(st)->nentries++;
}

/* set the header of a fresh state, or check that the parameters agree */
static void
SummarySetParams(SumState *st, int64 obs_end, int64 unit)
{
	ClvSummaryHeader *h;

	if (st->len == 0)
	{
		h = (ClvSummaryHeader *) SumReserve(st, sizeof(ClvSummaryHeader));
		h->obs_end = obs_end;
		h->unit = unit;
		h->gran = Min(unit, USECS_PER_DAY);
		h->obs_period = SummaryPeriod(obs_end, h->gran);
		h->nentries = 0;
		st->len = sizeof(ClvSummaryHeader);
		return;
	}
	h = SummaryHeader(st);
	if (h->obs_end != obs_end || h->unit != unit)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv_summary: observation_end and unit must be the same on every row of a group"),
				 errhint("Pass constants, for example clv_summary(ts, amount, '1997-09-30', '7 days').")));
}

/*
 * clv_summary_transfn(state, ts, amount, observation_end [, unit])
 * Rows with a NULL ts are ignored; a NULL amount counts as a purchase of 0.
 * Rows after observation_end are outside the calibration period: ignored.
 */
Datum
clv_summary_transfn(PG_FUNCTION_ARGS)
{
	SumState	st_;
	SumState   *st = &st_;
	TimestampTz ts;
	int64		unit;
	int64		period;
	Numeric		amount;

	(void) CrmAggContext(fcinfo, "clv_summary_transfn");
	SumStateArg(fcinfo, 0, st);
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("clv_summary: observation_end must not be null")));
	if (PG_NARGS() > 4 && PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("clv_summary: unit must not be null")));
	if (TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(3)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv_summary: observation_end must be finite")));
	unit = PG_NARGS() > 4 ? SummaryUnit(PG_GETARG_INTERVAL_P(4)) : USECS_PER_DAY;
	SummarySetParams(st, PG_GETARG_TIMESTAMPTZ(3), unit);

	if (PG_ARGISNULL(1))
		PG_RETURN_DATUM(SumDatum(st));
	ts = PG_GETARG_TIMESTAMPTZ(1);
	period = SummaryPeriod(ts, SummaryHeader(st)->gran);
	if (period > SummaryHeader(st)->obs_period)
		PG_RETURN_DATUM(SumDatum(st));

	if (PG_ARGISNULL(2))
		amount = int64_to_numeric(0);
	else
	{
		amount = PG_GETARG_NUMERIC(2);
		if (numeric_is_nan(amount) || numeric_is_inf(amount))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("clv_summary: amount must be a finite number"),
					 errhint("Filter out or repair rows whose amount is NaN or infinity.")));
	}
	SummaryAppend(st, period, amount);
	PG_RETURN_DATUM(SumDatum(st));
}

/* clv_summary_combinefn: concatenate the entries of two states */
Datum
clv_summary_combinefn(PG_FUNCTION_ARGS)
{
	SumState	st_;
	SumState   *st = &st_;
	const char *rp;
	Size		rlen;
	ClvSummaryHeader rh;

	(void) CrmAggContext(fcinfo, "clv_summary_combinefn");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	SumStateArg(fcinfo, 0, st);
	rp = SumPayload(PG_GETARG_DATUM(1), &rlen);
	if (rlen == 0)
		PG_RETURN_DATUM(SumDatum(st));
	if (rlen < sizeof(rh))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid clv_summary state: too short")));
	memcpy(&rh, rp, sizeof(rh));
	SummarySetParams(st, rh.obs_end, rh.unit);
	if (rlen > sizeof(rh))
	{
		char	   *dst = SumReserve(st, rlen - sizeof(rh));

		memcpy(dst, rp + sizeof(rh), rlen - sizeof(rh));
		st->len += rlen - sizeof(rh);
		SummaryHeader(st)->nentries += rh.nentries;
	}
	PG_RETURN_DATUM(SumDatum(st));
}

typedef struct SummaryItem
{
	int64		period;
	Numeric		amount;
} SummaryItem;

static int
SummaryItemCmp(const void *a, const void *b)
{
	int64		pa = ((const SummaryItem *) a)->period;
	int64		pb = ((const SummaryItem *) b)->period;

	return pa < pb ? -1 : (pa > pb ? 1 : 0);
}

/* the same as an inlined sort that checks for interrupts (one group may hold millions of rows) */
#define ST_SORT summary_item_sort
#define ST_ELEMENT_TYPE SummaryItem
#define ST_COMPARE(a, b) SummaryItemCmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* walk the entries of a payload; validates sizes (payload from outside) */
static SummaryItem *
SummaryItems(const char *payload, Size len, ClvSummaryHeader *h)
{
	SummaryItem *items;
	Size		off;
	int64		i;

	if (len < sizeof(ClvSummaryHeader))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid clv_summary state: too short")));
	memcpy(h, payload, sizeof(*h));
	if (h->nentries < 0 || (Size) h->nentries > len / sizeof(ClvSummaryEntry))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid clv_summary state: bad entry count")));
	items = palloc(sizeof(SummaryItem) * Max(h->nentries, 1));
	off = sizeof(ClvSummaryHeader);
	for (i = 0; i < h->nentries; i++)
	{
		ClvSummaryEntry e;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		if (off + sizeof(e) > len)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid clv_summary state: truncated")));
		memcpy(&e, payload + off, sizeof(e));
		if (e.nbytes < (int32) VARHDRSZ || off + sizeof(e) + MAXALIGN(e.nbytes) > len)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid clv_summary state: truncated")));
		items[i].period = e.period;
		items[i].amount = (Numeric) (payload + off + sizeof(e));
		off += sizeof(e) + MAXALIGN(e.nbytes);
	}
	if (off != len)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid clv_summary state: trailing bytes")));
	return items;
}

/*
 * clv_summary_finalfn -> crm.clv_customer (frequency, recency, t, monetary)
 *   frequency = distinct periods - 1 (repeat purchases)
 *   recency   = (last period - first period) in units
 *   t         = (period of observation_end - first period) in units
 *   monetary  = mean of the repeat periods' summed amounts (0 when frequency = 0)
 */
Datum
clv_summary_finalfn(PG_FUNCTION_ARGS)
{
	const char *payload;
	Size		len;
	ClvSummaryHeader h;
	SummaryItem *items;
	int64		i;
	int64		nperiods;
	int64		first, last;
	Datum		first_sum;
	Datum		total;
	Datum		monetary;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	double		scale;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	payload = SumPayload(PG_GETARG_DATUM(0), &len);
	if (len == 0)
		PG_RETURN_NULL();
	items = SummaryItems(payload, len, &h);
	if (h.nentries == 0)
		PG_RETURN_NULL();
	summary_item_sort(items, h.nentries);

	first = items[0].period;
	last = items[h.nentries - 1].period;
	first_sum = NumericGetDatum(int64_to_numeric(0));
	total = NumericGetDatum(int64_to_numeric(0));
	nperiods = 0;
	for (i = 0; i < h.nentries; i++)
	{
		Datum		amt = NumericGetDatum(items[i].amount);

		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();

		if (i == 0 || items[i].period != items[i - 1].period)
			nperiods++;
		if (items[i].period == first)
			first_sum = DirectFunctionCall2(numeric_add, first_sum, amt);
		else
			total = DirectFunctionCall2(numeric_add, total, amt);
	}
	if (nperiods > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("clv_summary: frequency out of range")));
	if (nperiods > 1)
		monetary = DirectFunctionCall2(numeric_div, total,
									   NumericGetDatum(int64_to_numeric(nperiods - 1)));
	else
		monetary = NumericGetDatum(int64_to_numeric(0));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "clv_summary_finalfn: return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	scale = (double) h.gran / (double) h.unit;
	values[0] = Int32GetDatum((int32) (nperiods - 1));
	values[1] = Float8GetDatum((double) (last - first) * scale);
	values[2] = Float8GetDatum((double) (h.obs_period - first) * scale);
	values[3] = monetary;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* text form: "obs_end_us unit_us n" then "period amount" per entry */
Datum
clv_summary_state_out(PG_FUNCTION_ARGS)
{
	Size		len;
	const char *payload = SumPayload(PG_GETARG_DATUM(0), &len);
	ClvSummaryHeader h;
	SummaryItem *items;
	StringInfoData buf;
	int64		i;

	initStringInfo(&buf);
	if (len == 0)
	{
		appendStringInfoString(&buf, "empty");
		PG_RETURN_CSTRING(buf.data);
	}
	items = SummaryItems(payload, len, &h);
	appendStringInfo(&buf, INT64_FORMAT " " INT64_FORMAT " " INT64_FORMAT,
					 h.obs_end, h.unit, h.nentries);
	for (i = 0; i < h.nentries; i++)
		appendStringInfo(&buf, " " INT64_FORMAT " %s", items[i].period,
						 DatumGetCString(DirectFunctionCall1(numeric_out,
															 NumericGetDatum(items[i].amount))));
	PG_RETURN_CSTRING(buf.data);
}

/* next whitespace separated token of *s, or NULL */
static char *
NextToken(char **s)
{
	char	   *p = *s;
	char	   *start;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return NULL;
	start = p;
	while (*p != '\0' && *p != ' ')
		p++;
	if (*p == ' ')
		*p++ = '\0';
	*s = p;
	return start;
}

/* strict int64 parse of a token, or a data exception naming the type */
static int64
ParseInt64(const char *tok, const char *tname)
{
	char	   *end;
	long long	v;

	if (tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: too few fields", tname)));
	errno = 0;
	v = strtoll(tok, &end, 10);
	if (errno != 0 || *end != '\0' || end == tok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: \"%s\"", tname, tok)));
	return (int64) v;
}

/* parse the text form back into a flat state, checking every field */
Datum
clv_summary_state_in(PG_FUNCTION_ARGS)
{
	char	   *s = pstrdup(PG_GETARG_CSTRING(0));
	char	   *tok;
	StringInfoData buf;
	ClvSummaryHeader h;
	int64		i;
	const char *tname = "crm.clv_summary_state";
	int64		zero = 0, used;

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) &zero, sizeof(int64));
	tok = NextToken(&s);
	if (tok != NULL && strcmp(tok, "empty") == 0)
	{
		if (NextToken(&s) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: trailing fields", tname)));
		PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_CLV_SUMMARY, (char *) &zero, sizeof(int64)));
	}
	memset(&h, 0, sizeof(h));
	h.obs_end = ParseInt64(tok, tname);
	h.unit = ParseInt64(NextToken(&s), tname);
	h.nentries = ParseInt64(NextToken(&s), tname);
	if (TIMESTAMP_NOT_FINITE(h.obs_end) || !IS_VALID_TIMESTAMP(h.obs_end) || h.unit <= 0 ||
		h.nentries < 0 || h.nentries > (int64) (MaxAllocSize / sizeof(ClvSummaryEntry)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: bad observation_end, unit or count", tname)));
	h.gran = Min(h.unit, USECS_PER_DAY);
	h.obs_period = SummaryPeriod(h.obs_end, h.gran);
	appendBinaryStringInfo(&buf, (char *) &h, sizeof(h));
	for (i = 0; i < h.nentries; i++)
	{
		ClvSummaryEntry e;
		Numeric		amt;
		char		zeros[MAXIMUM_ALIGNOF] = {0};

		e.period = ParseInt64(NextToken(&s), tname);
		tok = NextToken(&s);
		if (tok == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type %s: too few fields", tname)));
		if (e.period > h.obs_period)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: period after observation_end", tname)));
		amt = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(tok),
												  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
		if (numeric_is_nan(amt) || numeric_is_inf(amt))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: amount must be finite", tname)));
		e.nbytes = VARSIZE(amt);
		e.pad = 0;
		appendBinaryStringInfo(&buf, (char *) &e, sizeof(e));
		appendBinaryStringInfo(&buf, (char *) amt, e.nbytes);
		appendBinaryStringInfo(&buf, zeros, MAXALIGN(e.nbytes) - e.nbytes);
	}
	if (NextToken(&s) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: trailing fields", tname)));
	used = buf.len - sizeof(int64);
	memcpy(buf.data, &used, sizeof(int64));
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_CLV_SUMMARY, buf.data, buf.len));
}

/* ========================================================================
 * Part 2: pattern states for the model fits
 *
 * Payload: PatternHeader, then entries of width doubles each: the key
 * (BG/NBD: x, t_x, T; Gamma-Gamma: x, mbar) and a weight last.  The first
 * nsorted entries are sorted by key and distinct; rows are appended after
 * them and merged in (sort + dedupe) whenever the unsorted tail grows as
 * large as the sorted part, so memory stays proportional to the number of
 * distinct patterns and the work per row is amortised O(log n).
 * ========================================================================
 */
typedef struct PatternHeader
{
	int32		width;			/* doubles per entry, weight last */
	int32		pad;
	int64		nsorted;
	int64		nall;
} PatternHeader;

#define PATTERN_MIN_TAIL 4096

static int	pattern_cmp_keys;	/* keys for PatternCmp (qsort has no context) */

static int
PatternCmp(const void *a, const void *b)
{
	const double *x = a;
	const double *y = b;
	int			i;

	for (i = 0; i < pattern_cmp_keys; i++)
	{
		if (x[i] < y[i])
			return -1;
		if (x[i] > y[i])
			return 1;
	}
	return 0;
}

/*
 * The two pattern widths the models use (BG/NBD: x, t_x, T, weight;
 * Gamma-Gamma: x, mbar, weight) get sorts with the comparison inlined
 * (PostgreSQL's sort template): sorting a million patterns through qsort's
 * comparison callback was a fifth of a BG/NBD fit.
 */
typedef struct Pattern4
{
	double		v[4];
} Pattern4;
typedef struct Pattern3
{
	double		v[3];
} Pattern3;

static inline int
Pattern4Cmp(const Pattern4 *a, const Pattern4 *b)
{
	int			i;

	for (i = 0; i < 3; i++)
		if (a->v[i] != b->v[i])
			return a->v[i] < b->v[i] ? -1 : 1;
	return 0;
}

static inline int
Pattern3Cmp(const Pattern3 *a, const Pattern3 *b)
{
	int			i;

	for (i = 0; i < 2; i++)
		if (a->v[i] != b->v[i])
			return a->v[i] < b->v[i] ? -1 : 1;
	return 0;
}

#define ST_SORT pattern4_sort
#define ST_ELEMENT_TYPE Pattern4
#define ST_COMPARE(a, b) Pattern4Cmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

#define ST_SORT pattern3_sort
#define ST_ELEMENT_TYPE Pattern3
#define ST_COMPARE(a, b) Pattern3Cmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* sort n entries of the given width by all keys (every field but the last) */
static void
PatternSort(double *e, int64 n, int width)
{
	StaticAssertStmt(sizeof(Pattern4) == 4 * sizeof(double) && sizeof(Pattern3) == 3 * sizeof(double),
					 "pattern structs must be packed arrays of doubles");
	if (width == 4)
		pattern4_sort((Pattern4 *) e, n);
	else if (width == 3)
		pattern3_sort((Pattern3 *) e, n);
	else
	{
		pattern_cmp_keys = width - 1;
		qsort(e, n, sizeof(double) * width, PatternCmp);
	}
}

/* sort and merge all entries of a pattern array in place; returns distinct count */
static int64
PatternCompactArray(double *e, int64 n, int width)
{
	int64		i, out;

	if (n <= 1)
		return n;
	PatternSort(e, n, width);
	pattern_cmp_keys = width - 1;
	out = 0;
	for (i = 1; i < n; i++)
	{
		double	   *cur = e + i * width;
		double	   *dst = e + out * width;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		if (PatternCmp(cur, dst) == 0)
			dst[width - 1] += cur[width - 1];
		else
		{
			out++;
			if (out != i)
				memcpy(e + out * width, cur, sizeof(double) * width);
		}
	}
	return out + 1;
}

static inline PatternHeader *
PatternHdr(CrmState *st)
{
	return (PatternHeader *) st->data;
}

static inline double *
PatternEntries(CrmState *st)
{
	return (double *) (st->data + sizeof(PatternHeader));
}

/*
 * Merge the unsorted tail e[nsorted..nall) into the sorted, distinct prefix:
 * sort and dedupe the tail alone, then one linear merge.  Returns the new
 * number of entries (all sorted and distinct).
 */
static int64
PatternMergeTail(double *e, int64 nsorted, int64 nall, int width)
{
	double	   *tail = e + nsorted * width;
	int64		ntail = PatternCompactArray(tail, nall - nsorted, width);
	double	   *out;
	int64		i = 0, j = 0, n = 0;
	Size		esz = sizeof(double) * width;

	if (nsorted == 0)
		return ntail;
	out = palloc(esz * (nsorted + ntail));
	pattern_cmp_keys = width - 1;
	while (i < nsorted || j < ntail)
	{
		const double *a = i < nsorted ? e + i * width : NULL;
		const double *b = j < ntail ? tail + j * width : NULL;
		int			c = a == NULL ? 1 : (b == NULL ? -1 : PatternCmp(a, b));

		if ((n & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		if (c < 0)
		{
			memcpy(out + n * width, a, esz);
			i++;
		}
		else if (c > 0)
		{
			memcpy(out + n * width, b, esz);
			j++;
		}
		else
		{
			memcpy(out + n * width, a, esz);
			out[n * width + width - 1] += b[width - 1];
			i++;
			j++;
		}
		n++;
	}
	memcpy(e, out, esz * n);
	pfree(out);
	return n;
}

/* compact the state: everything sorted and distinct */
static void
PatternCompact(CrmState *st)
{
	PatternHeader *h = PatternHdr(st);

	if (h->nsorted == h->nall)
		return;
	h->nall = PatternMergeTail(PatternEntries(st), h->nsorted, h->nall, h->width);
	h->nsorted = h->nall;
	st->len = sizeof(PatternHeader) + (Size) h->nall * h->width * sizeof(double);
}

/* writable pattern state of argument argno, header initialised */
static CrmState *
PatternArg(FunctionCallInfo fcinfo, int argno, MemoryContext aggcontext, uint32 magic, int width)
{
	CrmState   *st = CrmStateArgRW(fcinfo, argno, aggcontext, magic, 1024);

	if (st->len == 0)
	{
		PatternHeader *h = (PatternHeader *) CrmStateReserve(st, sizeof(PatternHeader));

		h->width = width;
		h->pad = 0;
		h->nsorted = 0;
		h->nall = 0;
		st->len = sizeof(PatternHeader);
	}
	return st;
}

/* append one entry; compacts when the tail is as long as the sorted part */
static void
PatternAppend(CrmState *st, const double *entry)
{
	PatternHeader *h;
	int			width = PatternHdr(st)->width;
	char	   *p = CrmStateReserve(st, sizeof(double) * width);

	memcpy(p, entry, sizeof(double) * width);
	st->len += sizeof(double) * width;
	h = PatternHdr(st);
	h->nall++;
	if (h->nall - h->nsorted >= Max(PATTERN_MIN_TAIL, h->nsorted))
		PatternCompact(st);
}

/* validated read-only view of a pattern payload */
static const double *
PatternView(const char *payload, Size len, int width, int64 *n)
{
	PatternHeader h;

	if (len == 0)
	{
		*n = 0;
		return NULL;
	}
	if (len < sizeof(PatternHeader))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid model fit state: too short")));
	memcpy(&h, payload, sizeof(h));
	if (h.width != width || h.nall < 0 || h.nsorted < 0 || h.nsorted > h.nall ||
		len != sizeof(PatternHeader) + (Size) h.nall * width * sizeof(double))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid model fit state: bad size or count")));
	*n = h.nall;
	return (const double *) (payload + sizeof(PatternHeader));
}

/* combine: append every entry of the right state to the left one */
static Datum
PatternCombine(FunctionCallInfo fcinfo, const char *fname, uint32 magic, int width)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, fname);
	CrmState   *st;
	const char *rp;
	Size		rlen;
	const double *re;
	int64		rn, i;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(CrmStateGetDatum(PatternArg(fcinfo, 0, aggcontext, magic, width)));
	}
	st = PatternArg(fcinfo, 0, aggcontext, magic, width);
	rp = CrmStatePayload(PG_GETARG_DATUM(1), magic, &rlen);
	re = PatternView(rp, rlen, width, &rn);
	for (i = 0; i < rn; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		PatternAppend(st, re + i * width);
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* text form: "n" then the doubles of each distinct entry, %.17g (exact) */
static char *
PatternOut(Datum d, uint32 magic, int width)
{
	Size		len;
	const char *payload = CrmStatePayload(d, magic, &len);
	int64		n, i;
	int			j;
	const double *view = PatternView(payload, len, width, &n);
	double	   *e = NULL;
	StringInfoData buf;

	/* print the compacted patterns, so the text form is canonical */
	if (n > 0)
	{
		e = palloc(sizeof(double) * width * n);
		memcpy(e, view, sizeof(double) * width * n);
		n = PatternCompactArray(e, n, width);
	}
	initStringInfo(&buf);
	appendStringInfo(&buf, INT64_FORMAT, n);
	for (i = 0; i < n; i++)
		for (j = 0; j < width; j++)
		{
			char		num[64];

			if (j == 0 && (i & 4095) == 0)
				CHECK_FOR_INTERRUPTS();

			snprintf(num, sizeof(num), " %.17g", e[i * width + j]);
			appendStringInfoString(&buf, num);
		}
	return buf.data;
}

typedef void (*PatternCheck) (const double *entry);

/* parse the text form; every entry goes through the row validation */
static Datum
PatternIn(const char *text, uint32 magic, int width, const char *tname, PatternCheck check)
{
	char	   *s = pstrdup(text);
	int64		n, i;
	int			j;
	StringInfoData buf;
	PatternHeader h;

	n = ParseInt64(NextToken(&s), tname);
	if (n < 0 || n > (int64) (MaxAllocSize / (sizeof(double) * width)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: bad pattern count", tname)));
	initStringInfo(&buf);
	h.width = width;
	h.pad = 0;
	h.nsorted = 0;
	h.nall = n;
	appendBinaryStringInfo(&buf, (char *) &h, sizeof(h));
	for (i = 0; i < n; i++)
	{
		double		e[4];

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		for (j = 0; j < width; j++)
		{
			char	   *tok = NextToken(&s);
			char	   *end;

			if (tok == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("invalid input syntax for type %s: too few fields", tname)));
			errno = 0;
			e[j] = strtod(tok, &end);
			if (*end != '\0' || end == tok || !isfinite(e[j]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("invalid input syntax for type %s: \"%s\"", tname, tok)));
		}
		if (!(e[width - 1] > 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: weights must be positive", tname)));
		check(e);
		appendBinaryStringInfo(&buf, (char *) e, sizeof(double) * width);
	}
	if (NextToken(&s) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s: trailing fields", tname)));
	return PointerGetDatum(CrmStateFlatFromPayload(magic, buf.data, buf.len));
}

/* ========================================================================
 * Part 3: special functions and the optimiser
 * ========================================================================
 */

/* digamma psi(x) for x > 0: recurrence up to 6, then the asymptotic series */
static double
Digamma(double x)
{
	double		r = 0.0;
	double		f;

	while (x < 6.0)
	{
		r -= 1.0 / x;
		x += 1.0;
	}
	f = 1.0 / (x * x);
	return r + log(x) - 0.5 / x
		- f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))));
}

/* log|Gamma(x)| and its sign */
static double
LogGammaSign(double x, int *sign)
{
	int			s = 1;
	double		v = lgamma_r(x, &s);

	*sign = s;
	return v;
}

/* Gauss series of 2F1(a,b;c;z), |z| < 1; NaN when it does not converge */
static double
Hyp2F1Series(double a, double b, double c, double z)
{
	long double sum = 1.0L;
	long double term = 1.0L;
	int			n;

	for (n = 0; n < 200000; n++)
	{
		term *= (long double) (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
		sum += term;
		if (fabsl(term) <= 1e-17L * fabsl(sum))
			return (double) sum;
		if (term == 0.0L)
			return (double) sum;
	}
	return NAN;
}

/* 1-z connection formula, valid when c-a-b is not an integer */
static double
Hyp2F1Connection(double a, double b, double c, double z)
{
	double		d = c - a - b;
	double		w = 1.0 - z;
	int			s1, s2, s3, s4, s5, s6, s7;
	double		lc = LogGammaSign(c, &s1);
	double		g1, g2;
	double		f1, f2;

	g1 = s1 * exp(lc + LogGammaSign(d, &s2) - LogGammaSign(c - a, &s3) - LogGammaSign(c - b, &s4));
	g1 *= s2 * s3 * s4;
	if (c - a <= 0 && c - a == floor(c - a))
		g1 = 0.0;
	if (c - b <= 0 && c - b == floor(c - b))
		g1 = 0.0;
	g2 = s1 * exp(lc + LogGammaSign(-d, &s5) - LogGammaSign(a, &s6) - LogGammaSign(b, &s7));
	g2 *= s5 * s6 * s7;
	if ((a <= 0 && a == floor(a)) || (b <= 0 && b == floor(b)))
		g2 = 0.0;
	f1 = g1 == 0.0 ? 0.0 : g1 * Hyp2F1Series(a, b, 1.0 - d, w);
	f2 = g2 == 0.0 ? 0.0 : g2 * pow(w, d) * Hyp2F1Series(c - a, c - b, 1.0 + d, w);
	return f1 + f2;
}

/*
 * Gaussian hypergeometric 2F1(a,b;c;z) for real z < 1, c not a non-positive
 * integer.  z <= 0.75: the Gauss series; 0.75 < z < 1: the 1-z connection
 * formula (averaged over c +- 1e-6 when c-a-b is within 1e-6 of an integer,
 * where the formula has a removable singularity); z < 0: Pfaff's
 * transformation onto 0 < z/(z-1) < 1.
 */
static double
Hyp2F1(double a, double b, double c, double z)
{
	double		d;

	if (z == 0.0)
		return 1.0;
	if (z < 0.0)
		return pow(1.0 - z, -a) * Hyp2F1(a, c - b, c, z / (z - 1.0));
	if (z <= 0.75)
		return Hyp2F1Series(a, b, c, z);
	d = c - a - b;
	if (fabs(d - rint(d)) < 1e-6)
	{
		double		eps = 1e-6 * Max(1.0, fabs(c));

		return 0.5 * (Hyp2F1Connection(a, b, c + eps, z) + Hyp2F1Connection(a, b, c - eps, z));
	}
	return Hyp2F1Connection(a, b, c, z);
}

typedef double (*ObjectiveFn) (const double *theta, double *grad, void *ctx);

static int	fit_evals;			/* objective evaluations of the last fit (debug) */

/* objective value, +inf when not finite (so the simplex moves away from it) */
static double
SafeObjective(ObjectiveFn f, const double *theta, double *grad, void *ctx)
{
	double		v;

	CHECK_FOR_INTERRUPTS();		/* one evaluation may scan a million patterns */
	v = f(theta, grad, ctx);
	fit_evals++;
	return isfinite(v) ? v : INFINITY;
}

/* Nelder-Mead minimisation of f over n <= 4 dimensions, theta updated in place */
static int
NelderMead(ObjectiveFn f, void *ctx, double *theta, int n, double step, int maxiter, double ftol)
{
	double		p[5][4];
	double		fv[5];
	int			i, j, iter;

	for (i = 0; i <= n; i++)
	{
		for (j = 0; j < n; j++)
			p[i][j] = theta[j] + (i == j + 1 ? step : 0.0);
		fv[i] = SafeObjective(f, p[i], NULL, ctx);
	}
	for (iter = 0; iter < maxiter; iter++)
	{
		int			lo = 0, hi = 0, nh = 0;
		double		cen[4], xr[4], xe[4], xc[4];
		double		fr, fe, fc;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i <= n; i++)
		{
			if (fv[i] < fv[lo])
				lo = i;
			if (fv[i] > fv[hi])
				hi = i;
		}
		nh = lo;
		for (i = 0; i <= n; i++)
			if (i != hi && fv[i] >= fv[nh])
				nh = i;
		if (isfinite(fv[hi]) && fabs(fv[hi] - fv[lo]) <= ftol * (fabs(fv[lo]) + 1e-12))
			break;
		for (j = 0; j < n; j++)
		{
			cen[j] = 0.0;
			for (i = 0; i <= n; i++)
				if (i != hi)
					cen[j] += p[i][j];
			cen[j] /= n;
			xr[j] = cen[j] + (cen[j] - p[hi][j]);
		}
		fr = SafeObjective(f, xr, NULL, ctx);
		if (fr < fv[lo])
		{
			for (j = 0; j < n; j++)
				xe[j] = cen[j] + 2.0 * (xr[j] - cen[j]);
			fe = SafeObjective(f, xe, NULL, ctx);
			if (fe < fr)
			{
				memcpy(p[hi], xe, sizeof(double) * n);
				fv[hi] = fe;
			}
			else
			{
				memcpy(p[hi], xr, sizeof(double) * n);
				fv[hi] = fr;
			}
			continue;
		}
		if (fr < fv[nh])
		{
			memcpy(p[hi], xr, sizeof(double) * n);
			fv[hi] = fr;
			continue;
		}
		for (j = 0; j < n; j++)
			xc[j] = fr < fv[hi] ? cen[j] + 0.5 * (xr[j] - cen[j]) : cen[j] + 0.5 * (p[hi][j] - cen[j]);
		fc = SafeObjective(f, xc, NULL, ctx);
		if (fc < Min(fr, fv[hi]))
		{
			memcpy(p[hi], xc, sizeof(double) * n);
			fv[hi] = fc;
			continue;
		}
		/* shrink towards the best vertex */
		for (i = 0; i <= n; i++)
		{
			if (i == lo)
				continue;
			for (j = 0; j < n; j++)
				p[i][j] = p[lo][j] + 0.5 * (p[i][j] - p[lo][j]);
			fv[i] = SafeObjective(f, p[i], NULL, ctx);
		}
	}
	j = 0;
	for (i = 0; i <= n; i++)
		if (fv[i] < fv[j])
			j = i;
	memcpy(theta, p[j], sizeof(double) * n);
	return iter;
}

/*
 * BFGS with an Armijo backtracking line search and the analytic gradient;
 * the first inverse Hessian is scaled by s'y/y'y (Nocedal & Wright 6.20).
 * Stops when the gradient is below gtol or the objective stops decreasing.
 * Returns the infinity norm of the final gradient (NaN when the objective is
 * not finite at the start).
 */
static double
Bfgs(ObjectiveFn f, void *ctx, double *theta, int n, int maxiter, double gtol)
{
	double		H[4][4];
	double		g[4], gn[4], x1[4], d[4], s[4], y[4];
	double		fx, f1 = 0;
	int			i, j, k, iter, stalls = 0;
	double		gmax = 0;

	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++)
			H[i][j] = i == j ? 1.0 : 0.0;
	fx = f(theta, g, ctx);
	fit_evals++;
	if (!isfinite(fx))
		return NAN;
	for (iter = 0; iter < maxiter; iter++)
	{
		double		step = 1.0, slope = 0.0, sy = 0.0, yy = 0.0;
		bool		ok = false;

		CHECK_FOR_INTERRUPTS();
		gmax = 0;
		for (i = 0; i < n; i++)
			gmax = Max(gmax, fabs(g[i]));
		if (gmax <= gtol)
			break;
		for (i = 0; i < n; i++)
		{
			d[i] = 0;
			for (j = 0; j < n; j++)
				d[i] -= H[i][j] * g[j];
			slope += d[i] * g[i];
		}
		if (slope >= 0)
		{
			/* not a descent direction: restart from steepest descent */
			slope = 0;
			for (i = 0; i < n; i++)
			{
				for (j = 0; j < n; j++)
					H[i][j] = i == j ? 1.0 : 0.0;
				d[i] = -g[i];
				slope += d[i] * g[i];
			}
		}
		for (k = 0; k < 40; k++)
		{
			for (i = 0; i < n; i++)
				x1[i] = theta[i] + step * d[i];
			f1 = f(x1, gn, ctx);
			fit_evals++;
			if (isfinite(f1) && f1 <= fx + 1e-4 * step * slope)
			{
				ok = true;
				break;
			}
			step *= 0.5;
		}
		if (!ok)
			break;
		for (i = 0; i < n; i++)
		{
			s[i] = x1[i] - theta[i];
			y[i] = gn[i] - g[i];
			sy += s[i] * y[i];
			yy += y[i] * y[i];
		}
		stalls = (fx - f1 <= 1e-15 * fabs(fx)) ? stalls + 1 : 0;
		memcpy(theta, x1, sizeof(double) * n);
		memcpy(g, gn, sizeof(double) * n);
		fx = f1;
		if (stalls >= 3)
			break;
		if (sy > 1e-300)
		{
			double		Hy[4], yHy = 0;

			if (iter == 0)
				for (i = 0; i < n; i++)
					for (j = 0; j < n; j++)
						H[i][j] = i == j ? sy / yy : 0.0;
			for (i = 0; i < n; i++)
			{
				Hy[i] = 0;
				for (j = 0; j < n; j++)
					Hy[i] += H[i][j] * y[j];
				yHy += y[i] * Hy[i];
			}
			for (i = 0; i < n; i++)
				for (j = 0; j < n; j++)
					H[i][j] += ((sy + yHy) * s[i] * s[j]) / (sy * sy) - (Hy[i] * s[j] + s[i] * Hy[j]) / sy;
		}
	}
	gmax = 0;
	for (i = 0; i < n; i++)
		gmax = Max(gmax, fabs(g[i]));
	return gmax;
}

/* ========================================================================
 * Part 4: BG/NBD
 * ========================================================================
 */
#define BG_WIDTH 4				/* x, t_x, T, weight */

/* reject rows the model cannot take */
static void
BgnbdCheck(const double *e)
{
	double		x = e[0], tx = e[1], T = e[2];

	if (isnan(x) || isnan(tx) || isnan(T) || isinf(x) || isinf(tx) || isinf(T))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bgnbd_fit: frequency, recency and t must be finite numbers")));
	if (x < 0 || tx < 0 || T < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bgnbd_fit: frequency, recency and t must not be negative")));
	if (x != floor(x) || x > 1e9)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bgnbd_fit: frequency must be a whole number of repeat purchases, got %g", x)));
	if (tx > T)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bgnbd_fit: recency %g is greater than t %g", tx, T),
				 errhint("Recency is the age at the last purchase and t the age at the end of observation; both in the same unit.")));
	if (x == 0 && tx != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bgnbd_fit: recency must be 0 when frequency is 0, got %g", tx)));
}

/* bgnbd_transfn(state, frequency, recency, t): rows with a NULL are skipped */
Datum
clv_bgnbd_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "bgnbd_transfn");
	CrmState   *st = PatternArg(fcinfo, 0, aggcontext, CRM_MAGIC_CLV_BGNBD, BG_WIDTH);
	double		e[BG_WIDTH];

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	e[0] = PG_GETARG_FLOAT8(1);
	e[1] = PG_GETARG_FLOAT8(2);
	e[2] = PG_GETARG_FLOAT8(3);
	e[3] = 1.0;
	BgnbdCheck(e);
	PatternAppend(st, e);
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

Datum
clv_bgnbd_combinefn(PG_FUNCTION_ARGS)
{
	return PatternCombine(fcinfo, "bgnbd_combinefn", CRM_MAGIC_CLV_BGNBD, BG_WIDTH);
}

Datum
clv_bgnbd_state_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(PatternOut(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_BGNBD, BG_WIDTH));
}

Datum
clv_bgnbd_state_in(PG_FUNCTION_ARGS)
{
	return PatternIn(PG_GETARG_CSTRING(0), CRM_MAGIC_CLV_BGNBD, BG_WIDTH, "crm.bgnbd_state", BgnbdCheck);
}

typedef struct FitData
{
	const double *e;			/* distinct patterns sorted by x first */
	int64		n;
	double		weight;			/* customers */
	/* BG/NBD: the distinct time values (t_x and T pooled) and per pattern
	 * the indexes of its t_x and T, so log(alpha + v) is computed once per
	 * distinct value; Gamma-Gamma: log(mbar) per pattern */
	double	   *vals;
	int64		nvals;
	int32	   *idx;
	double	   *lv;				/* scratch: log(alpha + vals[k]) */
	double	   *iv;				/* scratch: 1 / (alpha + vals[k]) */
} FitData;

static int
DoubleCmp(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

#define ST_SORT double_sort
#define ST_ELEMENT_TYPE double
#define ST_COMPARE(a, b) DoubleCmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* index of v in the sorted distinct array vals */
static int32
ValueIndex(const double *vals, int64 n, double v)
{
	int64		lo = 0, hi = n - 1;

	while (lo < hi)
	{
		int64		mid = (lo + hi) / 2;

		if (vals[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (int32) lo;
}

/* build the distinct time values of BG/NBD patterns and each pattern's indexes */
static void
BgnbdPrepare(FitData *fd, int width)
{
	int64		i, m = 0;

	Assert(width == BG_WIDTH);
	(void) width;

	fd->vals = palloc(sizeof(double) * 2 * fd->n);
	for (i = 0; i < fd->n; i++)
	{
		fd->vals[2 * i] = fd->e[i * 4 + 1];
		fd->vals[2 * i + 1] = fd->e[i * 4 + 2];
	}
	double_sort(fd->vals, 2 * fd->n);
	for (i = 0; i < 2 * fd->n; i++)
		if (m == 0 || fd->vals[i] != fd->vals[m - 1])
			fd->vals[m++] = fd->vals[i];
	fd->nvals = m;
	fd->idx = palloc(sizeof(int32) * 2 * fd->n);
	for (i = 0; i < fd->n; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		fd->idx[2 * i] = ValueIndex(fd->vals, m, fd->e[i * 4 + 1]);
		fd->idx[2 * i + 1] = ValueIndex(fd->vals, m, fd->e[i * 4 + 2]);
	}
	fd->lv = palloc(sizeof(double) * m);
	fd->iv = palloc(sizeof(double) * m);
}

/*
 * Negative BG/NBD log-likelihood per customer, theta = log(r, alpha, a, b),
 * and its gradient in theta.  Per customer (Hardie note 027):
 *   ln L = lnG(r+x) - lnG(r) + r ln(alpha) + lnB(a, b+x) - lnB(a, b)
 *          + ln[ (alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x) ]
 * the last term by log-sum-exp.  Terms that depend on x alone are computed
 * once per distinct x.
 */
static double
BgnbdObjective(const double *theta, double *grad, void *ctx)
{
	FitData    *fd = ctx;
	double		r = exp(theta[0]), alpha = exp(theta[1]), a = exp(theta[2]), b = exp(theta[3]);
	double		lalpha = log(alpha);
	double		ll = 0, gr = 0, gal = 0, ga = 0, gb = 0;
	double		psi_r = 0, psi_b = 0, psi_ab = 0, lg_r, lg_b, lg_ab;
	double		gw = 0;
	int64		i = 0, k;

	if (!isfinite(r) || !isfinite(alpha) || !isfinite(a) || !isfinite(b) ||
		r <= 0 || alpha <= 0 || a <= 0 || b <= 0)
		return INFINITY;
	lg_r = lgamma(r);
	lg_b = lgamma(b);
	lg_ab = lgamma(a + b);
	if (grad)
	{
		psi_r = Digamma(r);
		psi_b = Digamma(b);
		psi_ab = Digamma(a + b);
	}
	for (k = 0; k < fd->nvals; k++)
	{
		fd->lv[k] = log(alpha + fd->vals[k]);
		fd->iv[k] = 1.0 / (alpha + fd->vals[k]);
	}
	while (i < fd->n)
	{
		double		x = fd->e[i * BG_WIDTH];
		double		c = r + x;
		double		gx, dr = 0, da = 0, db = 0;
		double		lratio = 0;
		double		sll = 0, sdr = 0, sdal = 0, sw2 = 0;

		gx = lgamma(r + x) - lg_r + lgamma(b + x) - lg_b + lg_ab - lgamma(a + b + x) + r * lalpha;
		if (grad)
		{
			double		d_ab = psi_ab - Digamma(a + b + x);

			dr = Digamma(r + x) - psi_r + lalpha;
			da = d_ab;
			db = Digamma(b + x) - psi_b + d_ab;
		}
		if (x > 0)
			lratio = log(a) - log(b + x - 1);
		for (; i < fd->n && fd->e[i * BG_WIDTH] == x; i++)
		{
			double		w = fd->e[i * BG_WIDTH + 3];
			int32		jt = fd->idx[2 * i + 1];
			double		l1 = fd->lv[jt];
			double		u1 = -c * l1;

			if ((i & 65535) == 0)
				CHECK_FOR_INTERRUPTS();

			if (x > 0)
			{
				int32		jx = fd->idx[2 * i];
				double		l2 = fd->lv[jx];
				double		u2 = lratio - c * l2;
				double		ex, w1, w2;

				/* log-sum-exp of u1 and u2, and the weights of the two terms */
				if (u1 >= u2)
				{
					ex = exp(u2 - u1);
					sll += w * (u1 + log1p(ex));
					w2 = ex / (1.0 + ex);
					w1 = 1.0 - w2;
				}
				else
				{
					ex = exp(u1 - u2);
					sll += w * (u2 + log1p(ex));
					w1 = ex / (1.0 + ex);
					w2 = 1.0 - w1;
				}
				if (grad)
				{
					sdr += w * (w1 * l1 + w2 * l2);
					sdal += w * (w1 * fd->iv[jt] + w2 * fd->iv[jx]);
					sw2 += w * w2;
				}
			}
			else
			{
				sll += w * u1;
				if (grad)
				{
					sdr += w * l1;
					sdal += w * fd->iv[jt];
				}
			}
			gw += w;
		}
		ll += gw * gx + sll;
		if (grad)
		{
			gr += gw * dr - sdr;
			gal += gw * r / alpha - c * sdal;
			ga += gw * da + sw2 / a;
			gb += gw * db - (x > 0 ? sw2 / (b + x - 1) : 0);
		}
		gw = 0;
	}
	if (grad)
	{
		grad[0] = -gr * r / fd->weight;
		grad[1] = -gal * alpha / fd->weight;
		grad[2] = -ga * a / fd->weight;
		grad[3] = -gb * b / fd->weight;
	}
	return -ll / fd->weight;
}

/* sorted distinct patterns of a state, as a palloc'd array */
static double *
PatternsForFit(Datum d, uint32 magic, int width, int64 *n, double *weight)
{
	Size		len;
	const char *payload = CrmStatePayload(d, magic, &len);
	const double *view = PatternView(payload, len, width, n);
	double	   *e;
	int64		i;

	*weight = 0;
	if (*n == 0)
		return NULL;
	e = palloc(sizeof(double) * width * *n);
	memcpy(e, view, sizeof(double) * width * *n);
	*n = PatternCompactArray(e, *n, width);
	for (i = 0; i < *n; i++)
		*weight += e[i * width + width - 1];
	return e;
}

/* build a model row of the function's result type */
static Datum
ModelResult(FunctionCallInfo fcinfo, const double *params, int nparams, double ll,
			double customers, bool converged, const char *reason)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8];
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "model fit: return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	for (i = 0; i < nparams; i++)
	{
		nulls[i] = params == NULL;
		values[i] = params ? Float8GetDatum(params[i]) : (Datum) 0;
	}
	nulls[nparams] = !isfinite(ll);
	values[nparams] = Float8GetDatum(ll);
	nulls[nparams + 1] = false;
	values[nparams + 1] = Int64GetDatum((int64) customers);
	nulls[nparams + 2] = false;
	values[nparams + 2] = BoolGetDatum(converged);
	nulls[nparams + 3] = reason == NULL;
	values[nparams + 3] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* run Nelder-Mead then BFGS; returns the final gradient norm */
/*
 * Many distinct patterns (a million customers give ~200k): the first,
 * coarse Nelder-Mead phase runs on a systematic sample of about
 * FIT_SAMPLE_SIZE patterns (every k-th in the sorted order, so every
 * frequency stays represented; the objectives are per customer of the data
 * they get, so the sample needs no reweighting).  It only
 * finds the starting point: BFGS then converges on all the patterns, to the
 * same optimum (gradient < 1e-7) as without the sample.
 */
#define FIT_SAMPLE_MIN 40000
#define FIT_SAMPLE_SIZE 10000

typedef void (*FitPrepare) (FitData *fd, int width);

static void
FitWarmStart(ObjectiveFn f, FitData *fd, int width, FitPrepare prepare, double *theta, int n)
{
	FitData		sub;
	double	   *e;
	int64		k = fd->n / FIT_SAMPLE_SIZE;
	int64		i, m = 0;
	double		w = 0;

	e = palloc(sizeof(double) * width * (fd->n / k + 1));
	for (i = 0; i < fd->n; i += k)
	{
		memcpy(e + m * width, fd->e + i * width, sizeof(double) * width);
		w += e[m * width + width - 1];
		m++;
	}
	memset(&sub, 0, sizeof(sub));
	sub.e = e;
	sub.n = m;
	sub.weight = w;
	prepare(&sub, width);
	NelderMead(f, &sub, theta, n, 0.5, 40, 1e-8);
	pfree(e);
	if (sub.vals)
		pfree(sub.vals);
	if (sub.idx)
		pfree(sub.idx);
	if (sub.lv)
		pfree(sub.lv);
	if (sub.iv)
		pfree(sub.iv);
}

static double
FitModel(ObjectiveFn f, FitData *fd, int width, FitPrepare prepare, double *theta, int n)
{
	int			round;
	double		gnorm = NAN;

	fit_evals = 0;
	prepare(fd, width);
	for (round = 0; round < 3; round++)
	{
		if (round == 0 && fd->n > FIT_SAMPLE_MIN)
			FitWarmStart(f, fd, width, prepare, theta, n);
		else
			NelderMead(f, fd, theta, n, round == 0 ? 0.5 : 0.05, round == 0 ? 40 : 400, 1e-8);
		gnorm = Bfgs(f, fd, theta, n, 300, 1e-10);
		if (isfinite(gnorm) && gnorm < 1e-7)
			break;
	}
	elog(DEBUG1, "crm_analytics: model fit with %d objective evaluations, %d rounds, gradient %g",
		 fit_evals, round + 1, gnorm);
	return gnorm;
}

/* check a fitted parameter vector; NULL when fine, else why not */
static const char *
FitProblem(const double *theta, int n, double gnorm, double nll)
{
	int			i;

	if (!isfinite(nll) || !isfinite(gnorm))
		return "the log-likelihood is not finite at the optimum";
	for (i = 0; i < n; i++)
		if (fabs(theta[i]) > 25)
			return "a parameter ran to 0 or infinity: the data do not identify the model";
	if (gnorm > 1e-5)
		return "the optimiser stopped before the gradient vanished";
	return NULL;
}

/*
 * bgnbd_finalfn -> crm.bgnbd_model (r, alpha, a, b, log_likelihood,
 * customers, converged, reason)
 */
Datum
clv_bgnbd_finalfn(PG_FUNCTION_ARGS)
{
	FitData		fd = {0};
	double	   *e;
	double		theta[4], params[4];
	double		gnorm, nll, sumT = 0, repeat = 0;
	const char *problem;
	int64		i;

	if (PG_ARGISNULL(0))
		return ModelResult(fcinfo, NULL, 4, NAN, 0, false, "no customers");
	e = PatternsForFit(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_BGNBD, BG_WIDTH, &fd.n, &fd.weight);
	if (fd.n == 0)
		return ModelResult(fcinfo, NULL, 4, NAN, 0, false, "no customers");
	fd.e = e;
	for (i = 0; i < fd.n; i++)
	{
		sumT += e[i * BG_WIDTH + 2] * e[i * BG_WIDTH + 3];
		if (e[i * BG_WIDTH] > 0)
			repeat += e[i * BG_WIDTH + 3];
	}
	if (repeat == 0)
		return ModelResult(fcinfo, NULL, 4, NAN, fd.weight, false,
						   "no repeat buyers: every frequency is 0, so the purchase and dropout rates cannot be estimated");
	if (sumT == 0)
		return ModelResult(fcinfo, NULL, 4, NAN, fd.weight, false,
						   "every customer has t = 0: no time was observed");

	theta[0] = 0.0;
	theta[1] = log(Max(sumT / fd.weight, 1e-6));
	theta[2] = 0.0;
	theta[3] = 0.0;
	gnorm = FitModel(BgnbdObjective, &fd, BG_WIDTH, BgnbdPrepare, theta, 4);
	nll = BgnbdObjective(theta, NULL, &fd);
	problem = FitProblem(theta, 4, gnorm, nll);
	for (i = 0; i < 4; i++)
		params[i] = exp(theta[i]);
	return ModelResult(fcinfo, params, 4, -nll * fd.weight, fd.weight, problem == NULL, problem);
}

/* ========================================================================
 * Part 5: Gamma-Gamma
 * ========================================================================
 */
#define GG_WIDTH 3				/* x, mbar, weight */

static void
GammaGammaCheck(const double *e)
{
	if (!isfinite(e[0]) || !isfinite(e[1]))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gamma_gamma_fit: frequency and monetary must be finite numbers")));
	if (e[0] < 0 || e[0] != floor(e[0]) || e[0] > 1e9)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gamma_gamma_fit: frequency must be a whole number >= 0, got %g", e[0])));
	if (e[0] > 0 && e[1] <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("gamma_gamma_fit: monetary must be positive for repeat buyers, got %g", e[1]),
				 errhint("Exclude refunds and zero-value orders, or filter with WHERE monetary > 0.")));
}

/* gamma_gamma_transfn(state, frequency, monetary): frequency 0 and NULLs skipped */
Datum
clv_gg_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "gamma_gamma_transfn");
	CrmState   *st = PatternArg(fcinfo, 0, aggcontext, CRM_MAGIC_CLV_GG, GG_WIDTH);
	double		e[GG_WIDTH];

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	e[0] = PG_GETARG_FLOAT8(1);
	e[1] = PG_GETARG_FLOAT8(2);
	e[2] = 1.0;
	GammaGammaCheck(e);
	if (e[0] > 0)
		PatternAppend(st, e);
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

Datum
clv_gg_combinefn(PG_FUNCTION_ARGS)
{
	return PatternCombine(fcinfo, "gamma_gamma_combinefn", CRM_MAGIC_CLV_GG, GG_WIDTH);
}

Datum
clv_gg_state_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(PatternOut(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_GG, GG_WIDTH));
}

static void
GammaGammaStateCheck(const double *e)
{
	GammaGammaCheck(e);
	if (e[0] == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid crm.gamma_gamma_state: frequency 0 is never stored")));
}

Datum
clv_gg_state_in(PG_FUNCTION_ARGS)
{
	return PatternIn(PG_GETARG_CSTRING(0), CRM_MAGIC_CLV_GG, GG_WIDTH, "crm.gamma_gamma_state",
					 GammaGammaStateCheck);
}

/*
 * Negative Gamma-Gamma log-likelihood per customer, theta = log(p, q, gamma)
 * (note 025): for x repeat purchases of mean value m,
 *   ln f = lnG(px+q) - lnG(px) - lnG(q) + q ln(gamma) + (px-1) ln(m)
 *          + px ln(x) - (px+q) ln(gamma + x m)
 */
/* Gamma-Gamma: log(mbar) of every pattern, once per fit */
static void
GammaGammaPrepare(FitData *fd, int width)
{
	int64		i;

	Assert(width == GG_WIDTH);
	(void) width;
	fd->lv = palloc(sizeof(double) * Max(fd->n, 1));
	for (i = 0; i < fd->n; i++)
		fd->lv[i] = log(fd->e[i * width + 1]);
}

static double
GammaGammaObjective(const double *theta, double *grad, void *ctx)
{
	FitData    *fd = ctx;
	double		p = exp(theta[0]), q = exp(theta[1]), g = exp(theta[2]);
	double		lg_q, psi_q = 0, lgam = log(g);
	double		ll = 0, gp = 0, gq = 0, gg = 0;
	int64		i = 0;

	if (!isfinite(p) || !isfinite(q) || !isfinite(g) || p <= 0 || q <= 0 || g <= 0)
		return INFINITY;
	lg_q = lgamma(q);
	if (grad)
		psi_q = Digamma(q);
	while (i < fd->n)
	{
		double		x = fd->e[i * GG_WIDTH];
		double		px = p * x;
		double		A = lgamma(px + q) - lgamma(px) - lg_q + q * lgam + px * log(x);
		double		dAp = 0, dAq = 0;

		if (grad)
		{
			double		psi_pxq = Digamma(px + q);

			dAp = x * (psi_pxq - Digamma(px)) + x * log(x);
			dAq = psi_pxq - psi_q + lgam;
		}
		for (; i < fd->n && fd->e[i * GG_WIDTH] == x; i++)
		{
			const double *e = fd->e + i * GG_WIDTH;
			double		w = e[2];
			double		lm = fd->lv[i];
			double		lgm = log(g + x * e[1]);

			if ((i & 65535) == 0)
				CHECK_FOR_INTERRUPTS();

			ll += w * (A + (px - 1) * lm - (px + q) * lgm);
			if (grad)
			{
				gp += w * (dAp + x * lm - x * lgm);
				gq += w * (dAq - lgm);
				gg += w * (q / g - (px + q) / (g + x * e[1]));
			}
		}
	}
	if (grad)
	{
		grad[0] = -gp * p / fd->weight;
		grad[1] = -gq * q / fd->weight;
		grad[2] = -gg * g / fd->weight;
	}
	return -ll / fd->weight;
}

/* gamma_gamma_finalfn -> crm.gamma_gamma_model (p, q, gamma, log_likelihood, customers, converged, reason) */
Datum
clv_gg_finalfn(PG_FUNCTION_ARGS)
{
	FitData		fd = {0};
	double	   *e;
	double		theta[3], params[3];
	double		gnorm, nll, summ = 0;
	const char *problem;
	int64		i;
	bool		same = true;

	if (PG_ARGISNULL(0))
		return ModelResult(fcinfo, NULL, 3, NAN, 0, false, "no repeat buyers: the model needs customers with frequency > 0");
	e = PatternsForFit(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_GG, GG_WIDTH, &fd.n, &fd.weight);
	if (fd.n == 0)
		return ModelResult(fcinfo, NULL, 3, NAN, 0, false, "no repeat buyers: the model needs customers with frequency > 0");
	fd.e = e;
	for (i = 0; i < fd.n; i++)
	{
		summ += e[i * GG_WIDTH + 1] * e[i * GG_WIDTH + 2];
		if (e[i * GG_WIDTH + 1] != e[1])
			same = false;
	}
	if (same)
		return ModelResult(fcinfo, NULL, 3, NAN, fd.weight, false,
						   "every customer has the same monetary value: the spread of spend cannot be estimated");
	theta[0] = 0.0;
	theta[1] = log(2.0);
	theta[2] = log(Max(summ / fd.weight, 1e-6));
	gnorm = FitModel(GammaGammaObjective, &fd, GG_WIDTH, GammaGammaPrepare, theta, 3);
	nll = GammaGammaObjective(theta, NULL, &fd);
	problem = FitProblem(theta, 3, gnorm, nll);
	for (i = 0; i < 3; i++)
		params[i] = exp(theta[i]);
	if (problem == NULL && params[1] <= 1)
		problem = "q <= 1: the expected spend (p gamma / (q - 1)) is undefined";
	return ModelResult(fcinfo, params, 3, -nll * fd.weight, fd.weight, problem == NULL, problem);
}

/* ========================================================================
 * Part 6: predictions
 * ========================================================================
 */

/* parameters of a model row; errors when the fit has none or did not converge */
static void
ModelParams(HeapTupleHeader row, int nparams, double *params, const char *fname)
{
	bool		isnull;
	int			i;
	Datum		conv = GetAttributeByNum(row, nparams + 3, &isnull);

	if (!isnull && !DatumGetBool(conv))
	{
		Datum		reason = GetAttributeByNum(row, nparams + 4, &isnull);

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: the model did not converge", fname),
				 isnull ? 0 : errdetail("%s", TextDatumGetCString(reason)),
				 errhint("Check the fit's reason column; fit on more or cleaner data.")));
	}
	for (i = 0; i < nparams; i++)
	{
		Datum		d = GetAttributeByNum(row, i + 1, &isnull);

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s: the model has no parameters", fname)));
		params[i] = DatumGetFloat8(d);
		if (!isfinite(params[i]) || params[i] <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s: model parameters must be positive and finite", fname)));
	}
}

/* validated customer summary (x, t_x, T) */
static void
CheckCustomer(double x, double tx, double T, const char *fname)
{
	if (!isfinite(x) || !isfinite(tx) || !isfinite(T))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: frequency, recency and t must be finite numbers", fname)));
	if (x < 0 || tx < 0 || T < 0 || x != floor(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: frequency must be a whole number >= 0 and recency, t >= 0", fname)));
	if (tx > T)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: recency %g is greater than t %g", fname, tx, T)));
}

/* P(alive | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)) */
static double
BgnbdPAlive(const double *m, double x, double tx, double T)
{
	double		r = m[0], alpha = m[1], a = m[2], b = m[3];
	double		lz;

	if (x == 0)
		return 1.0;
	lz = log(a) - log(b + x - 1) + (r + x) * (log(alpha + T) - log(alpha + tx));
	return 1.0 / (1.0 + exp(lz));
}

/*
 * E[Y(h) | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10):
 *   (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+h))^(r+x) 2F1(r+x, b+x; a+b+x-1; h/(alpha+T+h))]
 *   / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))
 * The removable singularity at a = 1 is bridged by averaging a = 1 +- 1e-5.
 */
static double
BgnbdExpected(const double *m, double h, double x, double tx, double T)
{
	double		r = m[0], alpha = m[1], a = m[2], b = m[3];
	double		z, lead, f, num;

	if (h == 0)
		return 0.0;
	if (fabs(a - 1.0) < 1e-7)
	{
		double		m1[4] = {r, alpha, 1.0 + 1e-5, b};
		double		m2[4] = {r, alpha, 1.0 - 1e-5, b};

		return 0.5 * (BgnbdExpected(m1, h, x, tx, T) + BgnbdExpected(m2, h, x, tx, T));
	}
	z = h / (alpha + T + h);
	f = Hyp2F1(r + x, b + x, a + b + x - 1, z);
	lead = (a + b + x - 1) / (a - 1);
	num = lead * (1.0 - exp((r + x) * (log(alpha + T) - log(alpha + T + h))) * f);
	return num * BgnbdPAlive(m, x, tx, T);
}

/* crm.bgnbd_expected_purchases(model, horizon, frequency, recency, t) -> float8 */
Datum
clv_bgnbd_expected_purchases(PG_FUNCTION_ARGS)
{
	double		m[4];
	double		h = PG_GETARG_FLOAT8(1);
	double		x = PG_GETARG_FLOAT8(2), tx = PG_GETARG_FLOAT8(3), T = PG_GETARG_FLOAT8(4);
	double		v;

	ModelParams(PG_GETARG_HEAPTUPLEHEADER(0), 4, m, "bgnbd_expected_purchases");
	if (!isfinite(h) || h < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bgnbd_expected_purchases: horizon must be a finite number >= 0")));
	CheckCustomer(x, tx, T, "bgnbd_expected_purchases");
	v = BgnbdExpected(m, h, x, tx, T);
	if (!isfinite(v))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bgnbd_expected_purchases: the result is not finite for these inputs")));
	PG_RETURN_FLOAT8(v);
}

/* crm.bgnbd_p_alive(model, frequency, recency, t) -> float8 */
Datum
clv_bgnbd_p_alive(PG_FUNCTION_ARGS)
{
	double		m[4];
	double		x = PG_GETARG_FLOAT8(1), tx = PG_GETARG_FLOAT8(2), T = PG_GETARG_FLOAT8(3);

	ModelParams(PG_GETARG_HEAPTUPLEHEADER(0), 4, m, "bgnbd_p_alive");
	CheckCustomer(x, tx, T, "bgnbd_p_alive");
	PG_RETURN_FLOAT8(BgnbdPAlive(m, x, tx, T));
}

/* E[M | x, mbar] = (q-1)/(px+q-1) * p gamma/(q-1) + px/(px+q-1) * mbar */
static double
GammaGammaExpected(const double *m, double x, double mbar, const char *fname)
{
	double		p = m[0], q = m[1], g = m[2];

	if (q <= 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: the expected value is undefined when q <= 1 (q = %g)", fname, q),
				 errdetail("The Gamma-Gamma mean spend p*gamma/(q-1) is infinite for q <= 1."),
				 errhint("The spend data are too heavy-tailed for this model; cap outliers or use the historical mean.")));
	if (!isfinite(x) || !isfinite(mbar) || x < 0 || x != floor(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: frequency must be a whole number >= 0 and monetary finite", fname)));
	if (x > 0 && mbar <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: monetary must be positive for repeat buyers, got %g", fname, mbar)));
	if (x == 0)
		return p * g / (q - 1);
	return (p * (g + x * mbar)) / (p * x + q - 1);
}

/* crm.gamma_gamma_expected_value(model, frequency, monetary) -> numeric */
Datum
clv_gg_expected_value(PG_FUNCTION_ARGS)
{
	double		m[3];

	ModelParams(PG_GETARG_HEAPTUPLEHEADER(0), 3, m, "gamma_gamma_expected_value");
	PG_RETURN_DATUM(DirectFunctionCall1(float8_numeric,
										Float8GetDatum(GammaGammaExpected(m, PG_GETARG_FLOAT8(1),
																		  PG_GETARG_FLOAT8(2),
																		  "gamma_gamma_expected_value"))));
}

/*
 * crm.clv(bgnbd, gamma_gamma, frequency, recency, t, monetary, unit,
 *         months, monthly_discount_rate) -> numeric
 * sum over months k = 1..months of
 *   E[M] (E[Y(k u)] - E[Y((k-1) u)]) / (1 + d)^k
 * with u = one month (365.25/12 days) expressed in the model's time unit.
 */
Datum
clv_clv(PG_FUNCTION_ARGS)
{
	double		bg[4], gg[3];
	double		x, tx, T, mbar, d, u, spend, total = 0, prev = 0;
	Interval   *unit;
	int64		unit_us;
	int32		months;
	int			k;

	for (k = 0; k < 9; k++)
		if (PG_ARGISNULL(k))
			PG_RETURN_NULL();
	ModelParams(PG_GETARG_HEAPTUPLEHEADER(0), 4, bg, "clv");
	ModelParams(PG_GETARG_HEAPTUPLEHEADER(1), 3, gg, "clv");
	x = PG_GETARG_FLOAT8(2);
	tx = PG_GETARG_FLOAT8(3);
	T = PG_GETARG_FLOAT8(4);
	mbar = PG_GETARG_FLOAT8(5);
	unit = PG_GETARG_INTERVAL_P(6);
	months = PG_GETARG_INT32(7);
	d = PG_GETARG_FLOAT8(8);
	CheckCustomer(x, tx, T, "clv");
	if (unit->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv: unit must not contain months or years"),
				 errhint("Pass the unit given to clv_summary, for example '7 days'.")));
	unit_us = (int64) unit->day * USECS_PER_DAY + unit->time;
	if (unit_us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv: unit must be positive")));
	if (months < 0 || months > 1200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv: months must be between 0 and 1200, got %d", months)));
	if (!isfinite(d) || d <= -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv: the monthly discount rate must be a finite number > -1"),
				 errhint("Pass 0.01 for 1%% a month.")));
	spend = GammaGammaExpected(gg, x, mbar, "clv");
	u = (365.25 / 12.0) * (double) USECS_PER_DAY / (double) unit_us;
	for (k = 1; k <= months; k++)
	{
		double		e = BgnbdExpected(bg, k * u, x, tx, T);

		total += spend * (e - prev) / pow(1.0 + d, k);
		prev = e;
	}
	if (!isfinite(total))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("clv: the result is not finite for these inputs")));
	PG_RETURN_DATUM(DirectFunctionCall1(float8_numeric, Float8GetDatum(total)));
}

/* crm.hyp2f1(a, b, c, z) -> float8: the Gaussian hypergeometric function for z < 1 */
Datum
clv_hyp2f1(PG_FUNCTION_ARGS)
{
	double		a = PG_GETARG_FLOAT8(0), b = PG_GETARG_FLOAT8(1);
	double		c = PG_GETARG_FLOAT8(2), z = PG_GETARG_FLOAT8(3);
	double		v;

	if (!isfinite(a) || !isfinite(b) || !isfinite(c) || !isfinite(z))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hyp2f1: arguments must be finite numbers")));
	if (z >= 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hyp2f1: z must be less than 1, got %g", z)));
	if (c <= 0 && c == floor(c))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hyp2f1: c must not be 0 or a negative integer")));
	v = Hyp2F1(a, b, c, z);
	if (!isfinite(v))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("hyp2f1: the series did not converge for these arguments")));
	PG_RETURN_FLOAT8(v);
}

/* ========================================================================
 * Part 7: simulation from known parameters (tests and benchmarks)
 * ========================================================================
 */
typedef struct SimRng
{
	uint64		s;
} SimRng;

/* SplitMix64 step -> uniform in (0, 1) */
static double
SimUniform(SimRng *g)
{
	uint64		z = (g->s += UINT64CONST(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64CONST(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94d049bb133111eb);
	z ^= z >> 31;
	return ((double) (z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double
SimNormal(SimRng *g)
{
	return sqrt(-2.0 * log(SimUniform(g))) * cos(2.0 * M_PI * SimUniform(g));
}

/* Gamma(shape, 1) by Marsaglia and Tsang, boosted for shape < 1 */
static double
SimGamma(SimRng *g, double shape)
{
	double		d, c;

	if (shape < 1.0)
		return SimGamma(g, shape + 1.0) * pow(SimUniform(g), 1.0 / shape);
	d = shape - 1.0 / 3.0;
	c = 1.0 / sqrt(9.0 * d);
	for (;;)
	{
		double		x = SimNormal(g);
		double		v = 1.0 + c * x;
		double		u;

		if (v <= 0)
			continue;
		v = v * v * v;
		u = SimUniform(g);
		if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
			return d * v;
	}
}

/*
 * crm.clv_simulate(r, alpha, a, b, p, q, gamma, customers, max_t, seed)
 *   -> TABLE(customer_id bigint, t_purchase float8, t_end float8, amount float8)
 * Each customer is acquired by a purchase at time 0 and observed until
 * t_end ~ Uniform(0, max_t); purchases follow the BG/NBD story (Poisson
 * rate lambda ~ Gamma(r, alpha) while alive, dropout with probability
 * p ~ Beta(a, b) after each purchase) and each purchase is worth
 * Gamma(p, nu) with nu ~ Gamma(q, gamma) (Gamma-Gamma).
 */
#define CLV_SIM_MAX_CUSTOMERS	100000000
#define CLV_SIM_MAX_PURCHASES	100000

Datum
clv_simulate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	double		r = PG_GETARG_FLOAT8(0), alpha = PG_GETARG_FLOAT8(1);
	double		a = PG_GETARG_FLOAT8(2), b = PG_GETARG_FLOAT8(3);
	double		p = PG_GETARG_FLOAT8(4), q = PG_GETARG_FLOAT8(5), gam = PG_GETARG_FLOAT8(6);
	int64		customers = PG_GETARG_INT64(7);
	double		max_t = PG_GETARG_FLOAT8(8);
	SimRng		g;
	int64		c;
	double		params[8] = {r, alpha, a, b, p, q, gam, max_t};
	int			i;

	for (i = 0; i < 8; i++)
		if (!isfinite(params[i]) || params[i] <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("clv_simulate: parameters and max_t must be positive finite numbers")));
	if (customers < 0 || customers > CLV_SIM_MAX_CUSTOMERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clv_simulate: customers must be between 0 and %d", CLV_SIM_MAX_CUSTOMERS)));
	g.s = (uint64) PG_GETARG_INT64(9) * UINT64CONST(0x2545f4914f6cdd1d) + 1;
	InitMaterializedSRF(fcinfo, 0);
	for (c = 1; c <= customers; c++)
	{
		double		lambda = SimGamma(&g, r) / alpha;
		double		ga = SimGamma(&g, a);
		double		drop = ga / (ga + SimGamma(&g, b));
		double		nu = SimGamma(&g, q) / gam;
		double		tend = max_t * SimUniform(&g);
		double		t = 0;
		int64		n = 0;

		CHECK_FOR_INTERRUPTS();
		for (;;)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			if ((n & 4095) == 4095)
				CHECK_FOR_INTERRUPTS();
			values[0] = Int64GetDatum(c);
			values[1] = Float8GetDatum(t);
			values[2] = Float8GetDatum(tend);
			values[3] = Float8GetDatum(SimGamma(&g, p) / nu);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			if (++n > CLV_SIM_MAX_PURCHASES)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("clv_simulate: a simulated customer made more than %d purchases", CLV_SIM_MAX_PURCHASES),
						 errhint("The purchase rate r/alpha is too large for max_t; use a larger alpha or a smaller max_t.")));
			/* dropout is possible after each repeat purchase, not the first */
			if (t > 0 && SimUniform(&g) < drop)
				break;
			t += -log(SimUniform(&g)) / lambda;
			if (t > tend)
				break;
		}
	}
	return (Datum) 0;
}
