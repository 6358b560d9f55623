/*
 * classes.c
 *      Customer classes (docs/classes.md): the ABC class and the
 *      quantile score as window functions, the RFM segment map, the XYZ
 *      class and the demand coefficient of variation aggregate.
 *
 * Both window functions read their whole partition once, on the first row,
 * sort the non-NULL values once (an in-memory sort of (key, row) pairs) and
 * keep one number per row in partition-local memory: the share of the
 * partition total held by strictly larger values (abc_class) or the number
 * of values strictly smaller (quantile_score).  Every later row of the
 * partition is answered from that cache in O(1).
 */
#include "crm_analytics.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "windowapi.h"

PG_FUNCTION_INFO_V1(classes_abc_class);
PG_FUNCTION_INFO_V1(classes_quantile_score);
PG_FUNCTION_INFO_V1(classes_rfm_segment);
PG_FUNCTION_INFO_V1(classes_rfm_segment_default);
PG_FUNCTION_INFO_V1(classes_xyz_class);
PG_FUNCTION_INFO_V1(classes_demand_cv_transfn);
PG_FUNCTION_INFO_V1(classes_demand_cv_combinefn);
PG_FUNCTION_INFO_V1(classes_demand_cv_finalfn);
PG_FUNCTION_INFO_V1(classes_demand_cv_state_in);
PG_FUNCTION_INFO_V1(classes_demand_cv_state_out);

#define QUANTILE_MAX_BUCKETS	1000
#define DEMAND_CV_MAX_PERIODS	10000

/* ------------------------------------------------------------------------
 * Sorting (value, row) pairs by value
 * ------------------------------------------------------------------------
 */

/* a non-NULL value of the partition and the row it came from */
typedef struct ValueRow
{
	uint64		key;			/* order-preserving image of the float8 */
	int64		row;			/* position in the partition */
} ValueRow;

/*
 * Map a finite float8 to a uint64 whose unsigned order is the numeric order
 * of the values; -0 and +0 map to the same key so they tie.
 */
static inline uint64
Float8SortKey(double v)
{
	uint64		bits;

	if (v == 0.0)
		v = 0.0;				/* fold -0 into +0 */
	memcpy(&bits, &v, sizeof(bits));
	if (bits & UINT64CONST(0x8000000000000000))
		return ~bits;
	return bits | UINT64CONST(0x8000000000000000);
}

/* inverse of Float8SortKey */
static inline double
Float8FromSortKey(uint64 key)
{
	uint64		bits;
	double		v;

	if (key & UINT64CONST(0x8000000000000000))
		bits = key & ~UINT64CONST(0x8000000000000000);
	else
		bits = ~key;
	memcpy(&v, &bits, sizeof(v));
	return v;
}

#define ST_SORT SortValueRows
#define ST_ELEMENT_TYPE ValueRow
#define ST_COMPARE(a, b) (((a)->key > (b)->key) - ((a)->key < (b)->key))
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* ------------------------------------------------------------------------
 * Window functions: shared partition reader
 * ------------------------------------------------------------------------
 */

/* what a window function keeps per partition (in partition-local memory) */
typedef struct ClassesPartition
{
	bool		ready;			/* cache computed for this partition */
	int64		nrows;			/* rows in the partition */
	int64		nvalues;		/* non-NULL values */
	double	   *share;			/* abc_class: per row share, NaN = NULL */
	int64	   *below;			/* quantile_score: per row #values < it, -1 = NULL */
} ClassesPartition;

/*
 * Read argument 0 of every row of the partition once.  Returns the
 * (key, row) pairs of the non-NULL values, unsorted, allocated in cxt, and
 * sets *nvalues; isnull_out[row] says which rows were NULL.  NaN and
 * infinities are errors.
 */
static ValueRow *
ReadPartitionValues(WindowObject winobj, MemoryContext cxt, int64 nrows,
					const char *fname, bool *isnull_out, int64 *nvalues)
{
	ValueRow   *pairs;
	int64		n = 0;
	int64		i;

	pairs = MemoryContextAllocHuge(cxt, sizeof(ValueRow) * Max(nrows, 1));
	for (i = 0; i < nrows; i++)
	{
		bool		isnull;
		bool		isout;
		Datum		d;
		double		v;

		d = WinGetFuncArgInPartition(winobj, 0, i, WINDOW_SEEK_HEAD, false, &isnull, &isout);
		if (isout)
			elog(ERROR, "row " INT64_FORMAT " is outside the partition of %s", i, fname);
		isnull_out[i] = isnull;
		if (isnull)
			continue;
		v = DatumGetFloat8(d);
		if (isnan(v) || isinf(v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value must be finite, got %s", isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity")),
					 errcontext("in crm.%s", fname),
					 errhint("Filter out or replace NaN and infinite values, or map them to NULL.")));
		pairs[n].key = Float8SortKey(v);
		pairs[n].row = i;
		n++;
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	*nvalues = n;
	return pairs;
}

/* the per-partition cache, allocated zeroed on the partition's first row */
static ClassesPartition *
GetPartitionCache(WindowObject winobj, MemoryContext *cxt)
{
	ClassesPartition *part;

	part = (ClassesPartition *) WinGetPartitionLocalMemory(winobj, sizeof(ClassesPartition));
	*cxt = GetMemoryChunkContext(part);
	return part;
}

/* Neumaier compensated sum in extended precision: add x to (*s, *c) */
static inline void
CompensatedAdd(long double *s, long double *c, long double x)
{
	long double t = *s + x;

	if (fabsl(*s) >= fabsl(x))
		*c += (*s - t) + x;
	else
		*c += (x - t) + *s;
	*s = t;
}

/*
 * Fill part->share for abc_class: for each row with a positive value, the
 * sum of positive values strictly greater than it divided by the sum of all
 * positive values.  Non-positive values get +Infinity (always 'C'), NULLs NaN.
 * The sums are accumulated in the same order (largest first) both times so
 * the total equals the last running sum bit for bit.
 */
static void
AbcComputePartition(WindowObject winobj, ClassesPartition *part, MemoryContext cxt)
{
	int64		nrows = WinGetPartitionRowCount(winobj);
	bool	   *isnull = MemoryContextAllocHuge(cxt, sizeof(bool) * Max(nrows, 1));
	ValueRow   *pairs;
	int64		nvalues;
	int64		npos;
	int64		first_pos;
	int64		i;
	long double tot_s = 0,
				tot_c = 0,
				run_s = 0,
				run_c = 0,
				total;

	pairs = ReadPartitionValues(winobj, cxt, nrows, "abc_class", isnull, &nvalues);
	part->nrows = nrows;
	part->nvalues = nvalues;
	part->share = MemoryContextAllocHuge(cxt, sizeof(double) * Max(nrows, 1));
	for (i = 0; i < nrows; i++)
		part->share[i] = isnull[i] ? get_float8_nan() : get_float8_infinity();

	SortValueRows(pairs, nvalues);

	/* pairs[first_pos .. nvalues-1] are the positive values, ascending */
	first_pos = nvalues;
	while (first_pos > 0 && Float8FromSortKey(pairs[first_pos - 1].key) > 0.0)
		first_pos--;
	npos = nvalues - first_pos;
	if (npos == 0)
		goto done;

	for (i = nvalues - 1; i >= first_pos; i--)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		CompensatedAdd(&tot_s, &tot_c, (long double) Float8FromSortKey(pairs[i].key));
	}
	total = tot_s + tot_c;

	/* walk groups of equal values from the largest down */
	i = nvalues - 1;
	while (i >= first_pos)
	{
		int64		lo = i;
		uint64		key = pairs[i].key;
		double		share = (double) ((run_s + run_c) / total);
		int64		k;

		while (lo > first_pos && pairs[lo - 1].key == key)
			lo--;
		for (k = lo; k <= i; k++)
		{
			if ((k & 4095) == 0)
				CHECK_FOR_INTERRUPTS();
			part->share[pairs[k].row] = share;
			CompensatedAdd(&run_s, &run_c, (long double) Float8FromSortKey(key));
		}
		i = lo - 1;
	}
done:
	pfree(pairs);
	pfree(isnull);
	part->ready = true;
}

/* validate the abc thresholds a and b */
static void
AbcCheckThresholds(double a, double b)
{
	if (isnan(a) || !(a > 0.0 && a <= 1.0) || isnan(b) || !(b > 0.0 && b <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("thresholds must be in (0, 1], got a = %g, b = %g", a, b),
				 errcontext("in crm.abc_class"),
				 errhint("Pass shares of the total, e.g. abc_class(value, 0.80, 0.95).")));
	if (a > b)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("threshold a (%g) must not exceed threshold b (%g)", a, b),
				 errcontext("in crm.abc_class"),
				 errhint("Class A holds the first share a of the total, classes A and B together the share b.")));
}

/* one-letter text result */
static inline Datum
LetterText(char c)
{
	return PointerGetDatum(cstring_to_text_with_len(&c, 1));
}

/*
 * crm.abc_class(value float8, a float8 default 0.80, b float8 default 0.95)
 * window function -> text.  s = (sum of positive values strictly greater
 * than this one) / (sum of all positive values): 'A' if s < a, 'B' if
 * s < b, else 'C'.  Non-positive values are 'C', NULL gives NULL.
 */
Datum
classes_abc_class(PG_FUNCTION_ARGS)
{
	WindowObject winobj = PG_WINDOW_OBJECT();
	ClassesPartition *part;
	MemoryContext cxt;
	int64		pos;
	double		a = 0.80,
				b = 0.95,
				share;

	if (PG_NARGS() >= 3)
	{
		bool		anull,
					bnull;

		a = DatumGetFloat8(WinGetFuncArgCurrent(winobj, 1, &anull));
		b = DatumGetFloat8(WinGetFuncArgCurrent(winobj, 2, &bnull));
		if (anull || bnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("thresholds must not be null"),
					 errcontext("in crm.abc_class"),
					 errhint("Omit them to use the defaults 0.80 and 0.95.")));
		AbcCheckThresholds(a, b);
	}

	part = GetPartitionCache(winobj, &cxt);
	if (!part->ready)
		AbcComputePartition(winobj, part, cxt);

	pos = WinGetCurrentPosition(winobj);
	WinSetMarkPosition(winobj, pos);
	share = part->share[pos];
	if (isnan(share))
		PG_RETURN_NULL();
	if (share < a)
		PG_RETURN_DATUM(LetterText('A'));
	if (share < b)
		PG_RETURN_DATUM(LetterText('B'));
	PG_RETURN_DATUM(LetterText('C'));
}

/*
 * Fill part->below for quantile_score: the number of non-NULL values of
 * the partition strictly smaller than each row's value (-1 for NULL), so
 * equal values share it.
 */
static void
QuantileComputePartition(WindowObject winobj, ClassesPartition *part, MemoryContext cxt)
{
	int64		nrows = WinGetPartitionRowCount(winobj);
	bool	   *isnull = MemoryContextAllocHuge(cxt, sizeof(bool) * Max(nrows, 1));
	ValueRow   *pairs;
	int64		nvalues;
	int64		i;

	pairs = ReadPartitionValues(winobj, cxt, nrows, "quantile_score", isnull, &nvalues);
	part->nrows = nrows;
	part->nvalues = nvalues;
	part->below = MemoryContextAllocHuge(cxt, sizeof(int64) * Max(nrows, 1));
	for (i = 0; i < nrows; i++)
		if (isnull[i])
			part->below[i] = -1;

	SortValueRows(pairs, nvalues);

	i = 0;
	while (i < nvalues)
	{
		int64		lo = i;
		uint64		key = pairs[i].key;

		for (; i < nvalues && pairs[i].key == key; i++)
		{
			if ((i & 4095) == 0)
				CHECK_FOR_INTERRUPTS();
			part->below[pairs[i].row] = lo;
		}
	}
	pfree(pairs);
	pfree(isnull);
	part->ready = true;
}

/*
 * crm.quantile_score(value float8, buckets int default 5) window function
 * -> int.  score = 1 + floor(buckets * below / n), where below = number of
 * non-NULL values in the partition strictly smaller than this one (so equal
 * values share the score of the lowest of them) and n = number of non-NULL
 * values.  Higher values get higher scores; NULL gives NULL.
 */
Datum
classes_quantile_score(PG_FUNCTION_ARGS)
{
	WindowObject winobj = PG_WINDOW_OBJECT();
	ClassesPartition *part;
	MemoryContext cxt;
	int64		pos;
	int64		below;
	int32		buckets = 5;

	if (PG_NARGS() >= 2)
	{
		bool		bnull;

		buckets = DatumGetInt32(WinGetFuncArgCurrent(winobj, 1, &bnull));
		if (bnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("buckets must not be null"),
					 errcontext("in crm.quantile_score"),
					 errhint("Omit it to use the default of 5 buckets.")));
		if (buckets < 1 || buckets > QUANTILE_MAX_BUCKETS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("buckets must be between 1 and %d, got %d",
							QUANTILE_MAX_BUCKETS, buckets),
					 errcontext("in crm.quantile_score"),
					 errhint("RFM scoring uses 5 buckets (quintiles).")));
	}

	part = GetPartitionCache(winobj, &cxt);
	if (!part->ready)
		QuantileComputePartition(winobj, part, cxt);

	pos = WinGetCurrentPosition(winobj);
	WinSetMarkPosition(winobj, pos);
	below = part->below[pos];
	if (below < 0)
		PG_RETURN_NULL();
	/* below < nvalues <= 2^62 and buckets <= 1000: no overflow below 2^63 */
	if (part->nvalues > PG_INT64_MAX / QUANTILE_MAX_BUCKETS)
		PG_RETURN_INT32(1 + (int32) floor((double) buckets * (double) below / (double) part->nvalues));
	PG_RETURN_INT32(1 + (int32) (((int64) buckets * below) / part->nvalues));
}

/* ------------------------------------------------------------------------
 * RFM segments
 * ------------------------------------------------------------------------
 */

/* the built-in 10-segment map on the R x F grid, [r-1][f-1] */
static const char *const RfmDefaultMap[5][5] = {
	/* R1 */ {"Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
	/* R2 */ {"Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"},
	/* R3 */ {"About To Sleep", "About To Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"},
	/* R4 */ {"Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"},
	/* R5 */ {"New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"},
};

/* the map in force for one query: built-in cells replaced by overrides */
typedef struct RfmMap
{
	text	   *cell[5][5];
} RfmMap;

/* check that an R or F score is 1..5 */
static void
RfmCheckScore(const char *what, int32 v)
{
	if (v < 1 || v > 5)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s score must be between 1 and 5, got %d", what, v),
				 errcontext("in crm.rfm_segment"),
				 errhint("Compute scores with crm.quantile_score(value, 5).")));
}

/* load the built-in map and the rows of crm.rfm_segment_overrides */
static RfmMap *
RfmLoadMap(MemoryContext cxt)
{
	RfmMap	   *map = MemoryContextAllocZero(cxt, sizeof(RfmMap));
	MemoryContext oldcxt;
	uint64		i;
	int			r,
				f;

	oldcxt = MemoryContextSwitchTo(cxt);
	for (r = 0; r < 5; r++)
		for (f = 0; f < 5; f++)
			map->cell[r][f] = cstring_to_text(RfmDefaultMap[r][f]);
	MemoryContextSwitchTo(oldcxt);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT r, f, segment FROM crm.rfm_segment_overrides", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading crm.rfm_segment_overrides failed");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		rnull,
					fnull,
					snull;
		int32		rv = DatumGetInt32(SPI_getbinval(tup, desc, 1, &rnull));
		int32		fv = DatumGetInt32(SPI_getbinval(tup, desc, 2, &fnull));
		Datum		seg = SPI_getbinval(tup, desc, 3, &snull);

		/* the table's constraints guarantee this; a damaged table is refused */
		if (rnull || fnull || snull || rv < 1 || rv > 5 || fv < 1 || fv > 5)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("crm.rfm_segment_overrides holds an invalid row"),
					 errcontext("in crm.rfm_segment"),
					 errhint("Every row needs r and f between 1 and 5 and a non-null segment.")));
		oldcxt = MemoryContextSwitchTo(cxt);
		map->cell[rv - 1][fv - 1] = DatumGetTextPCopy(seg);
		MemoryContextSwitchTo(oldcxt);
	}
	SPI_finish();
	return map;
}

/*
 * crm.rfm_segment(r int, f int) -> text: the segment of cell (r, f), from
 * crm.rfm_segment_overrides when it has the cell, else the built-in map.
 * The map is read once per query (per call site) and cached in fn_extra.
 */
Datum
classes_rfm_segment(PG_FUNCTION_ARGS)
{
	int32		r = PG_GETARG_INT32(0);
	int32		f = PG_GETARG_INT32(1);
	RfmMap	   *map;

	RfmCheckScore("R", r);
	RfmCheckScore("F", f);
	map = (RfmMap *) fcinfo->flinfo->fn_extra;
	if (map == NULL)
	{
		map = RfmLoadMap(fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = map;
	}
	PG_RETURN_TEXT_P(map->cell[r - 1][f - 1]);
}

/* crm.rfm_segment_default(r int, f int) -> text: the built-in map only */
Datum
classes_rfm_segment_default(PG_FUNCTION_ARGS)
{
	int32		r = PG_GETARG_INT32(0);
	int32		f = PG_GETARG_INT32(1);

	RfmCheckScore("R", r);
	RfmCheckScore("F", f);
	PG_RETURN_TEXT_P(cstring_to_text(RfmDefaultMap[r - 1][f - 1]));
}

/* ------------------------------------------------------------------------
 * XYZ class and the demand coefficient of variation
 * ------------------------------------------------------------------------
 */

/*
 * crm.xyz_class(cv float8, x float8 default 0.10, y float8 default 0.25)
 * -> text: 'X' if cv <= x, 'Y' if cv <= y, else 'Z'.  STRICT: NULL cv
 * (no demand, see demand_cv) gives NULL.
 */
Datum
classes_xyz_class(PG_FUNCTION_ARGS)
{
	double		cv = PG_GETARG_FLOAT8(0);
	double		x = PG_GETARG_FLOAT8(1);
	double		y = PG_GETARG_FLOAT8(2);

	if (isnan(x) || isnan(y) || isinf(x) || isinf(y) || x < 0.0 || y < 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("thresholds must be finite and non-negative, got x = %g, y = %g", x, y),
				 errcontext("in crm.xyz_class"),
				 errhint("Pass coefficients of variation as fractions, e.g. xyz_class(cv, 0.10, 0.25).")));
	if (x > y)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("threshold x (%g) must not exceed threshold y (%g)", x, y),
				 errcontext("in crm.xyz_class")));
	if (isnan(cv) || cv < 0.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("coefficient of variation must be a non-negative number, got %g", cv),
				 errcontext("in crm.xyz_class"),
				 errhint("Compute it with crm.demand_cv(qty, period_no, periods); it is NULL when mean demand is not positive.")));
	if (cv <= x)
		PG_RETURN_DATUM(LetterText('X'));
	if (cv <= y)
		PG_RETURN_DATUM(LetterText('Y'));
	PG_RETURN_DATUM(LetterText('Z'));
}

/*
 * demand_cv state payload: the number of periods, then the demand summed
 * per period (periods without rows stay 0).
 */
typedef struct DemandCvHeader
{
	int32		periods;
	int32		reserved;		/* always 0 */
} DemandCvHeader;

#define DemandCvSize(periods)	(sizeof(DemandCvHeader) + sizeof(double) * (Size) (periods))
#define DemandCvSums(payload)	((double *) ((char *) (payload) + sizeof(DemandCvHeader)))

/* check a payload's size and counts before trusting it */
static void
DemandCvCheckPayload(const char *payload, Size len)
{
	DemandCvHeader hdr;

	if (len < sizeof(DemandCvHeader))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid demand_cv state: %zu bytes is too short", len)));
	memcpy(&hdr, payload, sizeof(hdr));
	if (hdr.periods < 1 || hdr.periods > DEMAND_CV_MAX_PERIODS || hdr.reserved != 0 ||
		len != DemandCvSize(hdr.periods))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid demand_cv state: %d periods in %zu bytes", hdr.periods, len)));
}

/* validate the periods argument */
static void
DemandCvCheckPeriods(int32 periods)
{
	if (periods < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("periods must be at least 1, got %d", periods),
				 errcontext("in crm.demand_cv"),
				 errhint("Pass the number of periods in the analysed range, e.g. 12 for a year of months.")));
	if (periods > DEMAND_CV_MAX_PERIODS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most %d periods are supported, got %d", DEMAND_CV_MAX_PERIODS, periods),
				 errcontext("in crm.demand_cv"),
				 errhint("Use longer periods (weeks or months instead of days).")));
}

/*
 * crm.demand_cv(qty float8, period_no int, periods int) transition: add qty
 * to period period_no (1..periods).  Rows with NULL qty or period_no are
 * ignored; periods must be the same on every row.
 */
Datum
classes_demand_cv_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "demand_cv");
	CrmState   *st;
	DemandCvHeader *hdr;
	int32		periods;
	int32		period_no;
	double		qty;

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("periods must not be null"),
				 errcontext("in crm.demand_cv"),
				 errhint("Pass the number of periods in the analysed range.")));
	periods = PG_GETARG_INT32(3);
	DemandCvCheckPeriods(periods);

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	qty = PG_GETARG_FLOAT8(1);
	period_no = PG_GETARG_INT32(2);
	if (isnan(qty) || isinf(qty))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantity must be finite, got %g", qty),
				 errcontext("in crm.demand_cv")));
	if (period_no < 1 || period_no > periods)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period_no must be between 1 and %d, got %d", periods, period_no),
				 errcontext("in crm.demand_cv"),
				 errhint("Number the periods of the analysed range 1..periods and filter out rows outside it.")));

	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_DEMAND_CV, DemandCvSize(periods));
	if (st->len == 0)
	{
		char	   *p = CrmStateReserve(st, DemandCvSize(periods));

		memset(p, 0, DemandCvSize(periods));
		((DemandCvHeader *) p)->periods = periods;
		st->len = DemandCvSize(periods);
	}
	else
		DemandCvCheckPayload(st->data, st->len);
	hdr = (DemandCvHeader *) st->data;
	if (hdr->periods != periods)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("periods must be the same on every row, got %d and %d", hdr->periods, periods),
				 errcontext("in crm.demand_cv")));
	DemandCvSums(st->data)[period_no - 1] += qty;
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* combine: add the right state's period sums into the left one */
Datum
classes_demand_cv_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "demand_cv");
	CrmState   *st;
	const char *right;
	Size		rlen;
	DemandCvHeader lh,
				rh;
	int32		i;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(PG_GETARG_DATUM(0));
	}
	right = CrmStatePayload(PG_GETARG_DATUM(1), CRM_MAGIC_DEMAND_CV, &rlen);
	DemandCvCheckPayload(right, rlen);
	if (PG_ARGISNULL(0))
	{
		/* copy the right state into the aggregate context */
		st = CrmStateNew(aggcontext, CRM_MAGIC_DEMAND_CV, rlen);
		memcpy(CrmStateReserve(st, rlen), right, rlen);
		st->len = rlen;
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	}
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_DEMAND_CV, rlen);
	DemandCvCheckPayload(st->data, st->len);
	memcpy(&lh, st->data, sizeof(lh));
	memcpy(&rh, right, sizeof(rh));
	if (lh.periods != rh.periods)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("periods must be the same on every row, got %d and %d", lh.periods, rh.periods),
				 errcontext("in crm.demand_cv")));
	for (i = 0; i < lh.periods; i++)
	{
		double		rv;

		memcpy(&rv, right + sizeof(DemandCvHeader) + sizeof(double) * i, sizeof(double));
		DemandCvSums(st->data)[i] += rv;
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/*
 * final: population standard deviation of the per-period sums divided by
 * their mean; NULL when the mean is not positive (no net demand).
 */
Datum
classes_demand_cv_finalfn(PG_FUNCTION_ARGS)
{
	const char *payload;
	Size		len;
	DemandCvHeader hdr;
	double		sum = 0.0,
				mean,
				ss = 0.0;
	int32		i;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	payload = CrmStatePayload(PG_GETARG_DATUM(0), CRM_MAGIC_DEMAND_CV, &len);
	DemandCvCheckPayload(payload, len);
	memcpy(&hdr, payload, sizeof(hdr));
	for (i = 0; i < hdr.periods; i++)
		sum += DemandCvSums(payload)[i];
	mean = sum / hdr.periods;
	if (!(mean > 0.0))
		PG_RETURN_NULL();
	for (i = 0; i < hdr.periods; i++)
	{
		double		d = DemandCvSums(payload)[i] - mean;

		ss += d * d;
	}
	PG_RETURN_FLOAT8(sqrt(ss / hdr.periods) / mean);
}

/*
 * Text form of a demand_cv state: "periods:sum1,sum2,...,sumN", each sum the
 * shortest decimal that reads back exactly (the same in every release).
 */
Datum
classes_demand_cv_state_out(PG_FUNCTION_ARGS)
{
	const char *payload;
	Size		len;
	DemandCvHeader hdr;
	StringInfoData buf;
	int32		i;

	payload = CrmStatePayload(PG_GETARG_DATUM(0), CRM_MAGIC_DEMAND_CV, &len);
	DemandCvCheckPayload(payload, len);
	memcpy(&hdr, payload, sizeof(hdr));
	initStringInfo(&buf);
	CrmTextWriteInt64(&buf, hdr.periods);
	appendStringInfoChar(&buf, ':');
	for (i = 0; i < hdr.periods; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		CrmTextWriteFloat8(&buf, DemandCvSums(payload)[i]);
	}
	PG_RETURN_CSTRING(buf.data);
}

/* parse the text form; every count and number is checked */
Datum
classes_demand_cv_state_in(PG_FUNCTION_ARGS)
{
	CrmTextReader r;
	int32		periods;
	char	   *payload;
	int32		i;

	CrmTextReaderInit(&r, PG_GETARG_CSTRING(0), "crm.demand_cv_state");
	periods = (int32) CrmTextReadInt64(&r, "periods", 1, DEMAND_CV_MAX_PERIODS);
	CrmTextExpect(&r, ":");
	payload = palloc0(DemandCvSize(periods));
	((DemandCvHeader *) payload)->periods = periods;
	for (i = 0; i < periods; i++)
	{
		if (i > 0)
			CrmTextExpect(&r, ",");
		DemandCvSums(payload)[i] = CrmTextReadFloat8(&r, "a period sum");
	}
	CrmTextExpectEnd(&r);
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_DEMAND_CV, payload, DemandCvSize(periods)));
}
