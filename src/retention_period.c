/*
 * retention_period.c
 *      The period calendar of the cohort functions (docs/retention.md,
 *      "Periods"): a period (day, ISO week starting on Monday, month,
 *      quarter, year) is numbered by an int32 index, so consecutive periods
 *      have consecutive indexes, and the local date of a timestamptz in the
 *      session time zone decides which period it falls in (as date_trunc
 *      would).
 */
#include "retention.h"

#include "utils/builtins.h"
#include "utils/datetime.h"

const char *const RetentionPeriodNames[NUM_PERIODS] = {"day", "week", "month", "quarter", "year"};

/* parse a period name (case-insensitive, no allocation) or raise 22023 listing the valid ones */
CohortPeriod
RetentionParsePeriod(text *t)
{
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			i;

	for (i = 0; i < NUM_PERIODS; i++)
		if ((size_t) len == strlen(RetentionPeriodNames[i]) &&
			pg_strncasecmp(s, RetentionPeriodNames[i], len) == 0)
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
int32
RetentionPeriodIndex(CohortPeriod period, int32 jd)
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
int32
RetentionPeriodStartJd(CohortPeriod period, int32 idx)
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
void
RetentionPeriodIndexBounds(CohortPeriod period, int32 *lo, int32 *hi)
{
	*lo = RetentionPeriodIndex(period, 0);
	*hi = RetentionPeriodIndex(period, date2j(294277, 1, 1));
}

/* Julian day of ts in the session time zone (the day date_trunc would see) */
int32
RetentionLocalJulianDay(TimestampTz ts)
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

