/*
 * coverage.c
 *      Contact coverage (PRODUCT.md section 6): the engine behind
 *      crm.attach_coverage.
 *
 *      - crm.median_interval(ts): aggregate, a customer's median interval
 *        between purchases (the "calculated" coverage policy).  State type
 *        crm.median_interval_state: the timestamps seen, kept in place as a
 *        CrmState; text form "count:v1,v2,..." (microseconds since 2000-01-01).
 *      - crm.coverage_change_trigger(): AFTER UPDATE / AFTER DELETE ... FOR
 *        EACH STATEMENT trigger with transition tables: collects the
 *        customers whose counted interactions changed and recomputes their
 *        coverage rows with one set-based statement built from
 *        crm.coverage_config (crm._coverage_recompute_sql).
 *      - crm.coverage_trigger(): AFTER INSERT ... FOR EACH STATEMENT trigger
 *        with a NEW TABLE transition table, installed on the user's
 *        interactions table.  It folds the statement's counted interactions
 *        per customer (latest timestamp, count) and applies them to
 *        crm.coverage in customer order, so that concurrent inserts never
 *        lose an update, never move the last contact backwards and do not
 *        deadlock each other.  In READ COMMITTED (the usual case) each
 *        coverage row is locked and updated directly (primary key lookup,
 *        tuple lock, heap update) without a statement per customer; the
 *        kept SPI plans remain for REPEATABLE READ / SERIALIZABLE, for a
 *        crm.coverage with triggers or row security, or without plain
 *        table privileges, and for customers without a coverage row.
 */
#include "crm_analytics.h"

#include <limits.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "miscadmin.h"
#include "common/int.h"
#include "lib/stringinfo.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(coverage_median_state_in);
PG_FUNCTION_INFO_V1(coverage_median_state_out);
PG_FUNCTION_INFO_V1(coverage_median_transfn);
PG_FUNCTION_INFO_V1(coverage_median_combinefn);
PG_FUNCTION_INFO_V1(coverage_median_finalfn);
PG_FUNCTION_INFO_V1(coverage_trigger);
PG_FUNCTION_INFO_V1(coverage_change_trigger);
PG_FUNCTION_INFO_V1(coverage_truncate_trigger);


/* ------------------------------------------------------------------------
 * crm.median_interval aggregate
 * ------------------------------------------------------------------------
 */

/* qsort comparator for int64 timestamps */
static int
CompareInt64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* int64 sort that checks for interrupts: one customer or statement may bring millions */
#define ST_SORT int64_sort
#define ST_ELEMENT_TYPE int64
#define ST_COMPARE(a, b) CompareInt64(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* parse one signed 64-bit decimal integer at *p, advance *p; error on junk */
static int64
ParseStateInt64(const char **p, const char *whole)
{
	const char *s = *p;
	bool		neg = false;
	uint64		v = 0;
	int			digits = 0;

	if (*s == '-')
	{
		neg = true;
		s++;
	}
	while (*s >= '0' && *s <= '9')
	{
		int			d = *s - '0';

		if (v > (PG_UINT64_MAX - d) / 10)
			digits = -1000;		/* overflow, reported below */
		else
			v = v * 10 + d;
		digits++;
		s++;
	}
	if (digits <= 0 || v > (uint64) PG_INT64_MAX + (neg ? 1 : 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type crm.median_interval_state: \"%s\"", whole),
				 errdetail("Expected \"count:v1,v2,...\" with 64-bit integers.")));
	*p = s;
	if (neg)
		return v == (uint64) PG_INT64_MAX + 1 ? PG_INT64_MIN : -(int64) v;
	return (int64) v;
}

/*
 * crm.median_interval_state input: "count:v1,...,vcount".  The count is
 * checked against the allocation limit and against the values actually
 * present before anything is trusted.
 */
Datum
coverage_median_state_in(PG_FUNCTION_ARGS)
{
	const char *str = PG_GETARG_CSTRING(0);
	const char *p = str;
	int64		count;
	int64	   *vals;
	int64		i;

	count = ParseStateInt64(&p, str);
	if (count < 0 || (uint64) count > (MaxAllocSize - CRM_STATE_FLAT_HDRSZ) / sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid crm.median_interval_state: count " INT64_FORMAT " is out of range", count)));
	if (*p != ':')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type crm.median_interval_state: \"%s\"", str),
				 errdetail("Expected \"count:v1,v2,...\".")));
	p++;
	/* every value needs at least two characters ("0,"), so bound by length */
	if ((uint64) count > strlen(p) / 2 + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid crm.median_interval_state: count " INT64_FORMAT " does not match the values given", count)));
	vals = palloc(sizeof(int64) * Max(count, 1));
	for (i = 0; i < count; i++)
	{
		if (i > 0)
		{
			if (*p != ',')
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						 errmsg("invalid crm.median_interval_state: count " INT64_FORMAT " does not match the values given", count)));
			p++;
		}
		vals[i] = ParseStateInt64(&p, str);
		if (TIMESTAMP_NOT_FINITE(vals[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid crm.median_interval_state: infinite timestamp")));
	}
	if (*p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid crm.median_interval_state: count " INT64_FORMAT " does not match the values given", count)));
	PG_RETURN_POINTER(CrmStateFlatFromPayload(CRM_MAGIC_MEDIAN_INTERVAL, (const char *) vals,
												  sizeof(int64) * count));
}

/* crm.median_interval_state output: "count:v1,...", exact integers */
Datum
coverage_median_state_out(PG_FUNCTION_ARGS)
{
	Size		len;
	const char *payload = CrmStatePayload(PG_GETARG_DATUM(0), CRM_MAGIC_MEDIAN_INTERVAL, &len);
	const int64 *vals = (const int64 *) payload;
	Size		n = len / sizeof(int64);
	StringInfoData buf;
	Size		i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%zu:", n);
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfo(&buf, INT64_FORMAT, vals[i]);
	}
	PG_RETURN_CSTRING(buf.data);
}

/* transition: append the timestamp (NULL and infinite ones are skipped) */
Datum
coverage_median_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "crm.median_interval");
	CrmState   *st;
	TimestampTz ts;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, 16 * sizeof(int64));
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	}
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, 16 * sizeof(int64));
	ts = PG_GETARG_TIMESTAMPTZ(1);
	if (!TIMESTAMP_NOT_FINITE(ts))
	{
		memcpy(CrmStateReserve(st, sizeof(int64)), &ts, sizeof(int64));
		st->len += sizeof(int64);
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/* combine: append the right state's timestamps to the left state */
Datum
coverage_median_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, "crm.median_interval");
	CrmState   *st;
	const char *right;
	Size		rlen;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, 0);
		PG_RETURN_DATUM(CrmStateGetDatum(st));
	}
	right = CrmStatePayload(PG_GETARG_DATUM(1), CRM_MAGIC_MEDIAN_INTERVAL, &rlen);
	if (rlen % sizeof(int64) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid crm.median_interval_state: %zu payload bytes", rlen)));
	st = CrmStateArgRW(fcinfo, 0, aggcontext, CRM_MAGIC_MEDIAN_INTERVAL, rlen);
	if (rlen > 0)
	{
		memcpy(CrmStateReserve(st, rlen), right, rlen);
		st->len += rlen;
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/*
 * final: sort the timestamps, drop exact duplicates (order lines of one
 * purchase), and return the median gap between consecutive purchases as an
 * interval of days and time (the mean of the two middle gaps when their
 * number is even, rounded half up to the microsecond).  NULL with fewer than two
 * distinct purchases.
 */
Datum
coverage_median_finalfn(PG_FUNCTION_ARGS)
{
	Size		len;
	const char *payload;
	int64	   *ts;
	int64	   *gaps;
	Size		n;
	Size		i;
	Size		ngaps = 0;
	int64		med;
	Interval   *result;

	CrmAggContext(fcinfo, "crm.median_interval");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	payload = CrmStatePayload(PG_GETARG_DATUM(0), CRM_MAGIC_MEDIAN_INTERVAL, &len);
	n = len / sizeof(int64);
	if (n < 2)
		PG_RETURN_NULL();
	ts = palloc(len);
	memcpy(ts, payload, len);
	int64_sort(ts, n);
	gaps = palloc(sizeof(int64) * (n - 1));
	for (i = 1; i < n; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		if (ts[i] != ts[i - 1])
			gaps[ngaps++] = ts[i] - ts[i - 1];	/* finite timestamps: no overflow */
	}
	if (ngaps == 0)
		PG_RETURN_NULL();
	int64_sort(gaps, ngaps);
	if (ngaps % 2 == 1)
		med = gaps[ngaps / 2];
	else
	{
		int64		a = gaps[ngaps / 2 - 1];
		int64		b = gaps[ngaps / 2];

		med = a + (b - a + 1) / 2;	/* half-way, rounded up; no overflow */
	}
	result = (Interval *) palloc(sizeof(Interval));
	result->month = 0;
	result->day = (int32) (med / USECS_PER_DAY);
	result->time = med % USECS_PER_DAY;
	PG_RETURN_INTERVAL_P(result);
}

/* ------------------------------------------------------------------------
 * crm.coverage_trigger()
 *
 * Trigger arguments (written by crm.attach_coverage, which validated them):
 *   0 customer column, 1 timestamp column,
 *   2 kind column ('' = none), 3 counted kinds as a text[] literal ('' = all),
 *   4 direction column ('' = none), 5 counted directions ('' = all),
 *   6 automated column ('' = none; automated rows never count),
 *   7 unknown customers: insert | ignore | error
 * ------------------------------------------------------------------------
 */

typedef enum CoverageUnknown
{
	COVERAGE_UNKNOWN_INSERT,
	COVERAGE_UNKNOWN_IGNORE,
	COVERAGE_UNKNOWN_ERROR
} CoverageUnknown;

/* one column filter: attribute number and the accepted values */
typedef struct CoverageFilter
{
	AttrNumber	attnum;			/* 0 = no filter */
	Oid			typid;
	bool		is_text;		/* text/varchar: compare bytes directly */
	FmgrInfo	outfn;			/* otherwise: output function */
	int			nvalues;
	char	  **values;
	int		   *lens;
} CoverageFilter;

/* per-customer fold of one statement */
typedef struct CoverageHit
{
	int64		customer;
	TimestampTz latest;
	int64		count;
} CoverageHit;

/* statements touching at least this many customers use one array UPDATE */
#define COVERAGE_BATCH_MIN	8

/*
 * What the trigger reads from its arguments and the interactions table,
 * cached per trigger (pg_trigger oid) in this backend; rebuilt after any
 * relcache invalidation (a column dropped, renamed or retyped sends one).
 */
typedef struct CoverageTriggerInfo
{
	Oid			tgoid;			/* hash key */
	uint64		generation;		/* CoverageInvalidations when built */
	MemoryContext cxt;			/* owns the filters' lists and functions */
	AttrNumber	cust_att;
	AttrNumber	ts_att;
	Oid			cust_type;
	Oid			ts_type;
	CoverageFilter kinds;
	CoverageFilter directions;
	AttrNumber	auto_att;		/* 0 = none */
	CoverageUnknown unknown;
	SPIPlanPtr	recompute_plan; /* crm.coverage_change_trigger's statement */
} CoverageTriggerInfo;

static HTAB *CoverageTriggerCache = NULL;
static uint64 CoverageInvalidations = 1;
static bool CoverageCallbackRegistered = false;

/* crm.coverage and its primary key, looked up once per generation */
static Oid	CoverageRelid = InvalidOid;
static uint64 CoverageRelidGeneration = 0;

/*
 * One statement's direct updates of crm.coverage: the relation, its primary
 * key index, a minimal executor state for index maintenance and
 * constraints, and two slots (the locked row, the new row).
 */
typedef struct CoverageDirect
{
	Relation	rel;
	Relation	pkey;
	EState	   *estate;
	ResultRelInfo *rri;
	EPQState	epq;
	TupleTableSlot *oldslot;
	TupleTableSlot *newslot;
	AttrNumber	att_last;
	AttrNumber	att_contacts;
	AttrNumber	att_next;
	AttrNumber	att_interval;
} CoverageDirect;

static SPIPlanPtr coverage_update_plan = NULL;
static SPIPlanPtr coverage_upsert_plan = NULL;
static SPIPlanPtr coverage_batch_plan = NULL;

/* attribute number of column name in rel, or a trigger protocol error */
static AttrNumber
TriggerColumn(Relation rel, const char *name, const char *what)
{
	AttrNumber	attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("crm.coverage_trigger: %s column \"%s\" does not exist in table \"%s\"",
						what, name, RelationGetRelationName(rel)),
				 errhint("Run crm.attach_coverage again after renaming columns.")));
	return attnum;
}

/* set up one filter from a column argument and a text[] literal argument */
static void
SetupFilter(CoverageFilter *f, Relation rel, const char *col, const char *list, const char *what)
{
	memset(f, 0, sizeof(*f));
	f->nvalues = -1;
	if (col[0] == '\0' || list[0] == '\0')
		return;					/* no filter: every value counts, NULL too */
	f->attnum = TriggerColumn(rel, col, what);
	f->typid = getBaseType(TupleDescAttr(RelationGetDescr(rel), f->attnum - 1)->atttypid);
	f->is_text = (f->typid == TEXTOID || f->typid == VARCHAROID);
	if (!f->is_text)
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(f->typid, &outfunc, &isvarlena);
		fmgr_info(outfunc, &f->outfn);
	}
	if (list[0] != '\0')
	{
		Datum		arr = OidInputFunctionCall(F_ARRAY_IN, (char *) list, TEXTOID, -1);
		Datum	   *elems;
		bool	   *nulls;
		int			i;

		deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &f->nvalues);
		f->values = palloc(sizeof(char *) * Max(f->nvalues, 1));
		f->lens = palloc(sizeof(int) * Max(f->nvalues, 1));
		for (i = 0; i < f->nvalues; i++)
		{
			f->values[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
			f->lens[i] = nulls[i] ? 0 : strlen(f->values[i]);
		}
	}
}

/* does the row pass the filter: non-null and one of the listed values */
static bool
FilterAccepts(CoverageFilter *f, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		d;
	const char *s;
	int			len;
	int			i;

	if (f->attnum == 0)
		return true;
	d = slot_getattr(slot, f->attnum, &isnull);
	if (isnull)
		return false;
	if (f->is_text)
	{
		text	   *t = DatumGetTextPP(d);

		s = VARDATA_ANY(t);
		len = VARSIZE_ANY_EXHDR(t);
	}
	else
	{
		s = OutputFunctionCall(&f->outfn, d);
		len = strlen(s);
		if (f->typid == BPCHAROID)
			while (len > 0 && s[len - 1] == ' ')
				len--;			/* char(n) padding, as a cast to text drops it */
	}
	for (i = 0; i < f->nvalues; i++)
		if (f->values[i] != NULL && f->lens[i] == len && memcmp(f->values[i], s, len) == 0)
			return true;
	return false;
}

/* the interaction time of a row as timestamptz */
static TimestampTz
InteractionTime(Datum d, Oid typid)
{
	if (typid == TIMESTAMPTZOID)
		return DatumGetTimestampTz(d);
	if (typid == TIMESTAMPOID)
		return DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz, d));
	return DatumGetTimestampTz(DirectFunctionCall1(date_timestamptz, d));
}

/* qsort comparator: hits by customer, then latest */
static int
CompareHits(const void *a, const void *b)
{
	const CoverageHit *x = (const CoverageHit *) a;
	const CoverageHit *y = (const CoverageHit *) b;

	if (x->customer != y->customer)
		return (x->customer > y->customer) - (x->customer < y->customer);
	return (x->latest > y->latest) - (x->latest < y->latest);
}

#define ST_SORT hits_sort
#define ST_ELEMENT_TYPE CoverageHit
#define ST_COMPARE(a, b) CompareHits(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* prepare and keep the two statements the trigger runs */
static void
PreparePlans(void)
{
	Oid			argtypes[3] = {INT8OID, TIMESTAMPTZOID, INT8OID};

	if (coverage_update_plan == NULL)
	{
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_trigger",
									   "UPDATE crm.coverage c"
									   "   SET last_contact = GREATEST(c.last_contact, $2),"
									   "       contacts = c.contacts OPERATOR(pg_catalog.+) $3,"
									   "       next_due = GREATEST(c.last_contact, $2) OPERATOR(pg_catalog.+) c.contact_interval"
									   " WHERE c.customer_id OPERATOR(pg_catalog.=) $1",
									   3, argtypes);
		coverage_update_plan = plan;
	}
	if (coverage_upsert_plan == NULL)
	{
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_trigger",
									   "INSERT INTO crm.coverage AS c (customer_id, last_contact, contacts)"
									   " VALUES ($1, $2, $3)"
									   " ON CONFLICT (customer_id) DO UPDATE"
									   "   SET last_contact = GREATEST(c.last_contact, excluded.last_contact),"
									   "       contacts = c.contacts OPERATOR(pg_catalog.+) excluded.contacts,"
									   "       next_due = GREATEST(c.last_contact, excluded.last_contact) OPERATOR(pg_catalog.+) c.contact_interval",
									   3, argtypes);
		coverage_upsert_plan = plan;
	}
	if (coverage_batch_plan == NULL)
	{
		Oid			arrtypes[3] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, INT8ARRAYOID};
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_trigger",
									   "UPDATE crm.coverage c"
									   "   SET last_contact = GREATEST(c.last_contact, u.t),"
									   "       contacts = c.contacts OPERATOR(pg_catalog.+) u.n,"
									   "       next_due = GREATEST(c.last_contact, u.t) OPERATOR(pg_catalog.+) c.contact_interval"
									   "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(k, t, n)"
									   " WHERE c.customer_id OPERATOR(pg_catalog.=) u.k"
									   " RETURNING c.customer_id",
									   3, arrtypes);
		coverage_batch_plan = plan;
	}
}

/* a customer of the statement has no coverage row: add it, skip it or fail */
static void
HandleUnknownCustomer(CoverageUnknown unknown, CoverageHit *hit)
{
	Datum		values[3];
	int			ret;

	switch (unknown)
	{
		case COVERAGE_UNKNOWN_INSERT:
			values[0] = Int64GetDatum(hit->customer);
			values[1] = TimestampTzGetDatum(hit->latest);
			values[2] = Int64GetDatum(hit->count);
			ret = SPI_execute_plan(coverage_upsert_plan, values, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "crm.coverage_trigger: insert failed: %s", SPI_result_code_string(ret));
			break;
		case COVERAGE_UNKNOWN_IGNORE:
			break;
		case COVERAGE_UNKNOWN_ERROR:
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("interaction for unknown customer " INT64_FORMAT, hit->customer),
					 errdetail("Customer " INT64_FORMAT " has no row in crm.coverage.", hit->customer),
					 errhint("Add the customer and run crm.coverage_rebuild(), or attach with unknown_customers => 'insert' or 'ignore'.")));
	}
}

/*
 * Apply many customers at once: one UPDATE joined with the arrays (the
 * arrays are in customer order), then the customers it did not find.
 */
static void
ApplyBatch(CoverageHit *hits, int nhits, CoverageUnknown unknown)
{
	Datum	   *keys = palloc(sizeof(Datum) * nhits);
	Datum	   *times = palloc(sizeof(Datum) * nhits);
	Datum	   *counts = palloc(sizeof(Datum) * nhits);
	Datum		values[3];
	int			ret;
	int			i;

	for (i = 0; i < nhits; i++)
	{
		keys[i] = Int64GetDatum(hits[i].customer);
		times[i] = TimestampTzGetDatum(hits[i].latest);
		counts[i] = Int64GetDatum(hits[i].count);
	}
	values[0] = PointerGetDatum(construct_array(keys, nhits, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(times, nhits, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(counts, nhits, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	ret = SPI_execute_plan(coverage_batch_plan, values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "crm.coverage_trigger: update failed: %s", SPI_result_code_string(ret));
	if (SPI_processed < (uint64) nhits && unknown != COVERAGE_UNKNOWN_IGNORE)
	{
		uint64		nfound = SPI_processed;
		int64	   *found = palloc(sizeof(int64) * Max(nfound, 1));
		uint64		j;
		uint64		f = 0;

		for (j = 0; j < nfound; j++)
		{
			bool		isnull;

			found[j] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull));
		}
		int64_sort(found, nfound);
		for (i = 0; i < nhits; i++)
		{
			while (f < nfound && found[f] < hits[i].customer)
				f++;
			if (f < nfound && found[f] == hits[i].customer)
				continue;
			HandleUnknownCustomer(unknown, &hits[i]);
		}
	}
}

/* relcache callback: forget every cached trigger description */
static void
CoverageInvalidate(Datum arg, Oid relid)
{
	(void) arg;
	(void) relid;
	CoverageInvalidations++;
}

/*
 * The cached description of the firing trigger: its columns, filters and
 * unknown-customer mode, checked against the interactions table.
 */
static CoverageTriggerInfo *
GetCoverageTriggerInfo(TriggerData *trigdata)
{
	Trigger    *trigger = trigdata->tg_trigger;
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	CoverageTriggerInfo *info;
	MemoryContext old;
	bool		found;
	const char *mode;

	if (!CoverageCallbackRegistered)
	{
		CacheRegisterRelcacheCallback(CoverageInvalidate, (Datum) 0);
		CoverageCallbackRegistered = true;
	}
	if (CoverageTriggerCache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CoverageTriggerInfo);
		CoverageTriggerCache = hash_create("crm_analytics coverage triggers", 8, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	info = hash_search(CoverageTriggerCache, &trigger->tgoid, HASH_ENTER, &found);
	if (!found)
	{
		info->generation = 0;
		info->cxt = NULL;
		info->recompute_plan = NULL;
	}
	if (info->generation == CoverageInvalidations)
		return info;
	if (info->recompute_plan != NULL)
	{
		SPI_freeplan(info->recompute_plan);
		info->recompute_plan = NULL;
	}

	if (trigger->tgnargs != 8)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_trigger: expected 8 trigger arguments, got %d", trigger->tgnargs),
				 errhint("Install it with crm.attach_coverage().")));
	if (info->cxt == NULL)
		info->cxt = AllocSetContextCreate(TopMemoryContext, "crm_analytics coverage trigger",
										  ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(info->cxt);
	info->generation = 0;		/* invalid until built completely */
	old = MemoryContextSwitchTo(info->cxt);

	info->cust_att = TriggerColumn(rel, trigger->tgargs[0], "customer");
	info->ts_att = TriggerColumn(rel, trigger->tgargs[1], "timestamp");
	info->cust_type = getBaseType(TupleDescAttr(desc, info->cust_att - 1)->atttypid);
	info->ts_type = getBaseType(TupleDescAttr(desc, info->ts_att - 1)->atttypid);
	if (info->cust_type != INT2OID && info->cust_type != INT4OID && info->cust_type != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("crm.coverage_trigger: customer column \"%s\" must be an integer, not %s",
						trigger->tgargs[0], format_type_be(info->cust_type))));
	if (info->ts_type != TIMESTAMPTZOID && info->ts_type != TIMESTAMPOID && info->ts_type != DATEOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("crm.coverage_trigger: timestamp column \"%s\" must be timestamptz, timestamp or date, not %s",
						trigger->tgargs[1], format_type_be(info->ts_type))));
	SetupFilter(&info->kinds, rel, trigger->tgargs[2], trigger->tgargs[3], "kind");
	SetupFilter(&info->directions, rel, trigger->tgargs[4], trigger->tgargs[5], "direction");
	info->auto_att = 0;
	if (trigger->tgargs[6][0] != '\0')
	{
		info->auto_att = TriggerColumn(rel, trigger->tgargs[6], "automated");
		if (getBaseType(TupleDescAttr(desc, info->auto_att - 1)->atttypid) != BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("crm.coverage_trigger: automated column \"%s\" must be boolean",
							trigger->tgargs[6])));
	}
	mode = trigger->tgargs[7];
	if (strcmp(mode, "insert") == 0)
		info->unknown = COVERAGE_UNKNOWN_INSERT;
	else if (strcmp(mode, "ignore") == 0)
		info->unknown = COVERAGE_UNKNOWN_IGNORE;
	else if (strcmp(mode, "error") == 0)
		info->unknown = COVERAGE_UNKNOWN_ERROR;
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_trigger: unknown customer mode \"%s\"", mode),
				 errhint("Valid modes are insert, ignore and error.")));
	MemoryContextSwitchTo(old);
	info->generation = CoverageInvalidations;
	return info;
}

/* attribute number of a column of crm.coverage, or a can't-happen error */
static AttrNumber
CoverageColumn(Relation rel, const char *name)
{
	AttrNumber	attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0)
		elog(ERROR, "crm.coverage has no column \"%s\"", name);
	return attnum;
}

/*
 * Can this statement update crm.coverage directly?  Only where the result
 * is the same as the kept UPDATE's: READ COMMITTED (a transaction snapshot
 * would turn a concurrent update into a serialization failure, and
 * SERIALIZABLE tracks reads), a plain table with no triggers and no row
 * security, a single-column integer primary key, and table-level SELECT and
 * UPDATE privileges for the current user (else the UPDATE's own checks
 * give the usual errors).  Returns crm.coverage's oid, or InvalidOid.
 */
static Oid
CoverageDirectTarget(void)
{
	Oid			relid;
	Oid			user = GetUserId();

	if (IsolationUsesXactSnapshot())
		return InvalidOid;
	if (CoverageRelidGeneration != CoverageInvalidations)
	{
		Oid			nsp = get_namespace_oid("crm", true);

		CoverageRelid = OidIsValid(nsp) ? get_relname_relid("coverage", nsp) : InvalidOid;
		CoverageRelidGeneration = CoverageInvalidations;
	}
	relid = CoverageRelid;
	if (!OidIsValid(relid))
		return InvalidOid;
	if (pg_class_aclcheck(relid, user, ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(relid, user, ACL_UPDATE) != ACLCHECK_OK)
		return InvalidOid;
	if (check_enable_rls(relid, InvalidOid, true) != RLS_NONE)
		return InvalidOid;
	return relid;
}

/*
 * Open crm.coverage for direct updates; false (nothing opened) when its
 * shape does not allow them.
 */
static bool
CoverageDirectBegin(CoverageDirect *d, Oid relid)
{
	Relation	rel = table_open(relid, RowExclusiveLock);
	Oid			pkoid;
	Relation	pkey;
	RangeTblEntry *rte;
#if PG_VERSION_NUM >= 160000
	RTEPermissionInfo *perm;	/* 16 moved the permissions out of the RTE */
#endif

	pkoid = (rel->rd_rel->relkind == RELKIND_RELATION && rel->trigdesc == NULL &&
			 !rel->rd_rel->relispartition) ? RelationGetPrimaryKeyIndex(rel) : InvalidOid;
	if (!OidIsValid(pkoid))
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}
	pkey = index_open(pkoid, RowExclusiveLock);
	if (IndexRelationGetNumberOfKeyAttributes(pkey) != 1 ||
		pkey->rd_index->indkey.values[0] != CoverageColumn(rel, "customer_id") ||
		TupleDescAttr(RelationGetDescr(rel), pkey->rd_index->indkey.values[0] - 1)->atttypid != INT8OID ||
		pkey->rd_rel->relam != BTREE_AM_OID)
	{
		index_close(pkey, RowExclusiveLock);
		table_close(rel, RowExclusiveLock);
		return false;
	}
	d->rel = rel;
	d->pkey = pkey;
	d->att_last = CoverageColumn(rel, "last_contact");
	d->att_contacts = CoverageColumn(rel, "contacts");
	d->att_next = CoverageColumn(rel, "next_due");
	d->att_interval = CoverageColumn(rel, "contact_interval");

	/* the executor state ExecSimpleRelationUpdate needs */
	d->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
#if PG_VERSION_NUM >= 160000
	perm = makeNode(RTEPermissionInfo);
	perm->relid = relid;
	perm->requiredPerms = ACL_SELECT | ACL_UPDATE;
	perm->updatedCols = bms_make_singleton(d->att_last - FirstLowInvalidHeapAttributeNumber);
	perm->updatedCols = bms_add_member(perm->updatedCols, d->att_contacts - FirstLowInvalidHeapAttributeNumber);
	perm->updatedCols = bms_add_member(perm->updatedCols, d->att_next - FirstLowInvalidHeapAttributeNumber);
	rte->perminfoindex = 1;
	ExecInitRangeTable(d->estate, list_make1(rte), list_make1(perm));
#else
	rte->requiredPerms = ACL_SELECT | ACL_UPDATE;
	rte->updatedCols = bms_make_singleton(d->att_last - FirstLowInvalidHeapAttributeNumber);
	rte->updatedCols = bms_add_member(rte->updatedCols, d->att_contacts - FirstLowInvalidHeapAttributeNumber);
	rte->updatedCols = bms_add_member(rte->updatedCols, d->att_next - FirstLowInvalidHeapAttributeNumber);
	ExecInitRangeTable(d->estate, list_make1(rte));
#endif
	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, rel, 1, NULL, 0);
	d->estate->es_output_cid = GetCurrentCommandId(true);
	d->estate->es_snapshot = GetActiveSnapshot();
	ExecOpenIndices(d->rri, false);
#if PG_VERSION_NUM >= 160000
	EvalPlanQualInit(&d->epq, d->estate, NULL, NIL, -1, NIL);
#else
	EvalPlanQualInit(&d->epq, d->estate, NULL, NIL, -1);
#endif
	d->oldslot = table_slot_create(rel, &d->estate->es_tupleTable);
	d->newslot = ExecInitExtraTupleSlot(d->estate, RelationGetDescr(rel), &TTSOpsVirtual);
	return true;
}

/* close what CoverageDirectBegin opened */
static void
CoverageDirectEnd(CoverageDirect *d)
{
	EvalPlanQualEnd(&d->epq);
	ExecCloseIndices(d->rri);
	ExecResetTupleTable(d->estate->es_tupleTable, false);
	FreeExecutorState(d->estate);
	index_close(d->pkey, RowExclusiveLock);
	table_close(d->rel, RowExclusiveLock);
}

/*
 * Find the coverage row of customer and lock it (FOR NO KEY UPDATE) in
 * d->oldslot, waiting for a transaction that is changing it and following
 * its update, as the kept UPDATE does in READ COMMITTED.  false when the
 * customer has no row.
 */
static bool
CoverageLockRow(CoverageDirect *d, int64 customer)
{
	SnapshotData dirty;
	ScanKeyData key;
	IndexScanDesc scan;
	bool		found;

	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(customer));
	scan = index_beginscan(d->rel, d->pkey, &dirty, 1, 0);
	for (;;)
	{
		TM_FailureData tmfd;
		TM_Result	res;
		TransactionId xwait;

		index_rescan(scan, &key, 1, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, d->oldslot);
		if (!found)
			break;
		/* a transaction inserting or changing the row: wait for it, look again */
		xwait = TransactionIdIsValid(dirty.xmin) ? dirty.xmin : dirty.xmax;
		if (TransactionIdIsValid(xwait))
		{
			XactLockTableWait(xwait, NULL, NULL, XLTW_None);
			continue;
		}
		PushActiveSnapshot(GetLatestSnapshot());
		res = table_tuple_lock(d->rel, &d->oldslot->tts_tid, GetActiveSnapshot(), d->oldslot,
							   GetCurrentCommandId(false), LockTupleNoKeyExclusive, LockWaitBlock,
							   0, &tmfd);
		PopActiveSnapshot();
		if (res == TM_Ok)
			break;
		if (res == TM_Updated || res == TM_Deleted)
			continue;			/* changed since we looked: look again */
		elog(ERROR, "crm.coverage_trigger: unexpected tuple lock result %d", (int) res);
	}
	index_endscan(scan);
	return found;
}

/*
 * Apply one customer's contacts to its locked row: the same arithmetic as
 * the kept UPDATE (last contact never moves backwards, next due = last
 * contact + the customer's interval, NULL without one).
 */
static void
CoverageUpdateRow(CoverageDirect *d, CoverageHit *hit)
{
	TupleDesc	desc = RelationGetDescr(d->rel);
	TupleTableSlot *o = d->oldslot;
	TupleTableSlot *n = d->newslot;
	TimestampTz last = hit->latest;
	int64		contacts;

	slot_getallattrs(o);
	ExecClearTuple(n);
	memcpy(n->tts_values, o->tts_values, sizeof(Datum) * desc->natts);
	memcpy(n->tts_isnull, o->tts_isnull, sizeof(bool) * desc->natts);
	if (!o->tts_isnull[d->att_last - 1] && DatumGetTimestampTz(o->tts_values[d->att_last - 1]) > last)
		last = DatumGetTimestampTz(o->tts_values[d->att_last - 1]);
	n->tts_values[d->att_last - 1] = TimestampTzGetDatum(last);
	n->tts_isnull[d->att_last - 1] = false;
	if (o->tts_isnull[d->att_contacts - 1])
		elog(ERROR, "crm.coverage.contacts is null for customer " INT64_FORMAT, hit->customer);
	if (pg_add_s64_overflow(DatumGetInt64(o->tts_values[d->att_contacts - 1]), hit->count, &contacts))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	n->tts_values[d->att_contacts - 1] = Int64GetDatum(contacts);
	if (o->tts_isnull[d->att_interval - 1])
	{
		n->tts_values[d->att_next - 1] = (Datum) 0;
		n->tts_isnull[d->att_next - 1] = true;
	}
	else
	{
		n->tts_values[d->att_next - 1] = DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(last),
															 o->tts_values[d->att_interval - 1]);
		n->tts_isnull[d->att_next - 1] = false;
	}
	ExecStoreVirtualTuple(n);
	ExecSimpleRelationUpdate(d->rri, d->estate, &d->epq, o, n);
	ResetPerTupleExprContext(d->estate);
}

/*
 * Apply the statement's customers (in customer order) directly; the ones
 * without a coverage row are returned in *missing (count *nmissing).
 * false, with nothing done, when crm.coverage does not allow it.
 */
static bool
ApplyDirect(CoverageHit *hits, int nhits, CoverageHit **missing, int *nmissing)
{
	Oid			relid = CoverageDirectTarget();
	CoverageDirect d;
	int			i;

	*missing = NULL;
	*nmissing = 0;
	if (!OidIsValid(relid))
		return false;
	/* see the changes of earlier commands, as a new statement would */
	CommandCounterIncrement();
	if (!CoverageDirectBegin(&d, relid))
		return false;
	for (i = 0; i < nhits; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (CoverageLockRow(&d, hits[i].customer))
			CoverageUpdateRow(&d, &hits[i]);
		else
		{
			if (*missing == NULL)
				*missing = palloc(sizeof(CoverageHit) * (nhits - i));
			(*missing)[(*nmissing)++] = hits[i];
		}
	}
	CoverageDirectEnd(&d);
	return true;
}

/*
 * crm.coverage_trigger(): statement-level AFTER INSERT trigger with a
 * transition table.  Every counted interaction of the statement is folded
 * per customer, then each customer's coverage row is updated once, in
 * customer order (a deterministic lock order: concurrent multi-row inserts
 * do not deadlock).  GREATEST keeps the last contact from moving backwards
 * when older interactions arrive late; the row lock (and, in READ
 * COMMITTED, working on the latest version of the row) make concurrent
 * inserts for one customer add up exactly.
 */
Datum
coverage_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CoverageTriggerInfo *info;
	Tuplestorestate *ts;
	TupleTableSlot *slot;
	int			readptr;
	CoverageHit *hits;
	CoverageHit *missing;
	int			nmissing;
	int			nhits = 0;
	int			cap = 64;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_trigger: not called by trigger manager"),
				 errhint("Install it with crm.attach_coverage().")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_trigger: must be fired AFTER INSERT FOR EACH STATEMENT with a NEW TABLE transition table"),
				 errhint("Install it with crm.attach_coverage().")));
	info = GetCoverageTriggerInfo(trigdata);

	/* fold the statement's new rows: our own read pointer, from the start */
	ts = trigdata->tg_newtable;
	readptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, readptr);
	tuplestore_rescan(ts);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(trigdata->tg_relation), &TTSOpsMinimalTuple);
	hits = palloc(sizeof(CoverageHit) * cap);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		isnull;
		Datum		d;
		int64		customer;
		TimestampTz when;

		CHECK_FOR_INTERRUPTS();

		d = slot_getattr(slot, info->cust_att, &isnull);
		if (isnull)
			continue;			/* a lead's interaction, not a customer's */
		customer = CrmIntKey(d, info->cust_type);
		d = slot_getattr(slot, info->ts_att, &isnull);
		if (isnull)
			continue;
		when = InteractionTime(d, info->ts_type);
		if (TIMESTAMP_NOT_FINITE(when))
			continue;
		if (info->auto_att != 0)
		{
			d = slot_getattr(slot, info->auto_att, &isnull);
			if (!isnull && DatumGetBool(d))
				continue;
		}
		if (!FilterAccepts(&info->kinds, slot) || !FilterAccepts(&info->directions, slot))
			continue;
		if (nhits == cap)
		{
			if ((Size) cap * 2 * sizeof(CoverageHit) > MaxAllocSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("crm.coverage_trigger: too many interactions in one statement"),
						 errhint("Insert in batches of fewer than 10 million rows.")));
			cap *= 2;
			hits = repalloc(hits, sizeof(CoverageHit) * cap);
		}
		hits[nhits].customer = customer;
		hits[nhits].latest = when;
		hits[nhits].count = 1;
		nhits++;
	}
	ExecDropSingleTupleTableSlot(slot);
	if (nhits == 0)
		return PointerGetDatum(NULL);

	/* one entry per customer (latest time, count), in customer order */
	if (nhits > 1)
	{
		int			out = 0;

		hits_sort(hits, nhits);
		for (i = 1; i < nhits; i++)
		{
			if (hits[i].customer == hits[out].customer)
			{
				hits[out].latest = hits[i].latest;	/* sorted: the later one */
				hits[out].count += hits[i].count;
			}
			else
				hits[++out] = hits[i];
		}
		nhits = out + 1;
	}

	if (ApplyDirect(hits, nhits, &missing, &nmissing))
	{
		/* customers without a coverage row: add, skip or fail */
		if (nmissing > 0 && info->unknown != COVERAGE_UNKNOWN_IGNORE)
		{
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "crm.coverage_trigger: SPI_connect failed");
			PreparePlans();
			for (i = 0; i < nmissing; i++)
				HandleUnknownCustomer(info->unknown, &missing[i]);
			SPI_finish();
		}
		return PointerGetDatum(NULL);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "crm.coverage_trigger: SPI_connect failed");
	PreparePlans();
	if (nhits >= COVERAGE_BATCH_MIN)
		ApplyBatch(hits, nhits, info->unknown);
	else
	{
		for (i = 0; i < nhits; i++)
		{
			Datum		values[3];
			int			ret;

			values[0] = Int64GetDatum(hits[i].customer);
			values[1] = TimestampTzGetDatum(hits[i].latest);
			values[2] = Int64GetDatum(hits[i].count);
			ret = SPI_execute_plan(coverage_update_plan, values, NULL, false, 0);
			if (ret != SPI_OK_UPDATE)
				elog(ERROR, "crm.coverage_trigger: update failed: %s", SPI_result_code_string(ret));
			if (SPI_processed == 0)
				HandleUnknownCustomer(info->unknown, &hits[i]);
		}
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------------
 * crm.coverage_change_trigger()
 * ------------------------------------------------------------------------
 */

static SPIPlanPtr coverage_lock_plan = NULL;

/* the customer of a row if the row counts as a contact (the insert rule) */
static bool
CountedCustomer(CoverageTriggerInfo *info, TupleTableSlot *slot, int64 *customer)
{
	bool		isnull;
	Datum		d;

	d = slot_getattr(slot, info->cust_att, &isnull);
	if (isnull)
		return false;
	*customer = CrmIntKey(d, info->cust_type);
	d = slot_getattr(slot, info->ts_att, &isnull);
	if (isnull || TIMESTAMP_NOT_FINITE(InteractionTime(d, info->ts_type)))
		return false;
	if (info->auto_att != 0)
	{
		d = slot_getattr(slot, info->auto_att, &isnull);
		if (!isnull && DatumGetBool(d))
			return false;
	}
	return FilterAccepts(&info->kinds, slot) && FilterAccepts(&info->directions, slot);
}

/* append the customers of a transition table's counted rows to *keys */
static void
CollectCustomers(CoverageTriggerInfo *info, Relation rel, Tuplestorestate *ts,
				 int64 **keys, int *nkeys, int *cap)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
	int			readptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);

	tuplestore_select_read_pointer(ts, readptr);
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		int64		customer;

		CHECK_FOR_INTERRUPTS();
		if (!CountedCustomer(info, slot, &customer))
			continue;
		if (*nkeys == *cap)
		{
			if ((Size) *cap * 2 * sizeof(int64) > MaxAllocSize)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("crm.coverage_change_trigger: too many interactions in one statement")));
			*cap *= 2;
			*keys = repalloc(*keys, sizeof(int64) * *cap);
		}
		(*keys)[(*nkeys)++] = customer;
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * crm.coverage_change_trigger(): statement-level AFTER UPDATE / AFTER
 * DELETE trigger with transition tables.  The customers of the counted old
 * rows (and, for UPDATE, of the counted new rows) are collected, sorted and
 * made distinct; their coverage rows are locked in customer order (the lock
 * order of crm.coverage_trigger, so the two do not deadlock), then one
 * statement recomputes them from the interactions table with a new
 * snapshot, which sees every insert that committed before the locks were
 * granted (an insert still in progress adds itself afterwards, on top).
 */
Datum
coverage_change_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CoverageTriggerInfo *info;
	int64	   *keys;
	int			nkeys = 0;
	int			cap = 64;
	int			i;
	int			out;
	Datum	   *elems;
	Datum		values[1];
	int			ret;
	bool		isnull;
	Datum		missing;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_change_trigger: not called by trigger manager"),
				 errhint("Install it with crm.attach_coverage().")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) || TRIGGER_FIRED_BY_DELETE(trigdata->tg_event)) ||
		trigdata->tg_oldtable == NULL ||
		(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && trigdata->tg_newtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_change_trigger: must be fired AFTER UPDATE or AFTER DELETE FOR EACH STATEMENT with OLD TABLE (and for UPDATE NEW TABLE) transition tables"),
				 errhint("Install it with crm.attach_coverage().")));
	info = GetCoverageTriggerInfo(trigdata);

	keys = palloc(sizeof(int64) * cap);
	CollectCustomers(info, trigdata->tg_relation, trigdata->tg_oldtable, &keys, &nkeys, &cap);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		CollectCustomers(info, trigdata->tg_relation, trigdata->tg_newtable, &keys, &nkeys, &cap);
	if (nkeys == 0)
		return PointerGetDatum(NULL);
	int64_sort(keys, nkeys);
	out = 0;
	for (i = 1; i < nkeys; i++)
		if (keys[i] != keys[out])
			keys[++out] = keys[i];
	nkeys = out + 1;
	elems = palloc(sizeof(Datum) * nkeys);
	for (i = 0; i < nkeys; i++)
		elems[i] = Int64GetDatum(keys[i]);
	values[0] = PointerGetDatum(construct_array(elems, nkeys, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "crm.coverage_change_trigger: SPI_connect failed");
	if (coverage_lock_plan == NULL)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		SPIPlanPtr	plan = CrmPrepareKept("crm.coverage_change_trigger",
									   "SELECT c.customer_id FROM crm.coverage c"
									   " WHERE c.customer_id OPERATOR(pg_catalog.=) ANY ($1)"
									   " ORDER BY c.customer_id FOR NO KEY UPDATE OF c",
									   1, argtypes);
		coverage_lock_plan = plan;
	}
	if (info->recompute_plan == NULL)
	{
		Oid			argtypes[1] = {INT8ARRAYOID};
		char	   *sql;
		SPIPlanPtr	plan;

		ret = SPI_execute("SELECT crm._coverage_recompute_sql(c) FROM crm.coverage_config c", true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "crm.coverage_change_trigger: reading crm.coverage_config failed: %s", SPI_result_code_string(ret));
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("crm.coverage_change_trigger: coverage is not attached"),
					 errhint("Run crm.attach_coverage(...) again.")));
		sql = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (sql == NULL)
			elog(ERROR, "crm.coverage_change_trigger: no recompute statement");
		plan = CrmPrepareKept("crm.coverage_change_trigger", sql, 1, argtypes);
		info->recompute_plan = plan;
	}
	ret = SPI_execute_plan(coverage_lock_plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "crm.coverage_change_trigger: locking failed: %s", SPI_result_code_string(ret));
	ret = SPI_execute_plan(info->recompute_plan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "crm.coverage_change_trigger: recompute failed: %s", SPI_result_code_string(ret));
	missing = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull && info->unknown == COVERAGE_UNKNOWN_ERROR)
	{
		int64		customer = DatumGetInt64(missing);

		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("interaction for unknown customer " INT64_FORMAT, customer),
				 errdetail("Customer " INT64_FORMAT " has no row in crm.coverage.", customer),
				 errhint("Add the customer and run crm.coverage_rebuild(), or attach with unknown_customers => 'insert' or 'ignore'.")));
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------------
 * crm.coverage_truncate_trigger()
 * ------------------------------------------------------------------------
 */

/*
 * AFTER TRUNCATE FOR EACH STATEMENT on the interactions table: no counted
 * contact is left, so crm.coverage is refilled by crm.coverage_rebuild()
 * (customers keep their rows with no last contact, customers known only
 * from their interactions go), when the truncated table is the one coverage
 * is attached to.
 */
Datum
coverage_truncate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	int			ret;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_truncate_trigger: not called by trigger manager"),
				 errhint("Install it with crm.attach_coverage().")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm.coverage_truncate_trigger: must be fired AFTER TRUNCATE FOR EACH STATEMENT"),
				 errhint("Install it with crm.attach_coverage().")));
	values[0] = ObjectIdGetDatum(RelationGetRelid(trigdata->tg_relation));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "crm.coverage_truncate_trigger: SPI_connect failed");
	ret = SPI_execute_with_args("SELECT crm.coverage_rebuild() FROM crm.coverage_config c "
								"WHERE c.interactions OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
								1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "crm.coverage_truncate_trigger: rebuild failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	return PointerGetDatum(NULL);
}
