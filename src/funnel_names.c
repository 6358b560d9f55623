/*
 * funnel_names.c
 *      Step names of the step-name form (crm.window_funnel_by_name,
 *      crm.window_funnel_times_by_name, crm.funnel_report): the steps text[]
 *      parsed once per call site, the identity of the names a state carries,
 *      and crm._funnel_step_flags (docs/funnel.md).
 */
#include "funnel.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(funnel_step_flags);

/*
 * The step names of a text[] argument, parsed once per call site and kept in
 * *slot (in fn_mcxt), parsed again whenever the array's bytes change.
 * constant is set when the argument is aggregated argument const_argno (-1:
 * not an aggregate's) and a constant of the query: the caller then need not
 * call again.
 */
FunnelStepsCache *
FunnelStepsArg(FunctionCallInfo fcinfo, FunnelStepsCache **slot, ArrayType *arr, int const_argno,
			   const char *what)
{
	FunnelStepsCache *c = *slot;
	MemoryContext old;
	Datum	   *names;
	bool	   *nulls;
	int			i;

	if (c != NULL && c->arrsize == VARSIZE(arr) && memcmp(c->arrbytes, arr, c->arrsize) == 0)
		return c;
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("steps must be a one-dimensional array"),
				 errcontext("in crm.%s", what)));
	if (c != NULL)
	{
		pfree(c->arrbytes);
		pfree(c->lens);
		pfree(c->heads);
		pfree(c->names);
		pfree(c);
		*slot = NULL;
	}
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	c = palloc0(sizeof(FunnelStepsCache));
	c->arrsize = VARSIZE(arr);
	c->arrbytes = palloc(c->arrsize);
	memcpy(c->arrbytes, arr, c->arrsize);
	/* the names point into our copy, which lives as long as the cache */
	deconstruct_array((ArrayType *) c->arrbytes, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &c->n);
	c->lens = palloc(sizeof(int) * Max(c->n, 1));
	c->heads = palloc0(sizeof(uint64) * Max(c->n, 1));
	c->names = palloc0(sizeof(char *) * Max(c->n, 1));
	for (i = 0; i < c->n; i++)
	{
		text	   *t;

		c->lens[i] = -1;
		if (nulls[i])
			continue;
		t = (text *) DatumGetPointer(names[i]);
		if (VARATT_IS_EXTENDED(t))
			t = pg_detoast_datum_packed(t);
		c->lens[i] = VARSIZE_ANY_EXHDR(t);
		c->names[i] = VARDATA_ANY(t);
		c->heads[i] = FunnelHead(c->names[i], c->lens[i]);
	}
	/* identity of the names: length and bytes of each, NULL elements marked */
	c->id = hash_bytes_uint32_extended((uint32) c->n, UINT64CONST(0x46756e6e656c));
	for (i = 0; i < c->n; i++)
	{
		uint64		seed = c->id ^ ((uint64) (uint32) (c->lens[i] + 1) << 32);

		c->id = c->lens[i] < 0 ? hash_bytes_uint32_extended(0xffffffff, seed) :
			hash_bytes_extended((const unsigned char *) c->names[i], c->lens[i], seed);
	}
	if (c->id == 0)
		c->id = 1;
	c->constant = const_argno >= 0 && FunnelAggArgIsConst(fcinfo, const_argno);
	pfree(names);
	pfree(nulls);
	MemoryContextSwitchTo(old);
	FunnelCheckSteps(c->n, what);
	*slot = c;
	return c;
}

/* ------------------------------------------------------------------------
 * crm._funnel_step_flags(step text, steps text[]) -> boolean[]
 * used by crm.funnel_report: element k = (step = steps[k]); NULL step -> all false
 * ------------------------------------------------------------------------
 */
Datum
funnel_step_flags(PG_FUNCTION_ARGS)
{
	FunnelStepsCache *c;
	Datum		out[FUNNEL_MAX_STEPS];
	text	   *step = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	uint64		mask;
	int			i;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("funnel steps must not be null")));
	c = FunnelStepsArg(fcinfo, (FunnelStepsCache **) &fcinfo->flinfo->fn_extra, PG_GETARG_ARRAYTYPE_P(1), -1,
					   "funnel_report");
	mask = step == NULL ? 0 : FunnelNameMask(c, VARDATA_ANY(step), VARSIZE_ANY_EXHDR(step));
	for (i = 0; i < c->n; i++)
		out[i] = BoolGetDatum((mask & FUNNEL_BIT(i)) != 0);
	PG_RETURN_ARRAYTYPE_P(construct_array(out, c->n, BOOLOID, 1, true, TYPALIGN_CHAR));
}
