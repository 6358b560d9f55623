/*
 * retention.h
 *      The pieces the files of the retention capability share
 *      (docs/retention.md describes what they compute).
 *
 *      retention_agg.c     crm.retention: the VARIADIC aggregate and the
 *                          fixed-arity overloads, their state types
 *      retention_period.c  the period calendar: period names, the period
 *                          index of a local date, period starts
 *      retention_money.c   exact revenue: amounts as 128-bit integers
 *                          scaled by 10^dscale, and back to numeric
 *      pg_numeric.c        reading a numeric's digits (PostgreSQL
 *                          internals, with a fallback)
 *      cohort_state.c      crm.cohort_activity: the per-entity state, its
 *                          transition, combine, text and periods functions
 *      cohort_rollup.c     the receiver that folds per-entity states into
 *                          per-cohort or per-period counters
 *      cohort_two_pass.c   cohort_retention in two passes over the inner
 *                          query (crm_analytics.cohort_two_pass)
 *      cohort_report.c     crm.cohort_retention and crm.retention_metrics
 *
 * Naming follows crm_analytics.h: functions shared between these files are
 * Retention + CamelCase; file-local ones are static.
 */
#ifndef CRM_RETENTION_H
#define CRM_RETENTION_H

#include "crm_analytics.h"

#include "tcop/dest.h"
#include "utils/date.h"
#include "utils/hsearch.h"
#include "utils/numeric.h"

#define COHORT_MAX_PERIODS	1000	/* periods argument of cohort_retention */
#define COHORT_MAX_SCALE	30		/* decimal places kept exactly in revenue */

/* ------------------------------------------------------------------------
 * Periods (retention_period.c)
 * ------------------------------------------------------------------------
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
extern const char *const RetentionPeriodNames[NUM_PERIODS];

/* a period name (case-insensitive) or a 22023 error listing the valid ones */
extern CohortPeriod RetentionParsePeriod(text *t);
/* index of the period (day, ISO week, month, ...) containing Julian day jd */
extern int32 RetentionPeriodIndex(CohortPeriod period, int32 jd);
/* Julian day of the first day of period index idx */
extern int32 RetentionPeriodStartJd(CohortPeriod period, int32 idx);
/* the smallest and largest period index a timestamptz can fall in */
extern void RetentionPeriodIndexBounds(CohortPeriod period, int32 *lo, int32 *hi);
/* Julian day of ts in the session time zone; 22008 for an infinite ts */
extern int32 RetentionLocalJulianDay(TimestampTz ts);

static inline DateADT
RetentionPeriodStartDate(CohortPeriod period, int32 idx)
{
	return RetentionPeriodStartJd(period, idx) - POSTGRES_EPOCH_JDATE;
}

/* ------------------------------------------------------------------------
 * Exact revenue (retention_money.c): int128 scaled by 10^dscale
 * ------------------------------------------------------------------------
 */
#define I128_MAX	((int128) (~(uint128) 0 >> 1))

extern int128 RetentionPow10Tab[39];
extern void RetentionPow10Init(void);

static inline int128
RetentionPow10(int e)
{
	if (RetentionPow10Tab[0] == 0)
		RetentionPow10Init();
	return RetentionPow10Tab[e];
}

/* the 22003 error of a sum beyond 128 bits */
extern pg_attribute_noreturn() void RetentionRevenueOverflow(void);

static inline int128
RetentionAddChecked(int128 a, int128 b)
{
	int128		r;

	if (__builtin_add_overflow(a, b, &r))
		RetentionRevenueOverflow();
	return r;
}

/* v * 10^(to - from), to >= from */
static inline int128
RetentionRescale(int128 v, int from, int to)
{
	int128		r;

	if (to == from || v == 0)
		return v;
	if (__builtin_mul_overflow(v, RetentionPow10(to - from), &r))
		RetentionRevenueOverflow();
	return r;
}

/* a numeric amount as an integer scaled by 10^*dscale (errors for NaN, too many decimals) */
extern int128 RetentionScaledFromNumeric(Datum d, int *dscale);
/* v / 10^dscale as text in buf, e.g. (-5, 2) -> "-0.05"; returns the start */
extern char *RetentionScaledToCString(int128 v, int dscale, char *buf, Size buflen);
extern Numeric RetentionNumericFromScaled(int128 v, int dscale);

/* ------------------------------------------------------------------------
 * The per-entity state (cohort_state.c; the layout is described there)
 * ------------------------------------------------------------------------
 */
typedef struct CohortHeader
{
	int32		nentries;
	int16		period;			/* CohortPeriod */
	int8		dscale;			/* decimal places of revenue, 0..COHORT_MAX_SCALE */
	int8		wide;			/* 0: narrow entries, 1: CohortEntry */
	int32		base;			/* narrow: the period index offsets count from */
} CohortHeader;

/* wide entry; also the form every reader works with */
typedef struct CohortEntry
{
	int32		idx;			/* period index */
	int32		reserved;
	int64		orders;			/* rows in this period, >= 1 */
	int128		revenue;		/* sum of non-null amounts, scaled */
} CohortEntry;

/* read-only, validated payload of a state datum (flat, packed, toasted or 0.1.0's) */
extern const CohortHeader *RetentionCohortPayload(Datum d);

/*
 * The entries of a checked payload as wide entries: the payload's own when
 * it is wide, else converted into *buf (grown in cxt as needed).
 */
extern const CohortEntry *RetentionCohortWideEntries(const CohortHeader *h, CohortEntry **buf,
													 int *bufcap, MemoryContext cxt);

/* ------------------------------------------------------------------------
 * The rollup receiver (cohort_rollup.c)
 * ------------------------------------------------------------------------
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
	Oid			rowtypes[2];	/* what the receiver reads: boolean, crm.cohort_activity_state */
} RollupReceiver;

/* the inner query's columns: entity, ts [, amount] */
extern const CrmColumnSpec RetentionCohortColumns[3];

extern RollupReceiver *RetentionRollupNew(RollupMode mode, CohortPeriod period, int periods);
extern void RetentionRollupFree(RollupReceiver *r);
/* r's per-cohort or per-period accumulators (empty) */
extern void RetentionRollupCreateTable(RollupReceiver *r);
/* bring every revenue accumulator to dscale ds */
extern void RetentionRollupRescale(RollupReceiver *r, int ds);
/* the aggregate path: fold "cohort_activity ... GROUP BY entity" into r; whether there is an amount */
extern bool RetentionRollupRun(const char *fname, const char *sql, RollupReceiver *r);

/* ------------------------------------------------------------------------
 * The two-pass path (cohort_two_pass.c)
 * ------------------------------------------------------------------------
 */
extern bool RetentionTwoPassRollup(const char *fname, const char *sql, RollupReceiver *r,
								   bool *has_amount);

/* ------------------------------------------------------------------------
 * Numeric digits (pg_numeric.c)
 * ------------------------------------------------------------------------
 */
typedef enum CrmNumericStatus
{
	CRM_NUMERIC_OK,
	CRM_NUMERIC_NOT_FINITE,		/* NaN or an infinity */
	CRM_NUMERIC_SCALE,			/* more than maxscale decimal places (*dscale says how many) */
	CRM_NUMERIC_OVERFLOW,		/* does not fit in an int128 */
	CRM_NUMERIC_CORRUPT			/* not a numeric */
} CrmNumericStatus;

/*
 * A numeric datum as the integer *val = value * 10^*dscale, where *dscale
 * is the numeric's display scale.  The fast path reads the stored form; the
 * fallback (CrmNumericFastPath off) goes through numeric_out.
 */
extern CrmNumericStatus CrmNumericScaled(Datum d, int maxscale, int128 *val, int *dscale);

#endif							/* CRM_RETENTION_H */
