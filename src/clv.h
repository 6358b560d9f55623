/*
 * clv.h
 *      What the files of the lifetime value capability (docs/clv.md) share.
 *
 *      clv_summary.c      crm.clv_summary and its state crm.clv_summary_state
 *      clv_pattern.c      the pattern state behind crm.bgnbd_state and
 *                         crm.gamma_gamma_state (append, compact, combine,
 *                         text form)
 *      clv_numeric.c      special functions (digamma, 2F1) and the
 *                         optimisers (Nelder-Mead, BFGS); no PostgreSQL
 *                         types, reusable
 *      clv_fit.c          the fit driver: warm start, optimiser rounds,
 *                         convergence verdict, the model row
 *      clv_bgnbd.c        crm.bgnbd_fit (BG/NBD log-likelihood)
 *      clv_gamma_gamma.c  crm.gamma_gamma_fit (Gamma-Gamma log-likelihood)
 *      clv_predict.c      predictions from fitted models, crm.clv, crm.hyp2f1
 *      clv_simulate.c     crm.clv_simulate
 *
 * Naming (see crm_analytics.h): SQL-callable functions keep their released
 * symbol names (clv_*); functions shared by these files are Clv + CamelCase
 * and declared here; everything else is static.
 */
#ifndef CLV_H
#define CLV_H

#include "crm_analytics.h"

/* ------------------------------------------------------------------------
 * Text form helpers shared by the state types of this capability.
 * ------------------------------------------------------------------------
 */

/* the space(s) between two fields: the writers put one, the readers take any number */
extern void ClvTextSpace(CrmTextReader *r);
/* optional trailing spaces, then the end of the text */
extern void ClvTextEnd(CrmTextReader *r);

/*
 * A row the model cannot take.  With r NULL (an aggregate's row): a 22023
 * error with message fmt and the hint (may be NULL).  With a reader (a
 * stored pattern read back from text): the reader's 22P02 error, the
 * message as its detail.
 */
extern pg_attribute_noreturn() void ClvRowError(CrmTextReader *r, const char *hint,
												const char *fmt,...) pg_attribute_printf(3, 4);

/* ------------------------------------------------------------------------
 * Pattern states (clv_pattern.c): the model fits' aggregate states.
 *
 * Entries of width doubles each: the key (BG/NBD: x, t_x, T; Gamma-Gamma:
 * x, mbar) and a weight (customers) last.
 * ------------------------------------------------------------------------
 */
typedef void (*ClvPatternCheck) (const double *entry, CrmTextReader *r);

/* the writable state of argument argno, header initialised */
extern CrmState *ClvPatternArg(FunctionCallInfo fcinfo, int argno, MemoryContext aggcontext,
							   uint32 magic, int width);
/* append one entry (merging into the distinct patterns now and then) */
extern void ClvPatternAppend(CrmState *st, const double *entry);
/* the combine function of a pattern state */
extern Datum ClvPatternCombine(FunctionCallInfo fcinfo, const char *fname, uint32 magic, int width);
/* text form: the count, then each distinct entry's doubles */
extern char *ClvPatternOut(Datum d, uint32 magic, int width);
/* read the text form; check validates every entry (with the reader) */
extern Datum ClvPatternIn(const char *text, uint32 magic, int width, const char *typname,
						  ClvPatternCheck check);
/* the sorted distinct patterns of a state as a palloc'd array (NULL when none) */
extern double *ClvPatternsForFit(Datum d, uint32 magic, int width, int64 *n, double *weight);

/* ------------------------------------------------------------------------
 * Numerics (clv_numeric.c).
 * ------------------------------------------------------------------------
 */
/* digamma psi(x), x > 0 */
extern double ClvDigamma(double x);
/* Gaussian hypergeometric 2F1(a,b;c;z), real z < 1; NaN when it cannot be computed */
extern double ClvHyp2F1(double a, double b, double c, double z);

/* an objective: value at theta, and the gradient into grad when grad is not NULL */
typedef double (*ClvObjectiveFn) (const double *theta, double *grad, void *ctx);

/* objective evaluations since the counter was last reset (for a DEBUG line) */
extern int	ClvFitEvals;

/* Nelder-Mead over n <= 4 dimensions, theta updated in place; returns iterations */
extern int	ClvNelderMead(ClvObjectiveFn f, void *ctx, double *theta, int n, double step,
						  int maxiter, double ftol);
/* BFGS over n <= 4 dimensions; returns the final gradient's infinity norm (NaN: not finite) */
extern double ClvBfgs(ClvObjectiveFn f, void *ctx, double *theta, int n, int maxiter, double gtol);

/* ------------------------------------------------------------------------
 * Fitting (clv_fit.c).
 * ------------------------------------------------------------------------
 */
typedef struct ClvFitData
{
	const double *e;			/* distinct patterns sorted by x first */
	int64		n;
	double		weight;			/* customers */
	/* BG/NBD: the distinct time values (t_x and T pooled) and per pattern
	 * the indexes of its t_x and T, so log(alpha + v) is computed once per
	 * distinct value; Gamma-Gamma: log(mbar) per pattern */
	double	   *vals;
	int64		nvals;
	int32	   *idx;
	double	   *lv;				/* scratch: log(alpha + vals[k]) */
	double	   *iv;				/* scratch: 1 / (alpha + vals[k]) */
} ClvFitData;

/* fills the model's precomputed arrays of fd */
typedef void (*ClvFitPrepare) (ClvFitData *fd, int width);

/* minimise f from theta (updated): Nelder-Mead then BFGS rounds; returns the gradient norm */
extern double ClvFitModel(ClvObjectiveFn f, ClvFitData *fd, int width, ClvFitPrepare prepare,
						  double *theta, int n);
/* NULL when a fitted theta is fine, else why not */
extern const char *ClvFitProblem(const double *theta, int n, double gnorm, double nll);
/* the model row of the function's result type: params, log_likelihood, customers, converged, reason */
extern Datum ClvModelResult(FunctionCallInfo fcinfo, const double *params, int nparams, double ll,
							double customers, bool converged, const char *reason);

#endif							/* CLV_H */
