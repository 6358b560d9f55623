/*
 * clv_summary.c
 *      crm.clv_summary (docs/clv.md): the per-customer summary (frequency,
 *      recency, T, monetary with the `lifetimes` conventions) that the
 *      model fits take, and its state type crm.clv_summary_state.
 *
 * Payload: ClvSummaryHeader, then entries, each a ClvSummaryEntry followed
 * by the amount as a numeric varlena (4-byte header), padded to MAXALIGN.
 * Rows are appended as they come; the final function sorts by period and
 * merges rows of the same period.
 */
#include "clv.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(clv_summary_transfn);
PG_FUNCTION_INFO_V1(clv_summary_combinefn);
PG_FUNCTION_INFO_V1(clv_summary_finalfn);
PG_FUNCTION_INFO_V1(clv_summary_state_in);
PG_FUNCTION_INFO_V1(clv_summary_state_out);

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
				 errmsg("timestamps must be finite")));
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
				 errmsg("unit must not contain months or years"),
				 errhint("Months differ in length; use a fixed unit such as '7 days' or '30 days'.")));
	us = (int64) unit->day * USECS_PER_DAY + unit->time;
	if (us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unit must be positive"),
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
				 errmsg("state would exceed the maximum size"),
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
				 errmsg("observation_end and unit must be the same on every row of a group"),
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
				 errmsg("observation_end must not be null")));
	if (PG_NARGS() > 4 && PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("unit must not be null")));
	if (TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(3)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("observation_end must be finite")));
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
					 errmsg("amount must be a finite number"),
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
				 errmsg("frequency out of range")));
	if (nperiods > 1)
		monetary = DirectFunctionCall2(numeric_div, total,
									   NumericGetDatum(int64_to_numeric(nperiods - 1)));
	else
		monetary = NumericGetDatum(int64_to_numeric(0));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	scale = (double) h.gran / (double) h.unit;
	values[0] = Int32GetDatum((int32) (nperiods - 1));
	values[1] = Float8GetDatum((double) (last - first) * scale);
	values[2] = Float8GetDatum((double) (h.obs_period - first) * scale);
	values[3] = monetary;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Text form: "obs_end_us unit_us n" then "period amount" per entry, or
 * "empty" (a state that saw no row).  The same in 0.1.0 and 0.2.0.
 */
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
	CrmTextWriteInt64(&buf, h.obs_end);
	appendStringInfoChar(&buf, ' ');
	CrmTextWriteInt64(&buf, h.unit);
	appendStringInfoChar(&buf, ' ');
	CrmTextWriteInt64(&buf, h.nentries);
	for (i = 0; i < h.nentries; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		appendStringInfoChar(&buf, ' ');
		CrmTextWriteInt64(&buf, items[i].period);
		appendStringInfoChar(&buf, ' ');
		appendStringInfoString(&buf,
							   DatumGetCString(DirectFunctionCall1(numeric_out,
																   NumericGetDatum(items[i].amount))));
	}
	PG_RETURN_CSTRING(buf.data);
}

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* an amount: a finite decimal number as numeric_out writes it */
static Numeric
ReadAmount(CrmTextReader *r)
{
	const char *start = r->p;
	const char *p = start;
	int			ndigits = 0;

	if (*p == '-' || *p == '+')
		p++;
	for (; IS_DIGIT(*p); p++)
		ndigits++;
	if (*p == '.')
		for (p++; IS_DIGIT(*p); p++)
			ndigits++;
	if (ndigits > 0 && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!IS_DIGIT(*p))
			ndigits = 0;
		while (IS_DIGIT(*p))
			p++;
	}
	if (ndigits == 0 || (*p != ' ' && *p != '\0'))
		CrmTextError(r, "Expected a finite number for the amount");
	r->p = p;
	return DatumGetNumeric(DirectFunctionCall3(numeric_in,
											   CStringGetDatum(pnstrdup(start, p - start)),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* the entries of the text form, appended to buf after the header h */
static void
ReadEntries(CrmTextReader *r, const ClvSummaryHeader *h, StringInfo buf)
{
	int64		i;

	for (i = 0; i < h->nentries; i++)
	{
		ClvSummaryEntry e;
		Numeric		amt;
		char		zeros[MAXIMUM_ALIGNOF] = {0};
		const char *start;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		ClvTextSpace(r);
		start = r->p;
		e.period = CrmTextReadInt64(r, "the period", PG_INT64_MIN, PG_INT64_MAX);
		if (e.period > h->obs_period)
		{
			r->p = start;
			CrmTextError(r, "The period is after observation_end");
		}
		ClvTextSpace(r);
		amt = ReadAmount(r);
		e.nbytes = VARSIZE(amt);
		e.pad = 0;
		appendBinaryStringInfo(buf, (char *) &e, sizeof(e));
		appendBinaryStringInfo(buf, (char *) amt, e.nbytes);
		appendBinaryStringInfo(buf, zeros, MAXALIGN(e.nbytes) - e.nbytes);
	}
}

/* read the text form back into a flat state, checking every field */
Datum
clv_summary_state_in(PG_FUNCTION_ARGS)
{
	CrmTextReader r;
	StringInfoData buf;
	ClvSummaryHeader h;
	int64		zero = 0,
				used;

	CrmTextReaderInit(&r, PG_GETARG_CSTRING(0), "crm.clv_summary_state");
	while (*r.p == ' ')
		r.p++;
	if (CrmTextSkip(&r, "empty"))
	{
		ClvTextEnd(&r);
		PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_CLV_SUMMARY, (char *) &zero, sizeof(int64)));
	}
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (char *) &zero, sizeof(int64));
	memset(&h, 0, sizeof(h));
	h.obs_end = CrmTextReadInt64(&r, "observation_end", MIN_TIMESTAMP, END_TIMESTAMP - 1);
	ClvTextSpace(&r);
	h.unit = CrmTextReadInt64(&r, "the unit", 1, PG_INT64_MAX);
	ClvTextSpace(&r);
	h.nentries = CrmTextReadInt64(&r, "the entry count", 0,
								  (int64) (MaxAllocSize / sizeof(ClvSummaryEntry)));
	h.gran = Min(h.unit, USECS_PER_DAY);
	h.obs_period = SummaryPeriod(h.obs_end, h.gran);
	appendBinaryStringInfo(&buf, (char *) &h, sizeof(h));
	ReadEntries(&r, &h, &buf);
	ClvTextEnd(&r);
	used = buf.len - sizeof(int64);
	memcpy(buf.data, &used, sizeof(int64));
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_CLV_SUMMARY, buf.data, buf.len));
}
