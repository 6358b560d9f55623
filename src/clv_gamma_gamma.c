/*
 * clv_gamma_gamma.c
 *      crm.gamma_gamma_fit (docs/clv.md): the Gamma-Gamma spend model of
 *      Fader & Hardie's note 025, fitted by maximum likelihood over the
 *      repeat buyers' distinct (x, mbar) patterns.
 */
#include "clv.h"

#include <math.h>

#include "miscadmin.h"

PG_FUNCTION_INFO_V1(clv_gg_transfn);
PG_FUNCTION_INFO_V1(clv_gg_combinefn);
PG_FUNCTION_INFO_V1(clv_gg_finalfn);
PG_FUNCTION_INFO_V1(clv_gg_state_in);
PG_FUNCTION_INFO_V1(clv_gg_state_out);

#define GG_WIDTH 3				/* x, mbar, weight */

/* reject rows the model cannot take (r: reading a stored state, else NULL) */
static void
GammaGammaCheck(const double *e, CrmTextReader *r)
{
	if (!isfinite(e[0]) || !isfinite(e[1]))
		ClvRowError(r, NULL, "frequency and monetary must be finite numbers");
	if (e[0] < 0 || e[0] != floor(e[0]) || e[0] > 1e9)
		ClvRowError(r, NULL, "frequency must be a whole number >= 0, got %g", e[0]);
	if (e[0] > 0 && e[1] <= 0)
		ClvRowError(r, "Exclude refunds and zero-value orders, or filter with WHERE monetary > 0.",
					"monetary must be positive for repeat buyers, got %g", e[1]);
}

/* gamma_gamma_transfn(state, frequency, monetary): frequency 0 and NULLs skipped */
Datum
clv_gg_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "gamma_gamma_transfn");
	CrmState   *st = ClvPatternArg(fcinfo, 0, aggcontext, CRM_MAGIC_CLV_GG, GG_WIDTH);
	double		e[GG_WIDTH];

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	e[0] = PG_GETARG_FLOAT8(1);
	e[1] = PG_GETARG_FLOAT8(2);
	e[2] = 1.0;
	GammaGammaCheck(e, NULL);
	if (e[0] > 0)
		ClvPatternAppend(st, e);
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

Datum
clv_gg_combinefn(PG_FUNCTION_ARGS)
{
	return ClvPatternCombine(fcinfo, "gamma_gamma_combinefn", CRM_MAGIC_CLV_GG, GG_WIDTH);
}

Datum
clv_gg_state_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(ClvPatternOut(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_GG, GG_WIDTH));
}

/* a stored pattern: the row check, and frequency 0 is never stored */
static void
GammaGammaStateCheck(const double *e, CrmTextReader *r)
{
	GammaGammaCheck(e, r);
	if (e[0] == 0)
		ClvRowError(r, NULL, "frequency 0 is never stored");
}

Datum
clv_gg_state_in(PG_FUNCTION_ARGS)
{
	return ClvPatternIn(PG_GETARG_CSTRING(0), CRM_MAGIC_CLV_GG, GG_WIDTH, "crm.gamma_gamma_state",
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
GammaGammaPrepare(ClvFitData *fd, int width)
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
	ClvFitData *fd = ctx;
	double		p = exp(theta[0]), q = exp(theta[1]), g = exp(theta[2]);
	double		lg_q, psi_q = 0, lgam = log(g);
	double		ll = 0, gp = 0, gq = 0, gg = 0;
	int64		i = 0;

	if (!isfinite(p) || !isfinite(q) || !isfinite(g) || p <= 0 || q <= 0 || g <= 0)
		return INFINITY;
	lg_q = lgamma(q);
	if (grad)
		psi_q = ClvDigamma(q);
	while (i < fd->n)
	{
		double		x = fd->e[i * GG_WIDTH];
		double		px = p * x;
		double		A = lgamma(px + q) - lgamma(px) - lg_q + q * lgam + px * log(x);
		double		dAp = 0, dAq = 0;

		if (grad)
		{
			double		psi_pxq = ClvDigamma(px + q);

			dAp = x * (psi_pxq - ClvDigamma(px)) + x * log(x);
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
	ClvFitData	fd = {0};
	double	   *e;
	double		theta[3], params[3];
	double		gnorm, nll, summ = 0;
	const char *problem;
	int64		i;
	bool		same = true;

	if (PG_ARGISNULL(0))
		return ClvModelResult(fcinfo, NULL, 3, NAN, 0, false, "no repeat buyers: the model needs customers with frequency > 0");
	e = ClvPatternsForFit(PG_GETARG_DATUM(0), CRM_MAGIC_CLV_GG, GG_WIDTH, &fd.n, &fd.weight);
	if (fd.n == 0)
		return ClvModelResult(fcinfo, NULL, 3, NAN, 0, false, "no repeat buyers: the model needs customers with frequency > 0");
	fd.e = e;
	for (i = 0; i < fd.n; i++)
	{
		summ += e[i * GG_WIDTH + 1] * e[i * GG_WIDTH + 2];
		if (e[i * GG_WIDTH + 1] != e[1])
			same = false;
	}
	if (same)
		return ClvModelResult(fcinfo, NULL, 3, NAN, fd.weight, false,
						   "every customer has the same monetary value: the spread of spend cannot be estimated");
	theta[0] = 0.0;
	theta[1] = log(2.0);
	theta[2] = log(Max(summ / fd.weight, 1e-6));
	gnorm = ClvFitModel(GammaGammaObjective, &fd, GG_WIDTH, GammaGammaPrepare, theta, 3);
	nll = GammaGammaObjective(theta, NULL, &fd);
	problem = ClvFitProblem(theta, 3, gnorm, nll);
	for (i = 0; i < 3; i++)
		params[i] = exp(theta[i]);
	if (problem == NULL && params[1] <= 1)
		problem = "q <= 1: the expected spend (p gamma / (q - 1)) is undefined";
	return ClvModelResult(fcinfo, params, 3, -nll * fd.weight, fd.weight, problem == NULL, problem);
}

