/*
 * demo.c
 *      The deterministic random numbers behind crm.load_demo: a counter-based
 *      generator (SplitMix64 finaliser over seed, stream and key), so every
 *      row's values depend only on (seed, stream, key), whatever the plan,
 *      the row order or the number of parallel workers.
 */
#include "crm_analytics.h"

PG_FUNCTION_INFO_V1(crm_demo_random);

/* SplitMix64 finaliser: a bijective 64-bit mix */
static inline uint64
Mix64(uint64 z)
{
	z = (z ^ (z >> 30)) * UINT64CONST(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/*
 * crm._demo_random(seed int, stream int, key bigint) -> float8 in [0, 1)
 */
Datum
crm_demo_random(PG_FUNCTION_ARGS)
{
	uint64		seed = (uint64) (uint32) PG_GETARG_INT32(0);
	uint64		stream = (uint64) (uint32) PG_GETARG_INT32(1);
	uint64		key = (uint64) PG_GETARG_INT64(2);
	uint64		h;

	h = Mix64(seed * UINT64CONST(0x9e3779b97f4a7c15) + stream);
	h = Mix64(h ^ (key + UINT64CONST(0x632be59bd9b4e019)));
	/* 53 random bits -> [0, 1) */
	PG_RETURN_FLOAT8((double) (h >> 11) * (1.0 / 9007199254740992.0));
}
