/*
 * clv_simulate.c
 *      crm.clv_simulate (docs/clv.md): customers drawn from known BG/NBD
 *      and Gamma-Gamma parameters, for tests and benchmarks.
 */
#include "clv.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"

PG_FUNCTION_INFO_V1(clv_simulate);

typedef struct SimRng
{
	uint64		s;
} SimRng;

/* SplitMix64 step -> uniform in (0, 1) */
static double
SimUniform(SimRng *g)
{
	uint64		z = (g->s += UINT64CONST(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64CONST(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94d049bb133111eb);
	z ^= z >> 31;
	return ((double) (z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double
SimNormal(SimRng *g)
{
	return sqrt(-2.0 * log(SimUniform(g))) * cos(2.0 * M_PI * SimUniform(g));
}

/* Gamma(shape, 1) by Marsaglia and Tsang, boosted for shape < 1 */
static double
SimGamma(SimRng *g, double shape)
{
	double		d, c;

	if (shape < 1.0)
		return SimGamma(g, shape + 1.0) * pow(SimUniform(g), 1.0 / shape);
	d = shape - 1.0 / 3.0;
	c = 1.0 / sqrt(9.0 * d);
	for (;;)
	{
		double		x = SimNormal(g);
		double		v = 1.0 + c * x;
		double		u;

		if (v <= 0)
			continue;
		v = v * v * v;
		u = SimUniform(g);
		if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
			return d * v;
	}
}

/*
 * crm.clv_simulate(r, alpha, a, b, p, q, gamma, customers, max_t, seed)
 *   -> TABLE(customer_id bigint, t_purchase float8, t_end float8, amount float8)
 * Each customer is acquired by a purchase at time 0 and observed until
 * t_end ~ Uniform(0, max_t); purchases follow the BG/NBD story (Poisson
 * rate lambda ~ Gamma(r, alpha) while alive, dropout with probability
 * p ~ Beta(a, b) after each purchase) and each purchase is worth
 * Gamma(p, nu) with nu ~ Gamma(q, gamma) (Gamma-Gamma).
 */
#define CLV_SIM_MAX_CUSTOMERS	100000000
#define CLV_SIM_MAX_PURCHASES	100000

Datum
clv_simulate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	double		r = PG_GETARG_FLOAT8(0), alpha = PG_GETARG_FLOAT8(1);
	double		a = PG_GETARG_FLOAT8(2), b = PG_GETARG_FLOAT8(3);
	double		p = PG_GETARG_FLOAT8(4), q = PG_GETARG_FLOAT8(5), gam = PG_GETARG_FLOAT8(6);
	int64		customers = PG_GETARG_INT64(7);
	double		max_t = PG_GETARG_FLOAT8(8);
	SimRng		g;
	int64		c;
	double		params[8] = {r, alpha, a, b, p, q, gam, max_t};
	int			i;

	for (i = 0; i < 8; i++)
		if (!isfinite(params[i]) || params[i] <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("parameters and max_t must be positive finite numbers")));
	if (customers < 0 || customers > CLV_SIM_MAX_CUSTOMERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("customers must be between 0 and %d", CLV_SIM_MAX_CUSTOMERS)));
	g.s = (uint64) PG_GETARG_INT64(9) * UINT64CONST(0x2545f4914f6cdd1d) + 1;
	InitMaterializedSRF(fcinfo, 0);
	for (c = 1; c <= customers; c++)
	{
		double		lambda = SimGamma(&g, r) / alpha;
		double		ga = SimGamma(&g, a);
		double		drop = ga / (ga + SimGamma(&g, b));
		double		nu = SimGamma(&g, q) / gam;
		double		tend = max_t * SimUniform(&g);
		double		t = 0;
		int64		n = 0;

		CHECK_FOR_INTERRUPTS();
		for (;;)
		{
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};

			if ((n & 4095) == 4095)
				CHECK_FOR_INTERRUPTS();
			values[0] = Int64GetDatum(c);
			values[1] = Float8GetDatum(t);
			values[2] = Float8GetDatum(tend);
			values[3] = Float8GetDatum(SimGamma(&g, p) / nu);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			if (++n > CLV_SIM_MAX_PURCHASES)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("a simulated customer made more than %d purchases", CLV_SIM_MAX_PURCHASES),
						 errhint("The purchase rate r/alpha is too large for max_t; use a larger alpha or a smaller max_t.")));
			/* dropout is possible after each repeat purchase, not the first */
			if (t > 0 && SimUniform(&g) < drop)
				break;
			t += -log(SimUniform(&g)) / lambda;
			if (t > tend)
				break;
		}
	}
	return (Datum) 0;
}
