/*
 * clv_fit.c
 *      The fit driver of the lifetime value models (docs/clv.md): runs the
 *      optimisers of clv_numeric.c on a model's objective (Nelder-Mead for
 *      a start, BFGS to the optimum, up to three rounds; a warm start on a
 *      sample when there are many distinct patterns), judges whether the
 *      fit converged, and builds the model row.
 */
#include "clv.h"

#include <math.h>

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"

/* build a model row of the function's result type */
Datum
ClvModelResult(FunctionCallInfo fcinfo, const double *params, int nparams, double ll,
			double customers, bool converged, const char *reason)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8];
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	for (i = 0; i < nparams; i++)
	{
		nulls[i] = params == NULL;
		values[i] = params ? Float8GetDatum(params[i]) : (Datum) 0;
	}
	nulls[nparams] = !isfinite(ll);
	values[nparams] = Float8GetDatum(ll);
	nulls[nparams + 1] = false;
	values[nparams + 1] = Int64GetDatum((int64) customers);
	nulls[nparams + 2] = false;
	values[nparams + 2] = BoolGetDatum(converged);
	nulls[nparams + 3] = reason == NULL;
	values[nparams + 3] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Many distinct patterns (a million customers give ~200k): the first,
 * coarse Nelder-Mead phase runs on a systematic sample of about
 * FIT_SAMPLE_SIZE patterns (every k-th in the sorted order, so every
 * frequency stays represented; the objectives are per customer of the data
 * they get, so the sample needs no reweighting).  It only
 * finds the starting point: BFGS then converges on all the patterns, to the
 * same optimum (gradient < 1e-7) as without the sample.
 */
#define FIT_SAMPLE_MIN 40000
#define FIT_SAMPLE_SIZE 10000

static void
FitWarmStart(ClvObjectiveFn f, ClvFitData *fd, int width, ClvFitPrepare prepare, double *theta, int n)
{
	ClvFitData	sub;
	double	   *e;
	int64		k = fd->n / FIT_SAMPLE_SIZE;
	int64		i, m = 0;
	double		w = 0;

	e = palloc(sizeof(double) * width * (fd->n / k + 1));
	for (i = 0; i < fd->n; i += k)
	{
		memcpy(e + m * width, fd->e + i * width, sizeof(double) * width);
		w += e[m * width + width - 1];
		m++;
	}
	memset(&sub, 0, sizeof(sub));
	sub.e = e;
	sub.n = m;
	sub.weight = w;
	prepare(&sub, width);
	ClvNelderMead(f, &sub, theta, n, 0.5, 40, 1e-8);
	pfree(e);
	if (sub.vals)
		pfree(sub.vals);
	if (sub.idx)
		pfree(sub.idx);
	if (sub.lv)
		pfree(sub.lv);
	if (sub.iv)
		pfree(sub.iv);
}

double
ClvFitModel(ClvObjectiveFn f, ClvFitData *fd, int width, ClvFitPrepare prepare, double *theta, int n)
{
	int			round;
	double		gnorm = NAN;

	ClvFitEvals = 0;
	prepare(fd, width);
	for (round = 0; round < 3; round++)
	{
		if (round == 0 && fd->n > FIT_SAMPLE_MIN)
			FitWarmStart(f, fd, width, prepare, theta, n);
		else
			ClvNelderMead(f, fd, theta, n, round == 0 ? 0.5 : 0.05, round == 0 ? 40 : 400, 1e-8);
		gnorm = ClvBfgs(f, fd, theta, n, 300, 1e-10);
		if (isfinite(gnorm) && gnorm < 1e-7)
			break;
	}
	elog(DEBUG1, "model fit with %d objective evaluations, %d rounds, gradient %g",
		 ClvFitEvals, round + 1, gnorm);
	return gnorm;
}

/* check a fitted parameter vector; NULL when fine, else why not */
const char *
ClvFitProblem(const double *theta, int n, double gnorm, double nll)
{
	int			i;

	if (!isfinite(nll) || !isfinite(gnorm))
		return "the log-likelihood is not finite at the optimum";
	for (i = 0; i < n; i++)
		if (fabs(theta[i]) > 25)
			return "a parameter ran to 0 or infinity: the data do not identify the model";
	if (gnorm > 1e-5)
		return "the optimiser stopped before the gradient vanished";
	return NULL;
}

