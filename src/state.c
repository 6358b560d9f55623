/*
 * state.c
 *      The in-place aggregate state shared by every crm_analytics aggregate:
 *      a growable byte payload kept as a read/write expanded object in the
 *      aggregate memory context and flattened to a varlena on demand.
 */
#include "crm_analytics.h"

#include "miscadmin.h"
#include "utils/memutils.h"

static Size CrmStateGetFlatSize(ExpandedObjectHeader *eohptr);
static void CrmStateFlattenInto(ExpandedObjectHeader *eohptr, void *result, Size allocated_size);

static const ExpandedObjectMethods StateMethods = {
	CrmStateGetFlatSize,
	CrmStateFlattenInto
};

/* flat size of an expanded state: header, magic, payload */
static Size
CrmStateGetFlatSize(ExpandedObjectHeader *eohptr)
{
	CrmState   *st = (CrmState *) eohptr;

	return CRM_STATE_FLAT_HDRSZ + st->len;
}

/* write the flat form of an expanded state into result */
static void
CrmStateFlattenInto(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	CrmState   *st = (CrmState *) eohptr;
	char	   *out = (char *) result;

	Assert(allocated_size == CRM_STATE_FLAT_HDRSZ + st->len);
	SET_VARSIZE(out, allocated_size);
	memcpy(out + VARHDRSZ, &st->magic, sizeof(uint32));
	if (st->len > 0)
		memcpy(out + CRM_STATE_FLAT_HDRSZ, st->data, st->len);
}

#define CRM_STATES_CONTEXT_NAME "crm_analytics states"

/*
 * The child context of parent that holds the states: one per aggregate
 * context, shared by all its states.  One context per state would make
 * HashAggregate quadratic: it sums the memory of every child context of the
 * aggregate context each time it creates a group.  nodeAgg still sees each
 * state as owned by a child of the aggregate context and keeps it in place.
 */
static MemoryContext
CrmStatesContext(MemoryContext parent)
{
	MemoryContext c;

	for (c = parent->firstchild; c != NULL; c = c->nextchild)
		if (strcmp(c->name, CRM_STATES_CONTEXT_NAME) == 0)
			return c;
	return AllocSetContextCreate(parent, CRM_STATES_CONTEXT_NAME, ALLOCSET_DEFAULT_SIZES);
}

/* new empty state in the shared states context under parent */
CrmState *
CrmStateNew(MemoryContext parent, uint32 magic, Size initial_cap)
{
	MemoryContext objcxt;
	CrmState   *st;

	objcxt = CrmStatesContext(parent);
	st = (CrmState *) MemoryContextAlloc(objcxt, sizeof(CrmState));
	EOH_init_header(&st->hdr, &StateMethods, objcxt);
	st->magic = magic;
	st->len = 0;
	st->cap = Max(initial_cap, 64);
	st->data = MemoryContextAlloc(objcxt, st->cap);
	return st;
}

/* make room for extra more payload bytes */
char *
CrmStateReserve(CrmState *st, Size extra)
{
	if (st->len + extra > st->cap)
	{
		Size		newcap = st->cap;

		while (newcap < st->len + extra)
			newcap *= 2;
		if (!AllocSizeIsValid(newcap + CRM_STATE_FLAT_HDRSZ))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("aggregate state would exceed the maximum size of %zu bytes",
							(Size) MaxAllocSize - CRM_STATE_FLAT_HDRSZ),
					 errhint("Aggregate over smaller groups (for example GROUP BY the entity).")));
		st->data = repalloc(st->data, newcap);
		st->cap = newcap;
	}
	return st->data + st->len;
}

/* read-only payload of a state datum, expanded or flat */
const char *
CrmStatePayload(Datum d, uint32 magic, Size *len)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(d);
	uint32		m;
	char	   *p;

	if (VARATT_IS_EXTERNAL_EXPANDED(v))
	{
		CrmState   *st = (CrmState *) DatumGetEOHP(d);

		if (st->hdr.eoh_methods != &StateMethods || st->magic != magic)
			elog(ERROR, "expanded object is not the expected state type");
		*len = st->len;
		return st->data;
	}

	v = pg_detoast_datum(v);
	if (VARSIZE(v) < CRM_STATE_FLAT_HDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid aggregate state: %u bytes is too short", (unsigned) VARSIZE(v))));
	memcpy(&m, VARDATA(v), sizeof(uint32));
	if (m != magic)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid aggregate state: it belongs to another state type")));
	*len = VARSIZE(v) - CRM_STATE_FLAT_HDRSZ;
	p = (char *) v + CRM_STATE_FLAT_HDRSZ;
	if (((uintptr_t) p) % MAXIMUM_ALIGNOF != 0 && *len > 0)
	{
		char	   *copy = palloc(*len);

		memcpy(copy, p, *len);
		p = copy;
	}
	return p;
}

/* writable state from argument argno, in place when it already is ours */
CrmState *
CrmStateArgRW(FunctionCallInfo fcinfo, int argno, MemoryContext aggcontext,
				 uint32 magic, Size initial_cap)
{
	Datum		d;
	CrmState   *st;
	const char *payload;
	Size		len;

	if (PG_ARGISNULL(argno))
		return CrmStateNew(aggcontext, magic, initial_cap);

	d = PG_GETARG_DATUM(argno);
	if (VARATT_IS_EXTERNAL_EXPANDED_RW(DatumGetPointer(d)))
	{
		st = (CrmState *) DatumGetEOHP(d);
		if (st->hdr.eoh_methods == &StateMethods && st->magic == magic &&
			MemoryContextGetParent(st->hdr.eoh_context) == aggcontext)
			return st;
	}

	payload = CrmStatePayload(d, magic, &len);
	st = CrmStateNew(aggcontext, magic, Max(initial_cap, len));
	memcpy(CrmStateReserve(st, len), payload, len);
	st->len = len;
	return st;
}

/* flat varlena holding a copy of payload */
struct varlena *
CrmStateFlatFromPayload(uint32 magic, const char *payload, Size len)
{
	struct varlena *v;

	if (!AllocSizeIsValid(CRM_STATE_FLAT_HDRSZ + len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("aggregate state of %zu bytes is too large", len)));
	v = (struct varlena *) palloc(CRM_STATE_FLAT_HDRSZ + len);
	SET_VARSIZE(v, CRM_STATE_FLAT_HDRSZ + len);
	memcpy(VARDATA(v), &magic, sizeof(uint32));
	if (len > 0)
		memcpy((char *) v + CRM_STATE_FLAT_HDRSZ, payload, len);
	return v;
}

/* the aggregate context, or an error when called outside an aggregate */
MemoryContext
CrmAggContext(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext aggcontext;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", fname)));
	return aggcontext;
}

/* ascending int64 sort that checks for interrupts (one group may bring millions) */
static inline int
CompareInt64(int64 a, int64 b)
{
	return (a > b) - (a < b);
}

#define ST_SORT SortInt64
#define ST_ELEMENT_TYPE int64
#define ST_COMPARE(a, b) CompareInt64(*(a), *(b))
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

void
CrmSortInt64(int64 *values, size_t n)
{
	SortInt64(values, n);
}
