/*
 * retention_agg.c
 *      crm.retention, the ClickHouse-style retention aggregate
 *      (docs/retention.md): a bitset of the conditions seen, per group.
 *
 *      crm.retention(VARIADIC boolean[])   state crm.retention_state, a
 *                                          flat CrmState of 1 to 64 bits
 *      crm.retention(boolean, ...)         1 to 12 conditions as arguments
 *                                          and a by-value state,
 *                                          crm.retention_fixed_state (what
 *                                          a call with the conditions
 *                                          written out runs)
 *
 *      Both state types have the same text form, one character per
 *      condition ("101"), read with the shared state text reader.
 */
#include "retention.h"

#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(crm_retention_transfn);
PG_FUNCTION_INFO_V1(crm_retention_combinefn);
PG_FUNCTION_INFO_V1(crm_retention_finalfn);
PG_FUNCTION_INFO_V1(crm_retention_state_in);
PG_FUNCTION_INFO_V1(crm_retention_state_out);
PG_FUNCTION_INFO_V1(crm_retention_fixed_transfn);
PG_FUNCTION_INFO_V1(crm_retention_fixed_combinefn);
PG_FUNCTION_INFO_V1(crm_retention_fixed_finalfn);
PG_FUNCTION_INFO_V1(crm_retention_fixed_state_in);
PG_FUNCTION_INFO_V1(crm_retention_fixed_state_out);

#define RETENTION_MAX_CONDS 64

/* ========================================================================
 * crm.retention(VARIADIC boolean[])
 * ========================================================================
 */

/* payload of crm.retention_state */
typedef struct RetentionPayload
{
	int32		nconds;			/* 0 = no condition array seen yet */
	int32		reserved;
	uint64		seen;			/* bit k-1: condition k held on some row */
} RetentionPayload;

/* writable retention payload of a state, initialised when new */
static RetentionPayload *
RetentionPayloadRW(CrmState *st)
{
	if (st->len == 0)
	{
		memset(CrmStateReserve(st, sizeof(RetentionPayload)), 0, sizeof(RetentionPayload));
		st->len = sizeof(RetentionPayload);
	}
	return (RetentionPayload *) st->data;
}

/* validated read-only retention payload of a datum */
static RetentionPayload
RetentionPayloadRO(Datum d)
{
	Size		len;
	const char *p = CrmStatePayload(d, CRM_MAGIC_RETENTION, &len);
	RetentionPayload r;

	if (len != sizeof(RetentionPayload))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.retention_state: payload of %zu bytes", len)));
	memcpy(&r, p, sizeof(r));
	if (r.nconds < 0 || r.nconds > RETENTION_MAX_CONDS ||
		(r.nconds < 64 && (r.seen >> r.nconds) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.retention_state: %d conditions", r.nconds)));
	return r;
}

/* rows of one group with a and b conditions */
static pg_attribute_noreturn() void
CountMismatch(int a, int b)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("got %d conditions on one row and %d on another", a, b),
			 errhint("Pass the same number of conditions on every row."),
			 errcontext("in crm.retention")));
	pg_unreachable();
}

/* one row: OR the conditions that hold into the bitset */
Datum
crm_retention_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = CrmAggContext(fcinfo, "crm.retention");
	CrmState   *st = CrmStateArgRW(fcinfo, 0, aggcxt, CRM_MAGIC_RETENTION, sizeof(RetentionPayload));
	RetentionPayload *p = RetentionPayloadRW(st);

	if (!PG_ARGISNULL(1))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
		int			ndim = ARR_NDIM(arr);
		int			n;
		bits8	   *nullmap;
		const bool *vals;
		uint64		bits = 0;
		int			i;
		int			j = 0;

		if (ARR_ELEMTYPE(arr) != BOOLOID)
			elog(ERROR, "condition array of element type %u, expected boolean", ARR_ELEMTYPE(arr));
		if (ndim > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("conditions must be a one-dimensional array"),
					 errcontext("in crm.retention")));
		n = (ndim == 0) ? 0 : ARR_DIMS(arr)[0];
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("at least one condition is required"),
					 errhint("Call it as crm.retention(cond1, cond2, ...)."),
					 errcontext("in crm.retention")));
		if (n > RETENTION_MAX_CONDS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("at most %d conditions are allowed, got %d",
							RETENTION_MAX_CONDS, n),
					 errcontext("in crm.retention")));
		if (p->nconds == 0)
			p->nconds = n;
		else if (p->nconds != n)
			CountMismatch(p->nconds, n);

		nullmap = ARR_NULLBITMAP(arr);
		vals = (const bool *) ARR_DATA_PTR(arr);
		for (i = 0; i < n; i++)
		{
			if (nullmap && !(nullmap[i / 8] & (1 << (i % 8))))
				continue;		/* NULL condition: false */
			if (vals[j++])
				bits |= UINT64CONST(1) << i;
		}
		p->seen |= bits;
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* merge two partial bitsets */
Datum
crm_retention_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = CrmAggContext(fcinfo, "crm.retention");
	CrmState   *st;
	RetentionPayload *p;
	RetentionPayload r;

	if (PG_ARGISNULL(0) && PG_ARGISNULL(1))
		PG_RETURN_NULL();
	st = CrmStateArgRW(fcinfo, 0, aggcxt, CRM_MAGIC_RETENTION, sizeof(RetentionPayload));
	p = RetentionPayloadRW(st);
	if (!PG_ARGISNULL(1))
	{
		r = RetentionPayloadRO(PG_GETARG_DATUM(1));
		if (p->nconds == 0)
			p->nconds = r.nconds;
		else if (r.nconds != 0 && r.nconds != p->nconds)
			CountMismatch(p->nconds, r.nconds);
		p->seen |= r.seen;
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* the int[] result of a bitset of nconds conditions: r[1] = cond1, r[k] = cond1 and condk */
static ArrayType *
RetentionResult(int nconds, uint64 seen)
{
	Datum		elems[RETENTION_MAX_CONDS];
	bool		first = (seen & 1) != 0;
	int			k;

	for (k = 0; k < nconds; k++)
		elems[k] = Int32GetDatum(first && ((seen >> k) & 1) ? 1 : 0);
	return construct_array(elems, nconds, INT4OID, sizeof(int32), true, TYPALIGN_INT);
}

/* r[1] = cond1 seen; r[k] = cond1 and condk seen */
Datum
crm_retention_finalfn(PG_FUNCTION_ARGS)
{
	RetentionPayload p;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	p = RetentionPayloadRO(PG_GETARG_DATUM(0));
	if (p.nconds == 0)
		PG_RETURN_NULL();
	PG_RETURN_ARRAYTYPE_P(RetentionResult(p.nconds, p.seen));
}

/*
 * The text form of both state types: one character per condition, '1' =
 * seen, "101"; '' is a crm.retention_state of no rows.
 */
static char *
SeenToCString(int nconds, uint64 seen)
{
	StringInfoData buf;
	int			k;

	initStringInfo(&buf);
	for (k = 0; k < nconds; k++)
		appendStringInfoChar(&buf, ((seen >> k) & 1) ? '1' : '0');
	return buf.data;
}

/* read the text form: min to max characters 0 or 1 */
static uint64
SeenFromCString(const char *s, const char *typname, int min, int max, int *nconds)
{
	CrmTextReader r;
	uint64		seen = 0;
	int			n = 0;

	CrmTextReaderInit(&r, s, typname);
	while (!CrmTextAtEnd(&r))
	{
		if (n >= max)
			CrmTextError(&r, "At most %d conditions are allowed", max);
		if (CrmTextSkip(&r, "1"))
			seen |= UINT64CONST(1) << n;
		else if (!CrmTextSkip(&r, "0"))
			CrmTextError(&r, "Expected 0 or 1 for condition %d", n + 1);
		n++;
	}
	if (n < min)
		CrmTextError(&r, "Expected at least %d condition", min);
	*nconds = n;
	return seen;
}

Datum
crm_retention_state_out(PG_FUNCTION_ARGS)
{
	RetentionPayload p = RetentionPayloadRO(PG_GETARG_DATUM(0));

	PG_RETURN_CSTRING(SeenToCString(p.nconds, p.seen));
}

Datum
crm_retention_state_in(PG_FUNCTION_ARGS)
{
	RetentionPayload p;
	int			n;

	memset(&p, 0, sizeof(p));
	p.seen = SeenFromCString(PG_GETARG_CSTRING(0), "crm.retention_state", 0, RETENTION_MAX_CONDS, &n);
	p.nconds = n;
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_RETENTION, (const char *) &p, sizeof(p)));
}

/* ========================================================================
 * crm.retention(boolean, ...): the fixed-arity overloads
 *
 * crm.retention(c1), crm.retention(c1, c2), ... up to RETENTION_FIXED_MAX
 * conditions give the same result as the VARIADIC form, which PostgreSQL
 * still picks for more conditions or an explicit VARIADIC array.  A call
 * with the conditions written out resolves to these (a non-variadic function
 * wins over a variadic one with the same effective arguments), so the
 * executor passes the conditions as plain arguments instead of building an
 * array per row, and the state, crm.retention_fixed_state, is 4 bytes passed
 * by value: it lives in the group's hash entry, with no pointer to follow.
 *
 * State bits 0..RETENTION_FIXED_MAX-1: condition k+1 held on some row; bits
 * 24..30: the number of conditions (1..RETENTION_FIXED_MAX, never 0: a
 * group without rows has a NULL state).
 * ========================================================================
 */
#define RETENTION_FIXED_MAX		12
#define RETENTION_FIXED_SHIFT	24

static inline int32
RetentionFixedMake(int nconds, uint32 seen)
{
	return (int32) (((uint32) nconds << RETENTION_FIXED_SHIFT) | seen);
}

/* number of conditions of a state, validated (a state may be typed in) */
static int
RetentionFixedConds(int32 s)
{
	uint32		u = (uint32) s;
	int			n = (int) (u >> RETENTION_FIXED_SHIFT);

	if (n < 1 || n > RETENTION_FIXED_MAX || (u & ((1u << RETENTION_FIXED_SHIFT) - 1)) >> n != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.retention_fixed_state: %d", s)));
	return n;
}

static inline uint32
RetentionFixedSeen(int32 s)
{
	return (uint32) s & ((1u << RETENTION_FIXED_SHIFT) - 1);
}

/* one row: OR the conditions (arguments 1..n) that hold into the state */
Datum
crm_retention_fixed_transfn(PG_FUNCTION_ARGS)
{
	int			nconds = PG_NARGS() - 1;
	uint32		seen = 0;
	int			i;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crm.retention called in non-aggregate context")));
	if (nconds < 1 || nconds > RETENTION_FIXED_MAX)
		elog(ERROR, "unexpected number of conditions: %d", nconds);
	if (!PG_ARGISNULL(0))
	{
		int32		s = PG_GETARG_INT32(0);

		if (RetentionFixedConds(s) != nconds)
			CountMismatch(RetentionFixedConds(s), nconds);
		seen = RetentionFixedSeen(s);
	}
	for (i = 1; i <= nconds; i++)
		if (!PG_ARGISNULL(i) && PG_GETARG_BOOL(i))	/* NULL condition: false */
			seen |= 1u << (i - 1);
	PG_RETURN_INT32(RetentionFixedMake(nconds, seen));
}

/* merge two partial states (by value: nothing to copy) */
Datum
crm_retention_fixed_combinefn(PG_FUNCTION_ARGS)
{
	int32		a,
				b;

	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("crm.retention called in non-aggregate context")));
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		a = PG_GETARG_INT32(0);
		(void) RetentionFixedConds(a);
		PG_RETURN_INT32(a);
	}
	b = PG_GETARG_INT32(1);
	if (PG_ARGISNULL(0))
	{
		(void) RetentionFixedConds(b);
		PG_RETURN_INT32(b);
	}
	a = PG_GETARG_INT32(0);
	if (RetentionFixedConds(a) != RetentionFixedConds(b))
		CountMismatch(RetentionFixedConds(a), RetentionFixedConds(b));
	PG_RETURN_INT32(a | b);
}

/* r[1] = cond1 seen; r[k] = cond1 and condk seen */
Datum
crm_retention_fixed_finalfn(PG_FUNCTION_ARGS)
{
	int32		s;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	s = PG_GETARG_INT32(0);
	PG_RETURN_ARRAYTYPE_P(RetentionResult(RetentionFixedConds(s), RetentionFixedSeen(s)));
}

/* text form: as crm.retention_state, one character per condition ("101") */
Datum
crm_retention_fixed_state_out(PG_FUNCTION_ARGS)
{
	int32		s = PG_GETARG_INT32(0);

	PG_RETURN_CSTRING(SeenToCString(RetentionFixedConds(s), RetentionFixedSeen(s)));
}

/* the text form: 1 to RETENTION_FIXED_MAX characters 0 or 1 */
Datum
crm_retention_fixed_state_in(PG_FUNCTION_ARGS)
{
	int			n;
	uint64		seen = SeenFromCString(PG_GETARG_CSTRING(0), "crm.retention_fixed_state",
									   1, RETENTION_FIXED_MAX, &n);

	PG_RETURN_INT32(RetentionFixedMake(n, (uint32) seen));
}
