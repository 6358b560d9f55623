/*
 * funnel_state.c
 *      The crm.window_funnel_state type: allocation of the flat state, reading
 *      every layout a release wrote (FNL1 of 0.1.0, FNL2 of 0.2.0, FNL3), and
 *      the text form (docs/funnel.md, docs/scaling.md).
 */
#include "funnel.h"

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(funnel_window_state_in);
PG_FUNCTION_INFO_V1(funnel_window_state_out);

/*
 * A new state with header h and room for at least min_events events (a
 * power-of-two size unless exact), allocated in CurrentMemoryContext, holding
 * the first n events of src when src is not NULL.
 */
FunnelFlat *
FunnelFlatNew(const FunnelHeader *h, int64 min_events, bool exact, FunnelFlat *src, int64 n)
{
	int			w = FunnelMaskWidth(h->nsteps);
	Size		size;
	FunnelFlat *st;

	/*
	 * The final function expands the events to FunnelEvents in one palloc,
	 * so that bounds a state too (it is the tighter limit for every width).
	 */
	if (min_events > (int64) ((MaxAllocSize - FUNNEL_FLAT_HDRSZ) / (sizeof(int64) + w)) ||
		min_events > (int64) (MaxAllocSize / sizeof(FunnelEvent)))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("window_funnel state would exceed the maximum size of %zu bytes",
						(Size) MaxAllocSize),
				 errhint("Aggregate over smaller groups (for example GROUP BY the entity).")));
	size = FUNNEL_FLAT_HDRSZ + (Size) min_events * (sizeof(int64) + w);
	if (!exact)
	{
		Size		cap = FUNNEL_FLAT_MIN;

		while (cap < size)
			cap *= 2;
		size = Min(cap, MaxAllocSize);
	}
	st = (FunnelFlat *) palloc0(size);
	SET_VARSIZE(st, size);
	st->magic = CRM_MAGIC_FUNNEL;
	st->window = h->window;
	st->nsteps = (int16) h->nsteps;
	st->flags = (uint16) h->flags;
	st->nevents = 0;
	st->steps_id = h->steps_id;
	if (src != NULL && n > 0)
	{
		memcpy(FunnelTimes(st), FunnelTimes(src), sizeof(int64) * n);
		memcpy(FunnelMasks(st, w), FunnelMasks(src, w), (Size) w * n);
		st->nevents = (int32) n;
	}
	return st;
}

/*
 * The content of a window_funnel state of either layout (flat, possibly
 * toasted or short-headed): *h and the events as (ts, mask) pairs, in buf
 * when they fit in bufn, else palloc'd (the caller may sort them in place).
 * Returns false for the empty state ''.
 */
bool
FunnelRead(Datum d, FunnelHeader *h, FunnelEvent **events, int64 *nevents, FunnelEvent *buf, int bufn)
{
	struct varlena *v = pg_detoast_datum((struct varlena *) DatumGetPointer(d));
	uint32		magic;
	Size		size = VARSIZE(v);
	int64		n;
	int64		i;
	FunnelEvent *ev;

	*events = NULL;
	*nevents = 0;
	if (size < CRM_STATE_FLAT_HDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid window_funnel state: %zu bytes is too short", size)));
	memcpy(&magic, VARDATA(v), sizeof(uint32));
	if (magic != CRM_MAGIC_FUNNEL && magic != CRM_MAGIC_FUNNEL_V2 && magic != CRM_MAGIC_FUNNEL_V1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm_analytics state: wrong state type")));
	if (size == CRM_STATE_FLAT_HDRSZ)
		return false;
	if (((uintptr_t) v) % MAXIMUM_ALIGNOF != 0)
	{
		struct varlena *copy = palloc(size);

		memcpy(copy, v, size);
		v = copy;
	}
	if (magic == CRM_MAGIC_FUNNEL || magic == CRM_MAGIC_FUNNEL_V2)
	{
		/* the two flat layouts differ only in the header (V2: no steps_id) */
		Size		hdrsz = magic == CRM_MAGIC_FUNNEL ? sizeof(FunnelFlat) : sizeof(FunnelFlatV2);
		const FunnelFlatV2 *st = (const FunnelFlatV2 *) v;
		int			w;
		int64		cap;
		const int64 *ts;
		const char *masks;

		if (size < hdrsz || st->nsteps < 1 || st->nsteps > FUNNEL_MAX_STEPS)
			goto corrupt;
		w = FunnelMaskWidth(st->nsteps);
		cap = FunnelCapacityAt(size, w, hdrsz);
		if (st->nevents < 0 || st->nevents > cap)
			goto corrupt;
		h->nsteps = st->nsteps;
		h->flags = st->flags;
		h->window = st->window;
		h->steps_id = magic == CRM_MAGIC_FUNNEL ? ((const FunnelFlat *) v)->steps_id : 0;
		n = st->nevents;
		ts = (const int64 *) ((const char *) v + hdrsz);
		masks = (const char *) v + hdrsz + sizeof(int64) * cap;
		ev = n <= bufn ? buf : palloc(sizeof(FunnelEvent) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			FUNNEL_CFI(i);
			ev[i].ts = ts[i];
			ev[i].mask = FunnelMaskGet(masks, w, i);
		}
	}
	else
	{
		const char *p = (const char *) v + CRM_STATE_FLAT_HDRSZ;
		Size		len = size - CRM_STATE_FLAT_HDRSZ;
		FunnelHeaderV1 h1;

		if (len < sizeof(FunnelHeaderV1) || (len - sizeof(FunnelHeaderV1)) % sizeof(FunnelEvent) != 0)
			goto corrupt;
		memcpy(&h1, p, sizeof(FunnelHeaderV1));
		h->nsteps = h1.nsteps;
		h->flags = h1.flags;
		h->window = h1.window;
		h->steps_id = 0;
		if (h->nsteps < 1 || h->nsteps > FUNNEL_MAX_STEPS)
			goto corrupt;
		n = (len - sizeof(FunnelHeaderV1)) / sizeof(FunnelEvent);
		ev = n <= bufn ? buf : palloc(sizeof(FunnelEvent) * Max(n, 1));
		if (n > 0)
			memcpy(ev, p + sizeof(FunnelHeaderV1), sizeof(FunnelEvent) * n);
	}
	*events = ev;
	*nevents = n;
	return true;
corrupt:
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("invalid window_funnel state of %zu bytes", size)));
	return false;
}

/* ------------------------------------------------------------------------
 * crm.window_funnel_state text form (the same in 0.1.0, 0.2.0 and 0.3.0):
 *   steps=4;mode=5;window=86400000000;events=2;<ts>:<mask>,<ts>:<mask>
 * ts in microseconds since 2000-01-01 UTC, mask in decimal (bit j-1 = step j).
 * A state of the step-name form (0.3.0) has ";names=<id>" after the window:
 * the identity (a 64-bit hash) of its step names.  The empty state is ''.
 * ------------------------------------------------------------------------
 */

#define FUNNEL_STATE_TYPE "crm.window_funnel_state"

/* the header fields "steps=..;mode=..;window=..[;names=..]" */
static void
ReadStateHeader(CrmTextReader *r, FunnelHeader *h)
{
	CrmTextExpect(r, "steps=");
	h->nsteps = (int32) CrmTextReadInt64(r, "steps", 1, FUNNEL_MAX_STEPS);
	CrmTextExpect(r, ";mode=");
	h->flags = (uint32) CrmTextReadInt64(r, "mode", 0, FM_ALL);
	if ((h->flags & FM_REENTRY) && !(h->flags & FM_ORDER))
		CrmTextError(r, "Mode allow_reentry (16) requires strict_order (2)");
	CrmTextExpect(r, ";window=");
	h->window = CrmTextReadInt64(r, "window", 0, PG_INT64_MAX);
	h->steps_id = 0;
	if (CrmTextSkip(r, ";names="))
	{
		h->steps_id = CrmTextReadUInt64(r, "names");
		if (h->steps_id == 0)
			CrmTextError(r, "The names identity must not be 0");
	}
}

/* crm.window_funnel_state input function: validates every field */
Datum
funnel_window_state_in(PG_FUNCTION_ARGS)
{
	const char *str = PG_GETARG_CSTRING(0);
	CrmTextReader r;
	FunnelHeader h;
	int64		nev;
	int64		i;
	FunnelFlat *st;
	uint64		limit;

	if (*str == '\0')
		PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_FUNNEL, NULL, 0));
	CrmTextReaderInit(&r, str, FUNNEL_STATE_TYPE);
	ReadStateHeader(&r, &h);
	CrmTextExpect(&r, ";events=");
	nev = CrmTextReadInt64(&r, "event count", 0, (int64) ((MaxAllocSize - FUNNEL_FLAT_HDRSZ) / sizeof(FunnelEvent)));
	/* every event takes at least 4 characters: never allocate more than the text can fill */
	if ((Size) nev > strlen(r.p))
		CrmTextError(&r, "The text holds fewer than " INT64_FORMAT " events", nev);
	limit = h.nsteps == 64 ? PG_UINT64_MAX : ((UINT64CONST(1) << h.nsteps) - 1);

	st = FunnelFlatNew(&h, nev, true, NULL, 0);
	if (nev > 0)
		CrmTextExpect(&r, ";");
	for (i = 0; i < nev; i++)
	{
		int64		ts;
		uint64		mask;

		FUNNEL_CFI(i);
		if (i > 0)
			CrmTextExpect(&r, ",");
		ts = CrmTextReadInt64(&r, "event time", MIN_TIMESTAMP, END_TIMESTAMP - 1);
		CrmTextExpect(&r, ":");
		mask = CrmTextReadUInt64(&r, "step mask");
		if ((mask & ~limit) != 0 || (mask == 0 && !(h.flags & FM_ORDER)))
			CrmTextError(&r, "Step mask " UINT64_FORMAT " does not fit %d steps", mask, h.nsteps);
		st = FunnelFlatPush(st, ts, mask);
	}
	CrmTextExpectEnd(&r);
	PG_RETURN_POINTER(st);
}

/* crm.window_funnel_state output function */
Datum
funnel_window_state_out(PG_FUNCTION_ARGS)
{
	FunnelHeader h;
	FunnelEvent *ev;
	int64		n;
	int64		i;
	StringInfoData buf;

	initStringInfo(&buf);
	if (FunnelRead(PG_GETARG_DATUM(0), &h, &ev, &n, NULL, 0))
	{
		appendStringInfoString(&buf, "steps=");
		CrmTextWriteInt64(&buf, h.nsteps);
		appendStringInfoString(&buf, ";mode=");
		CrmTextWriteInt64(&buf, h.flags);
		appendStringInfoString(&buf, ";window=");
		CrmTextWriteInt64(&buf, h.window);
		if (h.steps_id != 0)
		{
			appendStringInfoString(&buf, ";names=");
			CrmTextWriteUInt64(&buf, h.steps_id);
		}
		appendStringInfoString(&buf, ";events=");
		CrmTextWriteInt64(&buf, n);
		for (i = 0; i < n; i++)
		{
			FUNNEL_CFI(i);
			appendStringInfoChar(&buf, i == 0 ? ';' : ',');
			CrmTextWriteInt64(&buf, ev[i].ts);
			appendStringInfoChar(&buf, ':');
			CrmTextWriteUInt64(&buf, ev[i].mask);
		}
	}
	PG_RETURN_CSTRING(buf.data);
}
