/*
 * cohort_report.c
 *      The cohort report functions (docs/retention.md):
 *
 *      crm.cohort_retention(events_sql, period, periods [, as_of])
 *      crm.retention_metrics(events_sql, period [, as_of])
 *
 *      They read the user's inner query (entity, ts [, amount]) through the
 *      two-pass path (cohort_two_pass.c) or the aggregate path
 *      (cohort_rollup.c) and turn the counters into rows.
 */
#include "retention.h"

#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(crm_cohort_retention);
PG_FUNCTION_INFO_V1(crm_retention_metrics);

#define METRICS_MAX_ROWS	1000000

/* common argument checks of the report functions */
static CohortPeriod
ReportArgs(FunctionCallInfo fcinfo, const char *fname, char **sql)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("inner query of %s must not be null", fname),
				 errhint("Pass a query returning (entity, ts timestamptz [, amount numeric]).")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("period must not be null"),
				 errhint("Valid periods are day, week, month, quarter, year."),
				 errcontext("in %s", fname)));
	*sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	return RetentionParsePeriod(PG_GETARG_TEXT_PP(1));
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
	r->asof_idx = RetentionPeriodIndex(r->period, RetentionLocalJulianDay(PG_GETARG_TIMESTAMPTZ(argno)));
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
				 errmsg("periods must not be null"),
				 errcontext("in %s", fname)));
	periods = PG_GETARG_INT32(2);
	if (periods < 1 || periods > COHORT_MAX_PERIODS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("periods must be between 1 and %d, got %d", COHORT_MAX_PERIODS, periods),
				 errhint("periods is the number of period columns per cohort (period_no 0 .. periods-1)."),
				 errcontext("in %s", fname)));

	InitMaterializedSRF(fcinfo, 0);
	outer = CurrentMemoryContext;
	r = RetentionRollupNew(ROLLUP_COHORTS, period, periods);
	RollupAsOf(fcinfo, 3, r);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!RetentionTwoPassRollup(fname, sql, r, &has_amount))
	{
		/* start over with a new receiver, outside SPI's memory as the first */
		MemoryContext spi = MemoryContextSwitchTo(outer);

		RetentionRollupFree(r);
		r = RetentionRollupNew(ROLLUP_COHORTS, period, periods);
		RollupAsOf(fcinfo, 3, r);
		MemoryContextSwitchTo(spi);
		has_amount = RetentionRollupRun(fname, sql, r);
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

			cum = RetentionAddChecked(cum, rev);
			values[0] = DateADTGetDatum(RetentionPeriodStartDate(period, c->cohort));
			values[1] = Int32GetDatum((int32) k);
			values[2] = Int64GetDatum(c->size);
			values[3] = Int64GetDatum(active);
			values[4] = NumericRatio(int64_to_numeric(active), c->size, 4);
			if (has_amount)
			{
				values[5] = NumericGetDatum(RetentionNumericFromScaled(rev, r->dscale));
				values[6] = NumericRatio(RetentionNumericFromScaled(cum, r->dscale), c->size, ltv_scale);
			}
			else
				nulls[5] = nulls[6] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();
	RetentionRollupFree(r);
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
	r = RetentionRollupNew(ROLLUP_PERIODS, period, 0);
	RollupAsOf(fcinfo, 2, r);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	has_amount = RetentionRollupRun(fname, sql, r);
	if (r->has_asof && r->any)
		r->maxidx = r->asof_idx;
	aov_scale = Max(r->dscale, 2);

	if (r->any && (int64) r->maxidx - r->minidx + 1 > METRICS_MAX_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the data spans " INT64_FORMAT " periods, at most %d are reported",
						(int64) r->maxidx - r->minidx + 1, METRICS_MAX_ROWS),
				 errhint("Use a longer period or restrict the time range in the inner query."),
				 errcontext("in %s", fname)));

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
		values[0] = DateADTGetDatum(RetentionPeriodStartDate(period, key));
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
			values[9] = NumericGetDatum(RetentionNumericFromScaled(a->revenue, r->dscale));
		else
			nulls[9] = true;
		values[10] = Int64GetDatum(a->repeat);
		if (a->active > 0)
			values[11] = NumericRatio(int64_to_numeric(a->repeat), a->active, 4);
		else
			nulls[11] = true;
		if (has_amount && a->orders > 0)
			values[12] = NumericRatio(RetentionNumericFromScaled(a->revenue, r->dscale), a->orders, aov_scale);
		else
			nulls[12] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		prev_active = a->active;
	}
	SPI_finish();
	RetentionRollupFree(r);
	return (Datum) 0;
}

