/*
 * clv_numeric.c
 *      The numerics of the lifetime value models (docs/clv.md): the digamma
 *      function, the Gaussian hypergeometric function 2F1 and two
 *      minimisers of a smooth function of up to 4 parameters (Nelder-Mead
 *      and BFGS with an Armijo line search).  Plain C doubles; the only
 *      PostgreSQL dependency is CHECK_FOR_INTERRUPTS between evaluations.
 */
#include "clv.h"

#include <math.h>

#include "miscadmin.h"

int			ClvFitEvals;		/* objective evaluations (reset by the caller) */

/* digamma psi(x) for x > 0: recurrence up to 6, then the asymptotic series */
double
ClvDigamma(double x)
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
double
ClvHyp2F1(double a, double b, double c, double z)
{
	double		d;

	if (z == 0.0)
		return 1.0;
	if (z < 0.0)
		return pow(1.0 - z, -a) * ClvHyp2F1(a, c - b, c, z / (z - 1.0));
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

/* objective value, +inf when not finite (so the simplex moves away from it) */
static double
SafeObjective(ClvObjectiveFn f, const double *theta, double *grad, void *ctx)
{
	double		v;

	CHECK_FOR_INTERRUPTS();		/* one evaluation may scan a million patterns */
	v = f(theta, grad, ctx);
	ClvFitEvals++;
	return isfinite(v) ? v : INFINITY;
}

/* Nelder-Mead minimisation of f over n <= 4 dimensions, theta updated in place */
int
ClvNelderMead(ClvObjectiveFn f, void *ctx, double *theta, int n, double step, int maxiter, double ftol)
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
double
ClvBfgs(ClvObjectiveFn f, void *ctx, double *theta, int n, int maxiter, double gtol)
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
	ClvFitEvals++;
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
			ClvFitEvals++;
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

