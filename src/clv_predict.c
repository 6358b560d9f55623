/*
 * clv_predict.c
 *      Predictions from fitted lifetime value models (docs/clv.md):
 *      expected purchases and P(alive) under BG/NBD (Fader, Hardie & Lee
 *      2005), the expected spend under Gamma-Gamma (note 025), the
 *      discounted CLV that combines them, and crm.hyp2f1.
 */
#include "clv.h"

#include <math.h>

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(clv_bgnbd_expected_purchases);
PG_FUNCTION_INFO_V1(clv_bgnbd_p_alive);
PG_FUNCTION_INFO_V1(clv_gg_expected_value);
PG_FUNCTION_INFO_V1(clv_clv);
PG_FUNCTION_INFO_V1(clv_hyp2f1);


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
				 errmsg("the model did not converge"),
				 isnull ? 0 : errdetail("%s", TextDatumGetCString(reason)),
				 errhint("Check the fit's reason column; fit on more or cleaner data."),
				 errcontext("in crm.%s", fname)));
	}
	for (i = 0; i < nparams; i++)
	{
		Datum		d = GetAttributeByNum(row, i + 1, &isnull);

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the model has no parameters"),
					 errcontext("in crm.%s", fname)));
		params[i] = DatumGetFloat8(d);
		if (!isfinite(params[i]) || params[i] <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model parameters must be positive and finite"),
					 errcontext("in crm.%s", fname)));
	}
}

/* validated customer summary (x, t_x, T) */
static void
CheckCustomer(double x, double tx, double T, const char *fname)
{
	if (!isfinite(x) || !isfinite(tx) || !isfinite(T))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("frequency, recency and t must be finite numbers"),
				 errcontext("in crm.%s", fname)));
	if (x < 0 || tx < 0 || T < 0 || x != floor(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("frequency must be a whole number >= 0 and recency, t >= 0"),
				 errcontext("in crm.%s", fname)));
	if (tx > T)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recency %g is greater than t %g", tx, T),
				 errcontext("in crm.%s", fname)));
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
	f = ClvHyp2F1(r + x, b + x, a + b + x - 1, z);
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
				 errmsg("horizon must be a finite number >= 0")));
	CheckCustomer(x, tx, T, "bgnbd_expected_purchases");
	v = BgnbdExpected(m, h, x, tx, T);
	if (!isfinite(v))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the result is not finite for these inputs")));
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
				 errmsg("the expected value is undefined when q <= 1 (q = %g)", q),
				 errdetail("The Gamma-Gamma mean spend p*gamma/(q-1) is infinite for q <= 1."),
				 errhint("The spend data are too heavy-tailed for this model; cap outliers or use the historical mean."),
				 errcontext("in crm.%s", fname)));
	if (!isfinite(x) || !isfinite(mbar) || x < 0 || x != floor(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("frequency must be a whole number >= 0 and monetary finite"),
				 errcontext("in crm.%s", fname)));
	if (x > 0 && mbar <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("monetary must be positive for repeat buyers, got %g", mbar),
				 errcontext("in crm.%s", fname)));
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
				 errmsg("unit must not contain months or years"),
				 errhint("Pass the unit given to clv_summary, for example '7 days'.")));
	unit_us = (int64) unit->day * USECS_PER_DAY + unit->time;
	if (unit_us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unit must be positive")));
	if (months < 0 || months > 1200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("months must be between 0 and 1200, got %d", months)));
	if (!isfinite(d) || d <= -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the monthly discount rate must be a finite number > -1"),
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
				 errmsg("the result is not finite for these inputs")));
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
				 errmsg("arguments must be finite numbers")));
	if (z >= 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("z must be less than 1, got %g", z)));
	if (c <= 0 && c == floor(c))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("c must not be 0 or a negative integer")));
	v = ClvHyp2F1(a, b, c, z);
	if (!isfinite(v))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the series did not converge for these arguments")));
	PG_RETURN_FLOAT8(v);
}

