/*
 * funnel_counts.c
 *      crm.funnel_counts(level int, steps int) -> bigint[] and its state type
 *      crm.funnel_counts_state (docs/funnel.md).
 */
#include "funnel.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(funnel_counts_transfn);
PG_FUNCTION_INFO_V1(funnel_counts_combinefn);
PG_FUNCTION_INFO_V1(funnel_counts_finalfn);
PG_FUNCTION_INFO_V1(funnel_counts_state_in);
PG_FUNCTION_INFO_V1(funnel_counts_state_out);

/* payload of a funnel_counts state: header, then int64 hist[nsteps + 1] */
typedef struct FunnelCountsHeader
{
	int32		nsteps;
	int32		pad;
} FunnelCountsHeader;

/* ------------------------------------------------------------------------
 * crm.funnel_counts(level int, steps int) -> bigint[]
 * ------------------------------------------------------------------------
 */

/* validated view of a funnel_counts state: header and hist[nsteps + 1] */
static const FunnelCountsHeader *
FunnelCountsPayload(Datum d, const int64 **hist)
{
	Size		len;
	const char *p = CrmStatePayload(d, CRM_MAGIC_FUNNEL_COUNTS, &len);
	const FunnelCountsHeader *h = (const FunnelCountsHeader *) p;

	if (len == 0)
		return NULL;
	if (len < sizeof(FunnelCountsHeader) || h->nsteps < 1 || h->nsteps > FUNNEL_MAX_STEPS ||
		len != sizeof(FunnelCountsHeader) + sizeof(int64) * (h->nsteps + 1))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid funnel_counts state: %zu payload bytes", len)));
	*hist = (const int64 *) (p + sizeof(FunnelCountsHeader));
	return h;
}

/* new funnel_counts state payload for nsteps */
static void
FunnelCountsInit(CrmState *st, int nsteps)
{
	Size		sz = sizeof(FunnelCountsHeader) + sizeof(int64) * (nsteps + 1);
	char	   *p = CrmStateReserve(st, sz);

	memset(p, 0, sz);
	((FunnelCountsHeader *) p)->nsteps = nsteps;
	st->len = sz;
}

/* transition: count the row's level; NULL levels are skipped */
Datum
funnel_counts_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "funnel_counts");
	CrmState   *st;
	int32		nsteps;
	int32		level;
	int64	   *hist;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("steps must not be null"),
				 errcontext("in crm.funnel_counts"),
				 errhint("Pass the number of funnel steps, the same as given to window_funnel.")));
	nsteps = PG_GETARG_INT32(2);
	FunnelCheckSteps(nsteps, "funnel_counts");
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_FUNNEL_COUNTS,
						  sizeof(FunnelCountsHeader) + sizeof(int64) * (FUNNEL_MAX_STEPS + 1));
	if (st->len == 0)
		FunnelCountsInit(st, nsteps);
	else if (((FunnelCountsHeader *) st->data)->nsteps != nsteps)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("got %d steps on one row and %d on another",
						((FunnelCountsHeader *) st->data)->nsteps, nsteps),
				 errcontext("in crm.funnel_counts")));
	if (PG_ARGISNULL(1))
		return CrmStateGetDatum(st);
	level = PG_GETARG_INT32(1);
	if (level < 0 || level > nsteps)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("level %d is outside 0..%d", level, nsteps),
				 errcontext("in crm.funnel_counts"),
				 errhint("Pass the level returned by window_funnel with the same number of steps.")));
	hist = (int64 *) (st->data + sizeof(FunnelCountsHeader));
	if (unlikely(hist[level] == PG_INT64_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("count out of range"),
				 errcontext("in crm.funnel_counts")));
	hist[level]++;
	return CrmStateGetDatum(st);
}

/* combine: add the right histogram to the left one */
Datum
funnel_counts_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "funnel_counts combine");
	CrmState   *st;
	const FunnelCountsHeader *rh;
	const int64 *rhist = NULL;
	int64	   *lhist;
	int			i;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		return CrmStateGetDatum(CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_FUNNEL_COUNTS, 0));
	}
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_FUNNEL_COUNTS, 0);
	rh = FunnelCountsPayload(PG_GETARG_DATUM(1), &rhist);
	if (rh == NULL)
		return CrmStateGetDatum(st);
	if (st->len == 0)
		FunnelCountsInit(st, rh->nsteps);
	else if (((FunnelCountsHeader *) st->data)->nsteps != rh->nsteps)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot combine funnel_counts states of %d and %d steps",
						((FunnelCountsHeader *) st->data)->nsteps, rh->nsteps)));
	lhist = (int64 *) (st->data + sizeof(FunnelCountsHeader));
	for (i = 0; i <= rh->nsteps; i++)
		if (pg_add_s64_overflow(lhist[i], rhist[i], &lhist[i]))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("count out of range"),
					 errcontext("in crm.funnel_counts")));
	return CrmStateGetDatum(st);
}

/* final: element k = rows with level >= k; NULL when no row was seen */
Datum
funnel_counts_finalfn(PG_FUNCTION_ARGS)
{
	const FunnelCountsHeader *h;
	const int64 *hist = NULL;
	Datum		elems[FUNNEL_MAX_STEPS];
	int64		acc = 0;
	int			k;

	CrmAggContext(fcinfo, "funnel_counts");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	h = FunnelCountsPayload(PG_GETARG_DATUM(0), &hist);
	if (h == NULL)
		PG_RETURN_NULL();
	for (k = h->nsteps; k >= 1; k--)
	{
		/* a state from text input may hold counts that no real input reaches */
		if (pg_add_s64_overflow(acc, hist[k], &acc))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("count out of range"),
					 errcontext("in crm.funnel_counts")));
		elems[k - 1] = Int64GetDatum(acc);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, h->nsteps, INT8OID, sizeof(int64),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* crm.funnel_counts_state input: "steps=4;hist=h0,h1,...,h4" (the same in every release) */
Datum
funnel_counts_state_in(PG_FUNCTION_ARGS)
{
	const char *str = PG_GETARG_CSTRING(0);
	CrmTextReader r;
	FunnelCountsHeader h;
	int64		hist[FUNNEL_MAX_STEPS + 1];
	int			i;
	StringInfoData buf;

	if (*str == '\0')
		PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_FUNNEL_COUNTS, NULL, 0));
	CrmTextReaderInit(&r, str, "crm.funnel_counts_state");
	memset(&h, 0, sizeof(h));
	CrmTextExpect(&r, "steps=");
	h.nsteps = (int32) CrmTextReadInt64(&r, "steps", 1, FUNNEL_MAX_STEPS);
	CrmTextExpect(&r, ";hist=");
	for (i = 0; i <= h.nsteps; i++)
	{
		if (i > 0)
			CrmTextExpect(&r, ",");
		hist[i] = CrmTextReadInt64(&r, "count", 0, PG_INT64_MAX);
	}
	CrmTextExpectEnd(&r);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, (const char *) &h, sizeof(h));
	appendBinaryStringInfo(&buf, (const char *) hist, sizeof(int64) * (h.nsteps + 1));
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_FUNNEL_COUNTS, buf.data, buf.len));
}

/* crm.funnel_counts_state output */
Datum
funnel_counts_state_out(PG_FUNCTION_ARGS)
{
	const FunnelCountsHeader *h;
	const int64 *hist = NULL;
	StringInfoData buf;
	int			i;

	h = FunnelCountsPayload(PG_GETARG_DATUM(0), &hist);
	initStringInfo(&buf);
	if (h != NULL)
	{
		appendStringInfoString(&buf, "steps=");
		CrmTextWriteInt64(&buf, h->nsteps);
		appendStringInfoString(&buf, ";hist=");
		for (i = 0; i <= h->nsteps; i++)
		{
			if (i > 0)
				appendStringInfoChar(&buf, ',');
			CrmTextWriteInt64(&buf, hist[i]);
		}
	}
	PG_RETURN_CSTRING(buf.data);
}
