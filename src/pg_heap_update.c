/*
 * pg_heap_update.c
 *      The direct update of crm.coverage rows by crm.coverage_trigger
 *      (coverage.c): find a customer's row through the primary key, lock
 *      it as UPDATE does in READ COMMITTED (waiting for and following a
 *      concurrent update), and update it with ExecSimpleRelationUpdate
 *      (index maintenance and constraints included), without running a
 *      statement per customer.
 *
 *      PostgreSQL internals this file depends on (and nothing else in the
 *      extension does): a hand-built executor state (RangeTblEntry,
 *      ResultRelInfo, EPQState, ExecInitRangeTable, EvalPlanQualInit), the
 *      table AM's table_tuple_lock with a dirty-snapshot index scan, and
 *      ExecSimpleRelationUpdate (the logical replication apply path).
 *      Written for PostgreSQL 15; the #if PG_VERSION_NUM >= 160000 branches
 *      follow 16's move of the permissions out of the range table entry
 *      (RTEPermissionInfo) and EvalPlanQualInit's extra argument.  A port
 *      to a newer PostgreSQL touches this file only.
 *
 *      Fallback: when this path does not apply (REPEATABLE READ or
 *      SERIALIZABLE, crm.coverage with triggers or row security, or without
 *      plain table privileges: CoverageDirectTarget in coverage_settings.c;
 *      a partition or an unexpected primary key: CoverageApplyDirect below)
 *      the trigger runs its kept SQL statements (coverage.c), which give the
 *      same rows.  test/coverage_paths.sh checks both paths against plain
 *      SQL, and test/coverage_concurrency.sh the concurrent inserts of the
 *      direct path.
 */
#include "coverage.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "common/int.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

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
		elog(ERROR, "unexpected tuple lock result %d", (int) res);
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
bool
CoverageApplyDirect(Oid relid, CoverageHit *hits, int nhits, CoverageHit **missing, int *nmissing)
{
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
