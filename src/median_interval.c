/*
 * median_interval.c
 *      crm.median_interval(ts): aggregate, the median interval between a
 *      customer's consecutive distinct purchases (the purchase cycle that
 *      coverage policies with basis purchase_cycle use, see
 *      docs/coverage.md).  It is a statistic of a set of timestamps, not part
 *      of the coverage triggers, so it has its own file.
 *
 *      State type crm.median_interval_state: the timestamps seen, kept in
 *      place as a CrmState (magic CRM_MAGIC_MEDIAN_INTERVAL).  Text form
 *      "count:v1,v2,..." (microseconds since 2000-01-01 UTC), the same in
 *      0.1.0, 0.2.0 and 0.3.0, read and written with the shared state text
 *      reader/writer (state_text.c).
 */
#include "crm_analytics.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(coverage_median_state_in);
PG_FUNCTION_INFO_V1(coverage_median_state_out);
PG_FUNCTION_INFO_V1(coverage_median_transfn);
PG_FUNCTION_INFO_V1(coverage_median_combinefn);
PG_FUNCTION_INFO_V1(coverage_median_finalfn);

#define MEDIAN_STATE_TYPE	"crm.median_interval_state"


/*
 * crm.median_interval_state input: "count:v1,...,vcount".  The count is
 * checked against the allocation limit and against the length of the text
 * before anything is allocated; every value must be a valid finite
 * timestamp (the range of timestamptz).
 */
Datum
coverage_median_state_in(PG_FUNCTION_ARGS)
{
	const char *str = PG_GETARG_CSTRING(0);
	CrmTextReader r;
	int64		count;
	int64	   *vals;
	int64		i;

	CrmTextReaderInit(&r, str, MEDIAN_STATE_TYPE);
	count = CrmTextReadInt64(&r, "count", 0,
							 (int64) ((MaxAllocSize - CRM_STATE_FLAT_HDRSZ) / sizeof(int64)));
	CrmTextExpect(&r, ":");
	/* every value needs at least two characters ("0,"), so bound by length */
	if ((uint64) count > strlen(r.p) / 2 + 1)
		CrmTextError(&r, "The count " INT64_FORMAT " does not match the values given", count);
	vals = palloc(sizeof(int64) * Max(count, 1));
	for (i = 0; i < count; i++)
	{
		if (i > 0)
			CrmTextExpect(&r, ",");
		/* valid finite timestamps only, so the final function's gaps cannot overflow */
		vals[i] = CrmTextReadInt64(&r, "timestamp", MIN_TIMESTAMP, END_TIMESTAMP - 1);
	}
	CrmTextExpectEnd(&r);
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_MEDIAN_INTERVAL, (const char *) vals,
											  sizeof(int64) * count));
}

/* crm.median_interval_state output: "count:v1,...", exact integers */
Datum
coverage_median_state_out(PG_FUNCTION_ARGS)
{
	Size		len;
	const char *payload = CrmStatePayload(PG_GETARG_DATUM(0), CRM_MAGIC_MEDIAN_INTERVAL, &len);
	const int64 *vals = (const int64 *) payload;
	Size		n = len / sizeof(int64);
	StringInfoData buf;
	Size		i;

	initStringInfo(&buf);
	CrmTextWriteUInt64(&buf, (uint64) n);
	appendStringInfoChar(&buf, ':');
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		CrmTextWriteInt64(&buf, vals[i]);
	}
	PG_RETURN_CSTRING(buf.data);
}

/* transition: append the timestamp (NULL and infinite ones are skipped) */
Datum
coverage_median_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "crm.median_interval");
	CrmState   *st;
	TimestampTz ts;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, 16 * sizeof(int64));
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	}
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, 16 * sizeof(int64));
	ts = PG_GETARG_TIMESTAMPTZ(1);
	if (!TIMESTAMP_NOT_FINITE(ts))
	{
		memcpy(CrmStateReserve(st, sizeof(int64)), &ts, sizeof(int64));
		st->len += sizeof(int64);
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* combine: append the right state's timestamps to the left state */
Datum
coverage_median_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "crm.median_interval");
	CrmState   *st;
	const char *right;
	Size		rlen;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, 0);
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	}
	right = CrmStatePayload(PG_GETARG_DATUM(1), CRM_MAGIC_MEDIAN_INTERVAL, &rlen);
	if (rlen % sizeof(int64) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.median_interval_state: %zu payload bytes", rlen)));
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, rlen);
	if (rlen > 0)
	{
		memcpy(CrmStateReserve(st, rlen), right, rlen);
		st->len += rlen;
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/*
 * final: sort the timestamps, drop exact duplicates (order lines of one
 * purchase), and return the median gap between consecutive purchases as an
 * interval of days and time (the mean of the two middle gaps when their
 * number is even, rounded half up to the microsecond).  NULL with fewer than
 * two distinct purchases.
 */
Datum
coverage_median_finalfn(PG_FUNCTION_ARGS)
{
	Size		len;
	const char *payload;
	int64	   *ts;
	int64	   *gaps;
	Size		n;
	Size		i;
	Size		ngaps = 0;
	int64		med;
	Interval   *result;

	CrmAggContext(fcinfo, "crm.median_interval");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	payload = CrmStatePayload(PG_GETARG_DATUM(0), CRM_MAGIC_MEDIAN_INTERVAL, &len);
	n = len / sizeof(int64);
	if (n < 2)
		PG_RETURN_NULL();
	ts = palloc(len);
	memcpy(ts, payload, len);
	CrmSortInt64(ts, n);
	gaps = palloc(sizeof(int64) * (n - 1));
	for (i = 1; i < n; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		if (ts[i] != ts[i - 1])
			gaps[ngaps++] = ts[i] - ts[i - 1];	/* finite timestamps: no overflow */
	}
	if (ngaps == 0)
		PG_RETURN_NULL();
	CrmSortInt64(gaps, ngaps);
	if (ngaps % 2 == 1)
		med = gaps[ngaps / 2];
	else
	{
		int64		a = gaps[ngaps / 2 - 1];
		int64		b = gaps[ngaps / 2];

		med = a + (b - a + 1) / 2;	/* half-way, rounded up; no overflow */
	}
	result = (Interval *) palloc(sizeof(Interval));
	result->month = 0;
	result->day = (int32) (med / USECS_PER_DAY);
	result->time = med % USECS_PER_DAY;
	PG_RETURN_INTERVAL_P(result);
}
