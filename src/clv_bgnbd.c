/*
 * clv_bgnbd.c
 *      crm.bgnbd_fit (docs/clv.md): the BG/NBD model of Fader, Hardie & Lee
 *      (2005) "Counting your customers the easy way", fitted by maximum
 *      likelihood (log-likelihood in the form of Hardie's note 027) over the
 *      customers' distinct (x, t_x, T) patterns.
 */
#include "clv.h"

#include <math.h>

#include "miscadmin.h"

PG_FUNCTION_INFO_V1(clv_bgnbd_transfn);
PG_FUNCTION_INFO_V1(clv_bgnbd_combinefn);
PG_FUNCTION_INFO_V1(clv_bgnbd_finalfn);
PG_FUNCTION_INFO_V1(clv_bgnbd_state_in);
PG_FUNCTION_INFO_V1(clv_bgnbd_state_out);

#define BG_WIDTH 4				/* x, t_x, T, weight */

/* reject rows the model cannot take (r: reading a stored state, else NULL) */
static void
BgnbdCheck(const double *e, CrmTextReader *r)
{
	double		x = e[0], tx = e[1], T = e[2];

	if (isnan(x) || isnan(tx) || isnan(T) || isinf(x) || isinf(tx) || isinf(T))
		ClvRowError(r, NULL, "frequency, recency and t must be finite numbers");
	if (x < 0 || tx < 0 || T < 0)
		ClvRowError(r, NULL, "frequency, recency and t must not be negative");
	if (x != floor(x) || x > 1e9)
		ClvRowError(r, NULL, "frequency must be a whole number of repeat purchases, got %g", x);
	if (tx > T)
		ClvRowError(r, "Recency is the age at the last purchase and t the age at the end of observation; both in the same unit.",
					"recency %g is greater than t %g", tx, T);
	if (x == 0 && tx != 0)
		ClvRowError(r, NULL, "recency must be 0 when frequency is 0, got %g", tx);
}

/* bgnbd_transfn(state, frequency, recency, t): rows with a NULL are skipped */
Datum
clv_bgnbd_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "bgnbd_transfn");
	CrmState   *st = ClvPatternArg(fcinfo, 0, aggcontext, CRM_MAGIC_CLV_BGNBD, BG_WIDTH);
	double		e[BG_WIDTH];

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	e[0] = PG_GETARG_FLOAT8(1);
	e[1] = PG_GETARG_FLOAT8(2);
	e[2] = PG_GETARG_FLOAT8(3);
	e[3] = 1.0;
	BgnbdCheck(e, NULL);
	ClvPatternAppend(st, e);
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

Datum
clv_bgnbd_combinefn(PG_FUNCTION_ARGS)
{
	return ClvPatternCombine(fcinfo, "bgnbd_combinefn", CRM_MAGIC_CLV_BGNBD, BG_WIDTH);
}

Datum
clv_bgnbd_state_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(ClvPatternOut(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_BGNBD, BG_WIDTH));
}

Datum
clv_bgnbd_state_in(PG_FUNCTION_ARGS)
{
	return ClvPatternIn(PG_GETARG_CSTRING(0), CRM_MAGIC_CLV_BGNBD, BG_WIDTH, "crm.bgnbd_state", BgnbdCheck);
}

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
BgnbdPrepare(ClvFitData *fd, int width)
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
	ClvFitData *fd = ctx;
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
		psi_r = ClvDigamma(r);
		psi_b = ClvDigamma(b);
		psi_ab = ClvDigamma(a + b);
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
			double		d_ab = psi_ab - ClvDigamma(a + b + x);

			dr = ClvDigamma(r + x) - psi_r + lalpha;
			da = d_ab;
			db = ClvDigamma(b + x) - psi_b + d_ab;
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

/*
 * bgnbd_finalfn -> crm.bgnbd_model (r, alpha, a, b, log_likelihood,
 * customers, converged, reason)
 */
Datum
clv_bgnbd_finalfn(PG_FUNCTION_ARGS)
{
	ClvFitData	fd = {0};
	double	   *e;
	double		theta[4], params[4];
	double		gnorm, nll, sumT = 0, repeat = 0;
	const char *problem;
	int64		i;

	if (PG_ARGISNULL(0))
		return ClvModelResult(fcinfo, NULL, 4, NAN, 0, false, "no customers");
	e = ClvPatternsForFit(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_BGNBD, BG_WIDTH, &fd.n, &fd.weight);
	if (fd.n == 0)
		return ClvModelResult(fcinfo, NULL, 4, NAN, 0, false, "no customers");
	fd.e = e;
	for (i = 0; i < fd.n; i++)
	{
		sumT += e[i * BG_WIDTH + 2] * e[i * BG_WIDTH + 3];
		if (e[i * BG_WIDTH] > 0)
			repeat += e[i * BG_WIDTH + 3];
	}
	if (repeat == 0)
		return ClvModelResult(fcinfo, NULL, 4, NAN, fd.weight, false,
						   "no repeat buyers: every frequency is 0, so the purchase and dropout rates cannot be estimated");
	if (sumT == 0)
		return ClvModelResult(fcinfo, NULL, 4, NAN, fd.weight, false,
						   "every customer has t = 0: no time was observed");

	theta[0] = 0.0;
	theta[1] = log(Max(sumT / fd.weight, 1e-6));
	theta[2] = 0.0;
	theta[3] = 0.0;
	gnorm = ClvFitModel(BgnbdObjective, &fd, BG_WIDTH, BgnbdPrepare, theta, 4);
	nll = BgnbdObjective(theta, NULL, &fd);
	problem = ClvFitProblem(theta, 4, gnorm, nll);
	for (i = 0; i < 4; i++)
		params[i] = exp(theta[i]);
	return ClvModelResult(fcinfo, params, 4, -nll * fd.weight, fd.weight, problem == NULL, problem);
}

