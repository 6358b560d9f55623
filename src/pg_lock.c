/*
 * pg_lock.c
 *      Automatic statuses: the PostgreSQL internals the event trigger's
 *      entity lock depends on, and nothing else.
 *
 * Fast path (StatusLockEntity): lock the entity row as the kept lock plan
 * "SELECT status::text FROM entity e WHERE e.key = $1 FOR NO KEY UPDATE OF e"
 * does in READ COMMITTED, without SPI: an index scan of the key's unique
 * btree index under a fresh snapshot, table_tuple_lock() with
 * TUPLE_LOCK_FLAG_FIND_LAST_VERSION (waiting for a transaction that holds
 * the row) and a re-check of the key when a newer version was locked.  It
 * depends on: the table AM's tuple-lock API and TM_Result / TM_FailureData
 * (access/tableam.h), the index AM scan API (index_beginscan with its
 * PostgreSQL 15 argument list, index_rescan, index_getnext_slot),
 * pg_index's columns read from the relcache (rd_index, rd_indextuple,
 * rd_opfamily, rd_opcintype, rd_indcollation), BTREE_AM_OID,
 * CommandCounterIncrement + GetTransactionSnapshot for the fresh snapshot,
 * and check_enable_rls().  Written against PostgreSQL 15; a port checks
 * these calls (index_beginscan and table_tuple_lock signatures change
 * between major versions) and nothing outside this file.
 *
 * Fallback: StatusLockEntity returns -1 (nothing done) whenever the fast
 * path does not apply -- REPEATABLE READ or SERIALIZABLE, row-level
 * security, no plain SELECT and UPDATE on the table, no suitable index, an
 * entity table that is not a plain table, an event entity column of another
 * type than the key -- and the event trigger (status_trigger.c) runs the
 * kept lock plan instead.  Removing the fast path (always returning -1) is
 * a correct, slower port.
 *
 * Tests: test/status_paths.sh replays one workload through the fast path
 * (READ COMMITTED, primary key) and through the fallback (REPEATABLE READ,
 * deferrable unique key, an int event column with a bigint key, row
 * security) and requires the same statuses and history, equal to an
 * independent PL/pgSQL replay; test/status_concurrency.sh covers the
 * waiting and re-check under concurrent sessions.
 *
 * StatusTupleWrittenByCommand reads the heap tuple header (xmin, cmin) of
 * the row the entity trigger fires for: it depends on HeapTupleHeader and
 * TransactionIdIsCurrentTransactionId; test/status_triggers.sql covers it.
 */
#include "status.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

/*
 * Can the event trigger lock the entity row without the lock plan?  Only
 * with a plain table and a unique, immediate, non-partial btree index on
 * the key column alone whose type is the event's entity type (the lookup
 * is then exactly "key = $1").  Sets entry->key_index (InvalidOid: use the
 * lock plan); re-checked after every relcache invalidation.
 */
static void
CheckDirectLock(TriggerCacheEntry *entry)
{
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	Oid			outfn;
	bool		isvarlena;

	entry->key_index = InvalidOid;
	entry->direct_generation = StatusConfigInvalidations;
	rel = table_open(entry->att.entity_table, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
	{
		table_close(rel, AccessShareLock);
		return;
	}
	entry->ent_key_attnum = StatusAttachedColumn(entry->att.entity_table, entry->att.key_column, NULL);
	entry->ent_status_attnum = StatusAttachedColumn(entry->att.entity_table, entry->att.status_column, NULL);
	getTypeOutputInfo(entry->att.status_type, &outfn, &isvarlena);
	fmgr_info_cxt(outfn, &entry->ent_status_out, TopMemoryContext);
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = idx->rd_index;
		bool		fits;

		fits = ind->indisunique && ind->indimmediate && ind->indisvalid && ind->indisready &&
			ind->indislive && ind->indnkeyatts == 1 && ind->indkey.values[0] == entry->ent_key_attnum &&
			idx->rd_rel->relam == BTREE_AM_OID &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
			idx->rd_opcintype[0] == entry->att.key_type &&
			entry->att.key_type == entry->att.ev_entity_type;
		if (fits)
		{
			Oid			eqop = get_opfamily_member(idx->rd_opfamily[0], entry->att.key_type,
												   entry->att.key_type, BTEqualStrategyNumber);

			if (OidIsValid(eqop))
			{
				entry->key_index = RelationGetRelid(idx);
				entry->key_eq = get_opcode(eqop);
				entry->key_collation = idx->rd_indcollation[0];
			}
		}
		index_close(idx, AccessShareLock);
		if (OidIsValid(entry->key_index))
			break;
	}
	list_free(indexes);
	table_close(rel, AccessShareLock);
}

/*
 * Lock the entity row with key entity and return its status (NULL for a
 * NULL status) in *current, as the lock plan "SELECT status::text ...
 * WHERE key = $1 FOR NO KEY UPDATE" does in READ COMMITTED: look the key up
 * in a fresh snapshot, lock the row's latest version (waiting for a
 * transaction that holds it) and re-check the key when the row changed
 * meanwhile.  Returns false when there is no such row, as the plan would;
 * -1 (nothing done) when only the lock plan can do it: another isolation
 * level, row security, no plain table privileges or no suitable index.
 */
int
StatusLockEntity(TriggerCacheEntry *entry, Datum entity, char **current)
{
	Oid			relid = entry->att.entity_table;
	Oid			user = GetUserId();
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	ScanKeyData key;
	Snapshot	snap;
	TupleTableSlot *slot;
	bool		found;

	if (IsolationUsesXactSnapshot())
		return -1;
	if (entry->direct_generation != StatusConfigInvalidations)
		CheckDirectLock(entry);
	if (!OidIsValid(entry->key_index))
		return -1;
	if (pg_class_aclcheck(relid, user, ACL_SELECT) != ACLCHECK_OK ||
		pg_class_aclcheck(relid, user, ACL_UPDATE) != ACLCHECK_OK ||
		check_enable_rls(relid, InvalidOid, true) != RLS_NONE)
		return -1;

	/* see the changes of earlier commands and take a fresh snapshot, as a new statement does */
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetTransactionSnapshot());
	rel = table_open(relid, RowShareLock);
	/* the table changed since the index was chosen: the lock plan follows it */
	if (entry->direct_generation != StatusConfigInvalidations ||
		!StatusColumnIs(RelationGetDescr(rel), entry->ent_key_attnum, entry->att.key_type) ||
		!StatusColumnIs(RelationGetDescr(rel), entry->ent_status_attnum, entry->att.status_type))
	{
		table_close(rel, RowShareLock);
		UnregisterSnapshot(snap);
		return -1;
	}
	idx = index_open(entry->key_index, RowShareLock);
	slot = table_slot_create(rel, NULL);
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid, entry->key_collation,
						   entry->key_eq, entity);
	scan = index_beginscan(rel, idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	if (found)
	{
		TM_FailureData tmfd;
		TM_Result	res;

		res = table_tuple_lock(rel, &slot->tts_tid, snap, slot, GetCurrentCommandId(false),
							   LockTupleNoKeyExclusive, LockWaitBlock,
							   TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
		switch (res)
		{
			case TM_Ok:
				if (tmfd.traversed)
				{
					/* a newer version was locked: it must still have the key */
					bool		isnull;
					Datum		k = slot_getattr(slot, entry->ent_key_attnum, &isnull);

					found = !isnull &&
						DatumGetBool(OidFunctionCall2Coll(entry->key_eq, entry->key_collation, k, entity));
				}
				break;
			case TM_Deleted:
			case TM_SelfModified:
				found = false;	/* gone, or changed by this transaction since the snapshot */
				break;
			default:
				elog(ERROR, "unexpected tuple lock result %d", (int) res);
		}
	}
	if (found)
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, entry->ent_status_attnum, &isnull);

		*current = isnull ? NULL : OutputFunctionCall(&entry->ent_status_out, d);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, RowShareLock);
	table_close(rel, RowShareLock);
	UnregisterSnapshot(snap);
	/* which path ran, for test/status_paths.sh (evaluated only when DEBUG1 is sent) */
	ereport(DEBUG1,
			(errmsg_internal("entity row of %s locked through index %s",
							 get_rel_name(relid), get_rel_name(entry->key_index))));
	return found ? 1 : 0;
}

/* whether tuple is a row version written by command cid of this transaction */
bool
StatusTupleWrittenByCommand(HeapTuple tuple, CommandId cid)
{
	HeapTupleHeader h = tuple->t_data;

	if (h == NULL || !TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(h)))
		return false;
	return HeapTupleHeaderGetCmin(h) == cid;
}
