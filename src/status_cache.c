/*
 * status_cache.c
 *      Automatic statuses (docs/auto-status.md): the per-backend cache of
 *      what each automatic-status trigger needs (its attachment, the column
 *      numbers of the firing relation, the kept plans of the event trigger),
 *      keyed by pg_trigger oid, and the protocol checks of both triggers.
 *
 * An entry is rebuilt after a relcache invalidation of its tables
 * (StatusCacheInvalidate, called by the callback in status_config.c) and
 * whenever the firing relation's columns no longer have the cached types.
 * See src/status.h for the layout of the status files and the naming rule.
 */
#include "status.h"

#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

static HTAB *TriggerCache = NULL;

/*
 * Plans and memory of rebuilt cache entries that an outer call may still be
 * using (a rebuild while a rule's statement runs): freed at the next rebuild
 * outside any rule.
 */
static List *RetiredPlans = NIL;
static List *RetiredContexts = NIL;

/*
 * The relcache callback's part (see status_config.c): the entries of relid,
 * as the firing table, the attached entity table or its event table, are
 * rebuilt at their next use (everything when relid is InvalidOid).  Only
 * flags are changed here: an entry may be in use.
 */
void
StatusCacheInvalidate(Oid relid)
{
	HASH_SEQ_STATUS scan;
	TriggerCacheEntry *e;

	if (TriggerCache == NULL)
		return;
	hash_seq_init(&scan, TriggerCache);
	while ((e = (TriggerCacheEntry *) hash_seq_search(&scan)) != NULL)
		if (!OidIsValid(relid) || relid == e->relid ||
			relid == e->att.entity_table || relid == e->att.event_table)
			e->valid = false;
}

/* attnum and type of column col of the firing relation, or a clear error */
static AttrNumber
RelColumn(Relation rel, const char *col, Oid *typid)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), col) == 0)
		{
			*typid = a->atttypid;
			return a->attnum;
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("column \"%s\" of relation %s does not exist", col, StatusQualifiedRelName(RelationGetRelid(rel))),
			 errhint("The column was renamed or dropped after crm.attach_auto_status(); detach and attach again.")));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

/* whether column attnum of desc exists with type typid */
bool
StatusColumnIs(TupleDesc desc, AttrNumber attnum, Oid typid)
{
	Form_pg_attribute a;

	if (attnum <= 0 || attnum > desc->natts)
		return false;
	a = TupleDescAttr(desc, attnum - 1);
	return !a->attisdropped && a->atttypid == typid;
}

/* whether the cached columns of entry still fit the firing relation */
static bool
EntryFits(TriggerCacheEntry *entry, Relation rel, bool for_events)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (RelationGetRelid(rel) != entry->relid)
		return false;
	if (!for_events)
		return StatusColumnIs(desc, entry->key_attnum, entry->key_type) &&
			StatusColumnIs(desc, entry->status_attnum, entry->status_type);
	return StatusColumnIs(desc, entry->ev_entity_attnum, entry->ev_entity_type) &&
		StatusColumnIs(desc, entry->ev_type_attnum, entry->ev_type_type) &&
		StatusColumnIs(desc, entry->ev_time_attnum, entry->ev_time_type);
}

/* rel is the table root or one of its partitions (at any depth) */
static bool
RelIsOrPartitionOf(Relation rel, Oid root)
{
	List	   *ancestors;
	bool		result;

	if (RelationGetRelid(rel) == root)
		return true;
	if (!rel->rd_rel->relispartition)
		return false;
	ancestors = get_partition_ancestors(RelationGetRelid(rel));
	result = list_member_oid(ancestors, root);
	list_free(ancestors);
	return result;
}

/*
 * Drop the plans and memory of an entry being rebuilt: at once when no rule
 * is running, else later (an outer call may be executing one of its plans).
 */
static void
RetireEntry(TriggerCacheEntry *entry)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	if (entry->lock_plan)
		RetiredPlans = lappend(RetiredPlans, entry->lock_plan);
	if (entry->update_plan)
		RetiredPlans = lappend(RetiredPlans, entry->update_plan);
	if (entry->cxt)
		RetiredContexts = lappend(RetiredContexts, entry->cxt);
	MemoryContextSwitchTo(old);
	entry->lock_plan = entry->update_plan = NULL;
	entry->cxt = NULL;
	if (StatusRuleDepth == 0)
	{
		ListCell   *lc;

		foreach(lc, RetiredPlans)
			SPI_freeplan((SPIPlanPtr) lfirst(lc));
		foreach(lc, RetiredContexts)
			MemoryContextDelete((MemoryContext) lfirst(lc));
		list_free(RetiredPlans);
		list_free(RetiredContexts);
		RetiredPlans = RetiredContexts = NIL;
	}
}

/* the attachment id, the one argument of an automatic-status trigger */
static int32
TriggerAttachmentId(Trigger *trigger)
{
	char	   *end;
	long		v;

	if (trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" must have one argument, the attachment id", trigger->tgname),
				 errhint("Install the triggers with crm.attach_auto_status().")));
	errno = 0;
	v = strtol(trigger->tgargs[0], &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0 || v > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" has an invalid attachment id \"%s\"", trigger->tgname, trigger->tgargs[0])));
	return (int32) v;
}

/* the entity trigger's part of an entry: columns of the firing relation */
static void
BuildEntityColumns(TriggerCacheEntry *entry, Relation rel, Trigger *trigger)
{
	Oid			outfn;
	bool		isvarlena;

	if (!RelIsOrPartitionOf(rel, entry->att.entity_table))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" is on %s but attachment %d is for %s", trigger->tgname,
						StatusQualifiedRelName(RelationGetRelid(rel)), entry->att.attachment_id,
						StatusQualifiedRelName(entry->att.entity_table))));
	entry->key_attnum = RelColumn(rel, entry->att.key_column, &entry->key_type);
	entry->status_attnum = RelColumn(rel, entry->att.status_column, &entry->status_type);
	getTypeOutputInfo(entry->key_type, &outfn, &isvarlena);
	fmgr_info_cxt(outfn, &entry->key_out, entry->cxt);
	getTypeOutputInfo(entry->status_type, &outfn, &isvarlena);
	fmgr_info_cxt(outfn, &entry->status_out, entry->cxt);
}

/*
 * The event trigger's part of an entry: columns of the firing relation, the
 * lock plan and the update plan (SPI connected, search_path pinned).
 */
static void
BuildEventPlans(TriggerCacheEntry *entry, Relation rel, Trigger *trigger)
{
	char	   *ent = StatusQualifiedRelName(entry->att.entity_table);
	const char *key = quote_identifier(entry->att.key_column);
	const char *status = quote_identifier(entry->att.status_column);
	char	   *stype = format_type_be_qualified(entry->att.status_type);
	StringInfoData sql;
	Oid			types[6];
	Oid			outfn;
	bool		isvarlena;

	if (!OidIsValid(entry->att.event_table) || !RelIsOrPartitionOf(rel, entry->att.event_table))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("trigger \"%s\" is not on the event table of attachment %d", trigger->tgname,
						entry->att.attachment_id)));
	entry->ev_entity_attnum = RelColumn(rel, entry->att.ev_entity_column, &entry->ev_entity_type);
	entry->ev_type_attnum = RelColumn(rel, entry->att.ev_type_column, &entry->ev_type_type);
	entry->ev_time_attnum = RelColumn(rel, entry->att.ev_time_column, &entry->ev_time_type);
	getTypeOutputInfo(entry->ev_type_type, &outfn, &isvarlena);
	fmgr_info_cxt(outfn, &entry->ev_type_out, entry->cxt);

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT e.%s::pg_catalog.text FROM %s e "
					 "WHERE e.%s OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE OF e",
					 status, ent, key);
	types[0] = entry->ev_entity_type;
	entry->lock_plan = CrmPrepareKept("crm_analytics auto-status", sql.data, 1, types);

	/*
	 * the rule's change and its history row in one statement; the entity
	 * trigger leaves the row alone when it has the rule's status (a status a
	 * user's BEFORE trigger put instead is a manual change, which the entity
	 * trigger checks and records)
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "WITH moved AS (UPDATE %s e SET %s = CAST($2 AS %s) WHERE e.%s OPERATOR(pg_catalog.=) $1 "
					 "RETURNING e.%s::pg_catalog.text AS key, e.%s::pg_catalog.text AS status) "
					 "INSERT INTO crm.status_history "
					 "(entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) "
					 "SELECT $3, m.key, $4, m.status, $5, $6, 'rule' FROM moved m "
					 "WHERE m.status OPERATOR(pg_catalog.=) $2",
					 ent, status, stype, key, key, status);
	types[1] = TEXTOID;			/* new status */
	types[2] = REGCLASSOID;		/* entity table */
	types[3] = TEXTOID;			/* old status */
	types[4] = TIMESTAMPTZOID;	/* changed_at */
	types[5] = INT8OID;			/* rule id */
	entry->update_plan = CrmPrepareKept("crm_analytics auto-status", sql.data, 6, types);
	pfree(sql.data);
}

/*
 * Build the cache entry of the firing trigger from its attachment and the
 * firing relation (connects to SPI itself).
 */
static void
BuildTriggerEntry(TriggerCacheEntry *entry, TriggerData *trigdata, bool for_events)
{
	Trigger    *trigger = trigdata->tg_trigger;
	Relation	rel = trigdata->tg_relation;
	int32		attachment_id;
	int			level;
	uint64		generation = StatusConfigInvalidations;

	entry->valid = false;
	attachment_id = TriggerAttachmentId(trigger);

	RetireEntry(entry);
	entry->direct_generation = 0;
	entry->cxt = AllocSetContextCreate(TopMemoryContext, "crm_analytics status trigger", ALLOCSET_SMALL_SIZES);
	entry->relid = RelationGetRelid(rel);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	level = StatusPinSearchPath();
	if (StatusCurrentRule.active && OidIsValid(StatusCurrentRule.reader) &&
		StatusCurrentRule.reader != GetUserId())
	{
		/*
		 * The sweep's statement runs as the table owner, who may have no
		 * rights on schema crm: the attachment row is read (by this fixed
		 * query only) as the sweep's caller, as PostgreSQL's foreign-key
		 * triggers run their fixed queries as another role.
		 */
		StatusSavedUser saved;

		StatusBecomeReader(StatusCurrentRule.reader, &saved);
		StatusLoadAttachment(attachment_id, &entry->att, entry->cxt);
		StatusRestoreUser(&saved);
	}
	else
		StatusLoadAttachment(attachment_id, &entry->att, entry->cxt);

	if (!for_events)
		BuildEntityColumns(entry, rel, trigger);
	else
		BuildEventPlans(entry, rel, trigger);
	StatusUnpinSearchPath(level);
	SPI_finish();
	/* an invalidation that arrived while we read the catalog: rebuild next time */
	entry->valid = (StatusConfigInvalidations == generation);
}

/*
 * The cache entry of the firing trigger: built on first use, rebuilt after an
 * invalidation or when the relation's columns no longer have the cached
 * types.
 */
TriggerCacheEntry *
StatusGetTriggerEntry(TriggerData *trigdata, bool for_events)
{
	TriggerCacheEntry *entry;
	bool		found;

	StatusRegisterInvalidation();
	if (TriggerCache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(TriggerCacheEntry);
		TriggerCache = hash_create("crm_analytics status triggers", 32, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(TriggerCache, &trigdata->tg_trigger->tgoid, HASH_ENTER, &found);
	if (!found)
	{
		memset(((char *) entry) + sizeof(Oid), 0, sizeof(TriggerCacheEntry) - sizeof(Oid));
		entry->valid = false;
	}
	if (entry->valid && EntryFits(entry, trigdata->tg_relation, for_events))
		return entry;
	BuildTriggerEntry(entry, trigdata, for_events);
	if (!EntryFits(entry, trigdata->tg_relation, for_events))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("columns of %s changed while the automatic-status trigger was being set up",
						StatusQualifiedRelName(RelationGetRelid(trigdata->tg_relation)))));
	return entry;
}

/* common protocol checks of both triggers */
TriggerData *
StatusCheckTriggerCall(FunctionCallInfo fcinfo, const char *fname, bool allow_update)
{
	TriggerData *trigdata;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by trigger manager", fname)));
	trigdata = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired AFTER ... FOR EACH ROW", fname),
				 errhint("Install the triggers with crm.attach_auto_status().")));
	if (!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		  (allow_update && TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" must be fired by %s", fname, allow_update ? "INSERT or UPDATE" : "INSERT")));
	return trigdata;
}
