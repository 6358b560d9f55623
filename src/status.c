/*
 * status.c
 *      Automatic statuses (PRODUCT.md section 5): the C trigger functions that
 *      crm.attach_auto_status() installs on the user's own tables, and the
 *      time-rule sweep crm.apply_time_rules().
 *
 *  - status_event_trigger: AFTER INSERT row trigger on the event table.  It
 *    locks the entity row (FOR NO KEY UPDATE, so events of one entity and the
 *    sweep serialise on it), picks the one applicable event rule with the
 *    highest priority and updates the entity's status.
 *  - status_entity_trigger: AFTER INSERT / UPDATE OF status row trigger on the
 *    entity table.  A change made by a rule's own statement (recognised by
 *    the command id that wrote the row version, and the status the rule set)
 *    is recorded by that statement; any other change, including one made by
 *    the user's triggers while a rule runs, is a manual one: it must be an
 *    allowed transition (else an error) and is recorded with the person as
 *    actor.
 *  - status_apply_time_rules: for each time rule, locks the idle entities
 *    with SKIP LOCKED, re-checks them under a fresh snapshot and moves them;
 *    the statement that moves them (and so the user's triggers on the table)
 *    runs as the table's owner in a security-restricted operation, with the
 *    session's search_path.
 *
 * Triggers on a partition of an attached table are clones of the attached
 * table's triggers (same attachment id); their column numbers are the
 * partition's own.  The per-trigger cache is dropped on a relcache
 * invalidation of the attached tables (and checked against the relation's
 * tuple descriptor at each use), so ALTER TABLE ... TYPE is followed.
 *
 * Loops: a rule-driven change runs with a depth counter raised; an event
 * inserted at depth >= max_depth (by a user trigger reacting to the change)
 * is stored but applies no rule.
 *
 * All SQL is built from catalog names through quote_identifier and kept as
 * prepared SPI plans (per trigger, in a backend-local hash table).  The
 * trigger functions do not pin search_path in their definition (a SET clause
 * costs two GUC changes and a namespace-cache rebuild per row): every name in
 * the kept plans is schema-qualified, operators included, and the rare
 * catalog reads (configuration, attachment) run under a search_path pinned
 * in C (PinSearchPath).  The
 * configuration (stages, transitions, event rules, settings) is read once
 * into backend memory and re-read after a change: a statement trigger on
 * the configuration tables sends a relcache invalidation, which every
 * backend receives through a registered callback.
 */
#include "crm_analytics.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "storage/lmgr.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(status_event_trigger);
PG_FUNCTION_INFO_V1(status_entity_trigger);
PG_FUNCTION_INFO_V1(status_apply_time_rules);
PG_FUNCTION_INFO_V1(status_transition_allowed);
PG_FUNCTION_INFO_V1(status_config_changed);

/* rows locked and moved per batch by the sweep */
#define SWEEP_BATCH 10000

/* An attachment as stored in crm.status_attachments */
typedef struct StatusAttachment
{
	int32		attachment_id;
	Oid			entity_table;
	char	   *key_column;
	char	   *status_column;
	Oid			key_type;
	Oid			status_type;
	Oid			event_table;	/* InvalidOid when there is none */
	char	   *ev_entity_column;
	char	   *ev_type_column;
	char	   *ev_time_column;
	Oid			ev_entity_type;
	Oid			ev_time_type;
} StatusAttachment;

/*
 * What a trigger needs, cached per pg_trigger oid.  valid is cleared by the
 * relcache callback when the trigger's table, the attached entity table or
 * its event table is invalidated (ALTER TABLE sends one); the column types
 * are also checked against the firing relation's descriptor at every use.
 */
typedef struct TriggerCacheEntry
{
	Oid			tgoid;			/* hash key */
	bool		valid;
	MemoryContext cxt;			/* owns att's strings */
	Oid			relid;			/* the trigger's table (a partition or the attached table) */
	StatusAttachment att;
	/* entity trigger: columns of the trigger's table */
	AttrNumber	key_attnum;
	AttrNumber	status_attnum;
	Oid			key_type;
	Oid			status_type;
	FmgrInfo	key_out;
	FmgrInfo	status_out;
	/* event trigger: columns of the trigger's table and plans */
	AttrNumber	ev_entity_attnum;
	AttrNumber	ev_type_attnum;
	AttrNumber	ev_time_attnum;
	Oid			ev_entity_type;
	Oid			ev_type_type;
	Oid			ev_time_type;
	FmgrInfo	ev_type_out;
	SPIPlanPtr	lock_plan;		/* current status of the entity, locked */
	SPIPlanPtr	update_plan;	/* set the entity's status */
	/* event trigger: locking the entity without the lock plan (LockEntity) */
	uint64		direct_generation;	/* ConfigInvalidations when checked */
	Oid			key_index;		/* unique index on the key, or InvalidOid */
	RegProcedure key_eq;		/* its equality function */
	Oid			key_collation;
	AttrNumber	ent_key_attnum;
	AttrNumber	ent_status_attnum;
	FmgrInfo	ent_status_out;
} TriggerCacheEntry;

/*
 * The statement of a rule running right now (read by the entity trigger):
 * the row versions it writes carry its command id; a row it wrote with the
 * status the rule sets is the rule's change, whose history row the
 * statement writes itself.  Anything else (other rows, or a status a user's
 * BEFORE trigger put instead) is a manual change.
 */
typedef struct RuleContext
{
	bool		active;
	Oid			entity_table;
	CommandId	cid;
	const char *to_status;
	Oid			reader;			/* the sweep: its caller reads the attachments */
} RuleContext;

static HTAB *TriggerCache = NULL;
static RuleContext CurrentRule = {false, InvalidOid, InvalidCommandId, NULL, InvalidOid};
static int	RuleDepth = 0;
static SPIPlanPtr HistoryPlan = NULL;

/*
 * Plans and memory of rebuilt cache entries that an outer call may still be
 * using (a rebuild while a rule's statement runs): freed at the next rebuild
 * outside any rule.
 */
static List *RetiredPlans = NIL;
static List *RetiredContexts = NIL;

/* One event rule of the configuration cache */
typedef struct EventRule
{
	int64		rule_id;
	char	   *event_type;
	int			nfrom;			/* -1: any status */
	char	  **from;
	char	   *to;
} EventRule;

/* One explicit crm.status_transitions row */
typedef struct Transition
{
	char	   *from;
	char	   *to;
	bool		allowed;
} Transition;

/* The configuration of one attachment, as cached */
typedef struct AttachmentConfig
{
	Oid			entity_table;
	bool		allow_backward;
	int			max_depth;
	int			nstages;
	char	  **stages;			/* in position order */
	int		   *positions;
	int			ntransitions;
	Transition *transitions;
	int			nrules;
	EventRule  *rules;			/* enabled, by priority desc, rule_id */
} AttachmentConfig;

static MemoryContext ConfigContext = NULL;
static bool ConfigValid = false;
static uint64 ConfigInvalidations = 1;
static bool ConfigCallbackRegistered = false;
static int	NumConfigs = 0;
static AttachmentConfig *Configs = NULL;

/*
 * Pin search_path to pg_catalog, pg_temp until UnpinSearchPath(level): the
 * trigger functions have no SET clause (see the file header), so the few
 * queries that are parsed here (configuration loads, plan preparation) get
 * the same safe path a SET clause would give.  An error in between is
 * cleaned up by (sub)transaction abort, as for a SET clause.
 */
static int
PinSearchPath(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* undo PinSearchPath */
static void
UnpinSearchPath(int level)
{
	AtEOXact_GUC(true, level);
}

/* qualified, quoted name of a relation */
static char *
QualifiedRelName(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("attached table with oid %u does not exist", relid),
				 errhint("Detach it with crm.detach_auto_status() or remove its row from crm.status_attachments.")));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

/* attnum and type of a column the attachment names, or a clear error */
static AttrNumber
AttachedColumn(Oid relid, const char *col, Oid *typid)
{
	AttrNumber	attnum = get_attnum(relid, col);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation %s does not exist", col, QualifiedRelName(relid)),
				 errhint("The column was renamed or dropped after crm.attach_auto_status(); detach and attach again.")));
	if (typid)
		*typid = get_atttype(relid, attnum);
	return attnum;
}

/* copy of text column col of the current SPI result row, or NULL */
static char *
SpiTextCopy(int row, int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return v;
}

/* Read crm.status_attachments row attachment_id (SPI connected) into *att */
static void
LoadAttachment(int32 attachment_id, StatusAttachment *att, MemoryContext cxt)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;
	MemoryContext old;
	int			ret;

	values[0] = Int32GetDatum(attachment_id);
	ret = SPI_execute_with_args("SELECT a.entity_table::oid, a.key_column::text, a.status_column::text, "
								"a.event_table::oid, a.event_entity_column::text, a.event_type_column::text, "
								"a.event_time_column::text "
								"FROM crm.status_attachments a WHERE a.attachment_id = $1",
								1, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("automatic status attachment %d does not exist", attachment_id),
				 errhint("Drop the leftover crm_auto_status_%d_* triggers or attach the table again.", attachment_id)));

	old = MemoryContextSwitchTo(cxt);
	att->attachment_id = attachment_id;
	att->entity_table = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	att->key_column = SpiTextCopy(0, 2);
	att->status_column = SpiTextCopy(0, 3);
	att->event_table = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	if (isnull)
		att->event_table = InvalidOid;
	att->ev_entity_column = SpiTextCopy(0, 5);
	att->ev_type_column = SpiTextCopy(0, 6);
	att->ev_time_column = SpiTextCopy(0, 7);
	MemoryContextSwitchTo(old);

	AttachedColumn(att->entity_table, att->key_column, &att->key_type);
	AttachedColumn(att->entity_table, att->status_column, &att->status_type);
	if (OidIsValid(att->event_table))
	{
		AttachedColumn(att->event_table, att->ev_entity_column, &att->ev_entity_type);
		AttachedColumn(att->event_table, att->ev_time_column, &att->ev_time_type);
	}
}

/* the kept plan that does not depend on an attachment (SPI connected) */
static void
PrepareSharedPlans(void)
{
	if (HistoryPlan == NULL)
	{
		int			level = PinSearchPath();
		Oid			types[7] = {REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTOID};

		HistoryPlan = CrmPrepareKept("crm_analytics auto-status", "INSERT INTO crm.status_history "
								  "(entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, types);
		UnpinSearchPath(level);
	}
}

/*
 * relcache callback: a configuration table (or any relation, or everything)
 * was invalidated.  The configuration is reloaded (cheap to over-invalidate:
 * four small tables); the trigger cache entries of the relation, as the
 * firing table, the attached entity table or its event table, are rebuilt at
 * their next use.  Only flags are changed here: an entry may be in use.
 */
static void
ConfigInvalidate(Datum arg, Oid relid)
{
	(void) arg;
	ConfigInvalidations++;
	ConfigValid = false;
	if (TriggerCache != NULL)
	{
		HASH_SEQ_STATUS scan;
		TriggerCacheEntry *e;

		hash_seq_init(&scan, TriggerCache);
		while ((e = (TriggerCacheEntry *) hash_seq_search(&scan)) != NULL)
			if (!OidIsValid(relid) || relid == e->relid ||
				relid == e->att.entity_table || relid == e->att.event_table)
				e->valid = false;
	}
}

/* register ConfigInvalidate once per backend */
static void
RegisterInvalidationCallback(void)
{
	if (!ConfigCallbackRegistered)
	{
		CacheRegisterRelcacheCallback(ConfigInvalidate, (Datum) 0);
		ConfigCallbackRegistered = true;
	}
}

/* index of the attachment of entity_table in Configs, or -1 */
static int
FindConfigIndex(Oid entity_table)
{
	int			i;

	for (i = 0; i < NumConfigs; i++)
		if (Configs[i].entity_table == entity_table)
			return i;
	return -1;
}

/* run a read-only query for the configuration load */
static void
ConfigQuery(const char *sql)
{
	int			ret = SPI_execute(sql, true, 0);

	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
}

/* (Re)load every attachment's configuration into ConfigContext (SPI connected) */
static void
LoadConfig(void)
{
	MemoryContext old;
	uint64		i;
	uint64		n;
	uint64		invalidations_at_start;

	RegisterInvalidationCallback();
	if (ConfigContext == NULL)
		ConfigContext = AllocSetContextCreate(TopMemoryContext, "crm_analytics status config",
											  ALLOCSET_SMALL_SIZES);
	ConfigValid = false;
	MemoryContextReset(ConfigContext);
	NumConfigs = 0;
	Configs = NULL;
	invalidations_at_start = ConfigInvalidations;

	ConfigQuery("SELECT a.entity_table::oid, a.allow_backward, a.max_depth, "
				"(SELECT count(*) FROM crm.status_stages s WHERE s.entity_table = a.entity_table), "
				"(SELECT count(*) FROM crm.status_transitions t WHERE t.entity_table = a.entity_table), "
				"(SELECT count(*) FROM crm.status_event_rules r WHERE r.entity_table = a.entity_table AND r.enabled) "
				"FROM crm.status_attachments a ORDER BY a.attachment_id");
	n = SPI_processed;
	old = MemoryContextSwitchTo(ConfigContext);
	Configs = palloc0(sizeof(AttachmentConfig) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		AttachmentConfig *c = &Configs[i];
		bool		isnull;

		c->entity_table = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		c->allow_backward = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
		c->max_depth = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		c->stages = palloc0(sizeof(char *) * (DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull)) + 1));
		c->positions = palloc0(sizeof(int) * (DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull)) + 1));
		c->transitions = palloc0(sizeof(Transition) * (DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull)) + 1));
		c->rules = palloc0(sizeof(EventRule) * (DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull)) + 1));
	}
	NumConfigs = (int) n;
	MemoryContextSwitchTo(old);

	ConfigQuery("SELECT s.entity_table::oid, s.status, s.position FROM crm.status_stages s "
				"ORDER BY s.entity_table, s.position");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			k = FindConfigIndex(DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull)));
		AttachmentConfig *c;

		if (k < 0)
			continue;
		c = &Configs[k];
		c->stages[c->nstages] = MemoryContextStrdup(ConfigContext, SPI_getvalue(tup, desc, 2));
		c->positions[c->nstages] = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		c->nstages++;
	}

	ConfigQuery("SELECT t.entity_table::oid, t.from_status, t.to_status, t.allowed FROM crm.status_transitions t");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			k = FindConfigIndex(DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull)));
		Transition *t;

		if (k < 0)
			continue;
		t = &Configs[k].transitions[Configs[k].ntransitions++];
		t->from = MemoryContextStrdup(ConfigContext, SPI_getvalue(tup, desc, 2));
		t->to = MemoryContextStrdup(ConfigContext, SPI_getvalue(tup, desc, 3));
		t->allowed = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	}

	ConfigQuery("SELECT r.entity_table::oid, r.rule_id, r.event_type, r.from_statuses, r.to_status "
				"FROM crm.status_event_rules r WHERE r.enabled "
				"ORDER BY r.entity_table, r.priority DESC, r.rule_id");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			k = FindConfigIndex(DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull)));
		EventRule  *r;
		Datum		arr;

		if (k < 0)
			continue;
		r = &Configs[k].rules[Configs[k].nrules++];
		r->rule_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		r->event_type = MemoryContextStrdup(ConfigContext, SPI_getvalue(tup, desc, 3));
		r->to = MemoryContextStrdup(ConfigContext, SPI_getvalue(tup, desc, 5));
		arr = SPI_getbinval(tup, desc, 4, &isnull);
		if (isnull)
		{
			r->nfrom = -1;
			r->from = NULL;
		}
		else
		{
			Datum	   *elems;
			bool	   *nulls;
			int			nelems;
			int			j;

			deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
							  &elems, &nulls, &nelems);
			r->from = MemoryContextAllocZero(ConfigContext, sizeof(char *) * Max(nelems, 1));
			r->nfrom = 0;
			for (j = 0; j < nelems; j++)
				if (!nulls[j])
					r->from[r->nfrom++] = MemoryContextStrdup(ConfigContext, TextDatumGetCString(elems[j]));
		}
	}

	/*
	 * Valid only if nothing was invalidated meanwhile (a change committed
	 * while we read is then read again next time); an error above leaves the
	 * cache invalid.
	 */
	ConfigValid = (ConfigInvalidations == invalidations_at_start);
}

/*
 * The configuration of the attachment of entity_table (SPI connected),
 * loaded when missing or invalidated; NULL when the table is not attached.
 */
static AttachmentConfig *
GetConfig(Oid entity_table)
{
	int			k;

	if (!ConfigValid)
	{
		int			level = PinSearchPath();

		LoadConfig();
		UnpinSearchPath(level);
	}
	k = FindConfigIndex(entity_table);
	return k < 0 ? NULL : &Configs[k];
}

/* position of status in the pipeline, 0 when unknown */
static int
StagePosition(AttachmentConfig *c, const char *status)
{
	int			i;

	for (i = 0; i < c->nstages; i++)
		if (strcmp(c->stages[i], status) == 0)
			return c->positions[i];
	return 0;
}

/*
 * The transition test of the triggers, the sweep and
 * crm.status_transition_allowed: the target must be a known stage (or NULL);
 * an explicit crm.status_transitions row wins; else a move from NULL or from
 * an unknown status is allowed, and so is a forward move (higher position);
 * backward moves (and clearing the status) only with allow_backward.
 */
static bool
TransitionAllowed(AttachmentConfig *c, const char *from, const char *to, bool *known)
{
	int			pf = from ? StagePosition(c, from) : 0;
	int			pt = to ? StagePosition(c, to) : 0;
	int			i;

	*known = (to == NULL || pt > 0);
	if (!*known)
		return false;
	if (from != NULL && to != NULL)
		for (i = 0; i < c->ntransitions; i++)
			if (strcmp(c->transitions[i].from, from) == 0 && strcmp(c->transitions[i].to, to) == 0)
				return c->transitions[i].allowed;
	if (from == NULL || pf == 0)
		return true;
	if (c->allow_backward)
		return true;
	if (to == NULL)
		return false;
	return pt > pf;
}

/* "new, contacted, won" */
static char *
StageList(AttachmentConfig *c)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < c->nstages; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", c->stages[i]);
	return buf.data;
}

/* the configuration of an attached table, or an error */
static AttachmentConfig *
GetConfigOrError(Oid entity_table)
{
	AttachmentConfig *c = GetConfig(entity_table);

	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table %s has no automatic status attached", QualifiedRelName(entity_table)),
				 errhint("Call crm.attach_auto_status() for the table first.")));
	return c;
}

/*
 * crm._status_config_changed(): statement trigger on the configuration
 * tables; every backend drops its cached configuration.
 */
Datum
status_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("crm._status_config_changed: not called by trigger manager")));
	trigdata = (TriggerData *) fcinfo->context;
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	ConfigInvalidations++;
	ConfigValid = false;
	return PointerGetDatum(NULL);
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
			 errmsg("column \"%s\" of relation %s does not exist", col, QualifiedRelName(RelationGetRelid(rel))),
			 errhint("The column was renamed or dropped after crm.attach_auto_status(); detach and attach again.")));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

/* whether column attnum of desc exists with type typid */
static bool
ColumnIs(TupleDesc desc, AttrNumber attnum, Oid typid)
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
		return ColumnIs(desc, entry->key_attnum, entry->key_type) &&
			ColumnIs(desc, entry->status_attnum, entry->status_type);
	return ColumnIs(desc, entry->ev_entity_attnum, entry->ev_entity_type) &&
		ColumnIs(desc, entry->ev_type_attnum, entry->ev_type_type) &&
		ColumnIs(desc, entry->ev_time_attnum, entry->ev_time_type);
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
	if (RuleDepth == 0)
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
	char	   *end;
	long		v;
	int			level;
	Oid			outfn;
	bool		isvarlena;
	uint64		generation = ConfigInvalidations;

	entry->valid = false;
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
	attachment_id = (int32) v;

	RetireEntry(entry);
	entry->direct_generation = 0;
	entry->cxt = AllocSetContextCreate(TopMemoryContext, "crm_analytics status trigger", ALLOCSET_SMALL_SIZES);
	entry->relid = RelationGetRelid(rel);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	level = PinSearchPath();
	if (CurrentRule.active && OidIsValid(CurrentRule.reader) && CurrentRule.reader != GetUserId())
	{
		/*
		 * The sweep's statement runs as the table owner, who may have no
		 * rights on schema crm: the attachment row is read (by this fixed
		 * query only) as the sweep's caller, as PostgreSQL's foreign-key
		 * triggers run their fixed queries as another role.
		 */
		Oid			save_userid;
		int			save_sec_context;

		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		SetUserIdAndSecContext(CurrentRule.reader, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		LoadAttachment(attachment_id, &entry->att, entry->cxt);
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	else
		LoadAttachment(attachment_id, &entry->att, entry->cxt);

	if (!for_events)
	{
		if (!RelIsOrPartitionOf(rel, entry->att.entity_table))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" is on %s but attachment %d is for %s", trigger->tgname,
							QualifiedRelName(RelationGetRelid(rel)), attachment_id,
							QualifiedRelName(entry->att.entity_table))));
		entry->key_attnum = RelColumn(rel, entry->att.key_column, &entry->key_type);
		entry->status_attnum = RelColumn(rel, entry->att.status_column, &entry->status_type);
		getTypeOutputInfo(entry->key_type, &outfn, &isvarlena);
		fmgr_info_cxt(outfn, &entry->key_out, entry->cxt);
		getTypeOutputInfo(entry->status_type, &outfn, &isvarlena);
		fmgr_info_cxt(outfn, &entry->status_out, entry->cxt);
	}
	else
	{
		char	   *ent = QualifiedRelName(entry->att.entity_table);
		const char *key = quote_identifier(entry->att.key_column);
		const char *status = quote_identifier(entry->att.status_column);
		char	   *stype = format_type_be_qualified(entry->att.status_type);
		StringInfoData sql;
		Oid			types[6];

		if (!OidIsValid(entry->att.event_table) || !RelIsOrPartitionOf(rel, entry->att.event_table))
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" is not on the event table of attachment %d", trigger->tgname,
							attachment_id)));
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
		 * trigger leaves the row alone when it has the rule's status (a
		 * status a user's BEFORE trigger put instead is a manual change, which
		 * the entity trigger checks and records)
		 */
		resetStringInfo(&sql);
		appendStringInfo(&sql, "WITH moved AS (UPDATE %s e SET %s = CAST($2 AS %s) WHERE e.%s OPERATOR(pg_catalog.=) $1 "
						 "RETURNING e.%s::pg_catalog.text AS key, e.%s::pg_catalog.text AS status) "
						 "INSERT INTO crm.status_history "
						 "(entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) "
						 "SELECT $3, m.key, $4, m.status, $5, $6, 'rule' FROM moved m "
						 "WHERE m.status OPERATOR(pg_catalog.=) $2",
						 ent, status, stype, key, key, status);
		types[1] = TEXTOID;		/* new status */
		types[2] = REGCLASSOID; /* entity table */
		types[3] = TEXTOID;		/* old status */
		types[4] = TIMESTAMPTZOID;	/* changed_at */
		types[5] = INT8OID;		/* rule id */
		entry->update_plan = CrmPrepareKept("crm_analytics auto-status", sql.data, 6, types);

		pfree(sql.data);
	}
	UnpinSearchPath(level);
	SPI_finish();
	/* an invalidation that arrived while we read the catalog: rebuild next time */
	entry->valid = (ConfigInvalidations == generation);
}

/*
 * The cache entry of the firing trigger: built on first use, rebuilt after an
 * invalidation or when the relation's columns no longer have the cached
 * types.
 */
static TriggerCacheEntry *
GetTriggerEntry(TriggerData *trigdata, bool for_events)
{
	TriggerCacheEntry *entry;
	bool		found;

	RegisterInvalidationCallback();
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
		elog(ERROR, "columns of %s changed while the automatic-status trigger was being set up",
			 QualifiedRelName(RelationGetRelid(trigdata->tg_relation)));
	return entry;
}

/* common protocol checks of both triggers */
static TriggerData *
CheckTriggerCall(FunctionCallInfo fcinfo, const char *fname, bool allow_update)
{
	TriggerData *trigdata;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s: not called by trigger manager", fname)));
	trigdata = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s: must be fired AFTER ... FOR EACH ROW", fname),
				 errhint("Install the triggers with crm.attach_auto_status().")));
	if (!(TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) ||
		  (allow_update && TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s: must be fired by %s", fname, allow_update ? "INSERT or UPDATE" : "INSERT")));
	return trigdata;
}

/* an event time of type typid as timestamptz */
static TimestampTz
EventTimeAsTimestampTz(Datum d, Oid typid)
{
	if (typid == TIMESTAMPTZOID)
		return DatumGetTimestampTz(d);
	if (typid == TIMESTAMPOID)
		return DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz, d));
	if (typid == DATEOID)
		return DatumGetTimestampTz(DirectFunctionCall1(date_timestamptz, d));
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("event time column has type %s, expected timestamptz, timestamp or date",
					format_type_be(typid))));
	return 0;					/* keep compiler quiet */
}

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
	entry->direct_generation = ConfigInvalidations;
	rel = table_open(entry->att.entity_table, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION)
	{
		table_close(rel, AccessShareLock);
		return;
	}
	entry->ent_key_attnum = AttachedColumn(entry->att.entity_table, entry->att.key_column, NULL);
	entry->ent_status_attnum = AttachedColumn(entry->att.entity_table, entry->att.status_column, NULL);
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
static int
LockEntity(TriggerCacheEntry *entry, Datum entity, char **current)
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
	if (entry->direct_generation != ConfigInvalidations)
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
	if (entry->direct_generation != ConfigInvalidations ||
		!ColumnIs(RelationGetDescr(rel), entry->ent_key_attnum, entry->att.key_type) ||
		!ColumnIs(RelationGetDescr(rel), entry->ent_status_attnum, entry->att.status_type))
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
				elog(ERROR, "crm.status_event_trigger: unexpected tuple lock result %d", (int) res);
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
	return found ? 1 : 0;
}

/*
 * status_event_trigger: an event row was inserted.  Lock its entity, find the
 * applicable event rule and apply it (once).  Events for entities that do not
 * exist (or a NULL entity reference) are stored and ignored; a NULL event
 * type or time is an error.
 *
 * When a rule exists for the event type, the entity row is locked before
 * the rules are matched against its status: events of one entity then apply
 * one after the other, and the sweep (which skips locked rows and re-checks
 * the rows it locked under a fresh snapshot) either sees the event as
 * activity or runs entirely before it.  An event with no rule for its type
 * cannot change a status in any order, so it takes no lock: if it commits
 * while the sweep moves its entity, that is the serial order "sweep, then
 * event".
 */
Datum
status_event_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = CheckTriggerCall(fcinfo, "crm.status_event_trigger", false);
	HeapTuple	tuple = trigdata->tg_trigtuple;
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	TriggerCacheEntry *entry;
	AttachmentConfig *config;
	Datum		entity;
	Datum		evtype;
	Datum		evtime;
	bool		isnull;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	char	   *event_type;
	char	   *current = NULL;
	int			found;
	EventRule  *rule = NULL;
	bool		any_rule = false;
	int			i;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	entry = GetTriggerEntry(trigdata, true);

	entity = heap_getattr(tuple, entry->ev_entity_attnum, tupdesc, &isnull);
	if (isnull)
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	evtype = heap_getattr(tuple, entry->ev_type_attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event type must not be null"),
				 errdetail("Column \"%s\" of %s is the event type of automatic status attachment %d.",
						   entry->att.ev_type_column, QualifiedRelName(entry->att.event_table),
						   entry->att.attachment_id),
				 errhint("Give every event a type, or add a NOT NULL constraint to the column.")));
	evtime = heap_getattr(tuple, entry->ev_time_attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event time must not be null"),
				 errdetail("Column \"%s\" of %s is the event time of automatic status attachment %d.",
						   entry->att.ev_time_column, QualifiedRelName(entry->att.event_table),
						   entry->att.attachment_id),
				 errhint("Give every event a time, e.g. with DEFAULT now().")));
	event_type = OutputFunctionCall(&entry->ev_type_out, evtype);

	config = GetConfigOrError(entry->att.entity_table);
	for (i = 0; i < config->nrules && !any_rule; i++)
		any_rule = (strcmp(config->rules[i].event_type, event_type) == 0);
	if (!any_rule)
	{
		/* no rule for this event type */
		SPI_finish();
		return PointerGetDatum(NULL);
	}

	/*
	 * The entity table is locked from here to the end of the transaction, so
	 * its columns cannot change under us; an ALTER committed before is seen
	 * now (the lock accepts pending invalidations) and rebuilds the entry.
	 */
	LockRelationOid(entry->att.entity_table, RowShareLock);
	if (!entry->valid)
		entry = GetTriggerEntry(trigdata, true);

	/*
	 * lock the entity row: events of one entity and the sweep serialise
	 * here (directly through the key's unique index when possible, else with
	 * the lock plan)
	 */
	values[0] = entity;
	found = LockEntity(entry, entity, &current);
	if (found < 0)
	{
		ret = SPI_execute_plan(entry->lock_plan, values, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
		found = (SPI_processed > 0);
		if (found)
			current = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	}
	if (!found)
	{
		/* no such entity: the event is kept, no rule applies */
		SPI_finish();
		return PointerGetDatum(NULL);
	}

	/* the configuration may have been reloaded by the lock query's catalog access */
	config = GetConfigOrError(entry->att.entity_table);
	for (i = 0; i < config->nrules && rule == NULL; i++)
	{
		EventRule  *r = &config->rules[i];
		bool		known;

		if (strcmp(r->event_type, event_type) != 0)
			continue;
		if (r->nfrom >= 0)
		{
			bool		match = false;
			int			j;

			for (j = 0; current != NULL && j < r->nfrom && !match; j++)
				match = (strcmp(r->from[j], current) == 0);
			if (!match)
				continue;
		}
		if (current != NULL && strcmp(r->to, current) == 0)
			continue;
		if (TransitionAllowed(config, current, r->to, &known))
			rule = r;
	}
	if (rule == NULL)
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}

	if (RuleDepth >= config->max_depth)
	{
		ereport(WARNING,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("automatic status rule %lld not applied: rule chain depth %d reached",
						(long long) rule->rule_id, config->max_depth),
				 errdetail("The event was inserted while a rule was changing a status of %s.",
						   QualifiedRelName(entry->att.entity_table)),
				 errhint("Raise max_depth in crm.status_attachments if the chain is intended.")));
		SPI_finish();
		return PointerGetDatum(NULL);
	}

	/*
	 * apply the rule: one statement updates the entity and writes its
	 * history row; the entity trigger sees the row this statement wrote with
	 * the rule's status and leaves it alone
	 */
	{
		RuleContext saved = CurrentRule;
		TimestampTz changed_at = EventTimeAsTimestampTz(evtime, entry->ev_time_type);
		char	   *to = pstrdup(rule->to);

		values[0] = entity;
		values[1] = CStringGetTextDatum(rule->to);
		values[2] = ObjectIdGetDatum(entry->att.entity_table);
		values[3] = current ? CStringGetTextDatum(current) : (Datum) 0;
		nulls[3] = current ? ' ' : 'n';
		values[4] = TimestampTzGetDatum(changed_at);
		values[5] = Int64GetDatum(rule->rule_id);
		CurrentRule.active = true;
		CurrentRule.entity_table = entry->att.entity_table;
		CurrentRule.to_status = to;
		/* the cached configuration may be reloaded from here on: rule is not used again */
		rule = NULL;
		RuleDepth++;
		PG_TRY();
		{
			/*
			 * the statement runs with the command id current after this
			 * increment (SPI's own increment is then a no-op)
			 */
			CommandCounterIncrement();
			CurrentRule.cid = GetCurrentCommandId(false);
			ret = SPI_execute_plan(entry->update_plan, values, nulls, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
		}
		PG_FINALLY();
		{
			RuleDepth--;
			CurrentRule = saved;
		}
		PG_END_TRY();
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* who made a manual change: the crm.status_actor setting, else the user */
static char *
ManualActor(void)
{
	const char *s = GetConfigOption("crm.status_actor", true, false);

	if (s != NULL && s[0] != '\0')
		return pstrdup(s);
	return GetUserNameFromId(GetUserId(), false);
}

/* whether tuple is a row version written by command cid of this transaction */
static bool
TupleWrittenByCommand(HeapTuple tuple, CommandId cid)
{
	HeapTupleHeader h = tuple->t_data;

	if (h == NULL || !TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(h)))
		return false;
	return HeapTupleHeaderGetCmin(h) == cid;
}

/*
 * status_entity_trigger: a row of the entity table (or of one of its
 * partitions) was inserted with a status, or its status changed.  Leaves the
 * rows a rule's statement moved to the rule's status alone (that statement
 * writes their history rows); every other change is a manual one: checked
 * against the allowed transitions and recorded with the person as actor.
 */
Datum
status_entity_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = CheckTriggerCall(fcinfo, "crm.status_entity_trigger", true);
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event);
	HeapTuple	newtuple = is_update ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	TriggerCacheEntry *entry;
	Oid			table;
	char	   *from = NULL;
	char	   *to = NULL;
	char	   *key;
	Datum		d;
	bool		isnull;
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	AttachmentConfig *config;
	bool		known;
	int			ret;

	entry = GetTriggerEntry(trigdata, false);
	table = entry->att.entity_table;
	d = heap_getattr(newtuple, entry->status_attnum, tupdesc, &isnull);
	if (!isnull)
		to = OutputFunctionCall(&entry->status_out, d);

	/* the row a rule's statement moved to the rule's status: recorded there */
	if (is_update && CurrentRule.active && CurrentRule.entity_table == table && to != NULL &&
		TupleWrittenByCommand(newtuple, CurrentRule.cid) && strcmp(to, CurrentRule.to_status) == 0)
		return PointerGetDatum(NULL);

	if (is_update)
	{
		d = heap_getattr(trigdata->tg_trigtuple, entry->status_attnum, tupdesc, &isnull);
		if (!isnull)
			from = OutputFunctionCall(&entry->status_out, d);
	}
	if ((from == NULL && to == NULL) || (from != NULL && to != NULL && strcmp(from, to) == 0))
		return PointerGetDatum(NULL);
	d = heap_getattr(newtuple, entry->key_attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key column \"%s\" of %s must not be null", entry->att.key_column, QualifiedRelName(table))));
	key = OutputFunctionCall(&entry->key_out, d);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	config = GetConfigOrError(table);
	if (!TransitionAllowed(config, from, to, &known))
	{
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("status \"%s\" is not a stage of %s", to, QualifiedRelName(table)),
					 errdetail("Known stages: %s.", StageList(config)),
					 errhint("Use one of the known stages or add the status to crm.status_stages.")));
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("status change from \"%s\" to \"%s\" is not allowed for %s",
						from ? from : "NULL", to ? to : "NULL", QualifiedRelName(table)),
				 errdetail("Statuses move forward only (stages: %s).", StageList(config)),
				 errhint("Allow it with a row in crm.status_transitions, or set allow_backward in crm.status_attachments.")));
	}

	values[0] = ObjectIdGetDatum(table);
	values[1] = CStringGetTextDatum(key);
	values[2] = from ? CStringGetTextDatum(from) : (Datum) 0;
	nulls[2] = from ? ' ' : 'n';
	values[3] = to ? CStringGetTextDatum(to) : (Datum) 0;
	nulls[3] = to ? ' ' : 'n';
	values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[5] = 'n';
	values[6] = CStringGetTextDatum(ManualActor());
	PrepareSharedPlans();
	ret = SPI_execute_plan(HistoryPlan, values, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * crm.status_transition_allowed(entity_table regclass, from text, to text)
 * -> boolean: the transition test the triggers use.
 */
Datum
status_transition_allowed(PG_FUNCTION_ARGS)
{
	char	   *from = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *to = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool		known;
	bool		allowed;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("entity_table must not be null")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	allowed = TransitionAllowed(GetConfigOrError(PG_GETARG_OID(0)), from, to, &known);
	SPI_finish();
	PG_RETURN_BOOL(allowed);
}

/* One enabled time rule, copied out of SPI memory */
typedef struct TimeRule
{
	int64		rule_id;
	int32		attachment_id;
	Oid			entity_table;
	char	   *from_status;
	char	   *to_status;
	TimestampTz cutoff;			/* as_of - idle_for */
} TimeRule;

/*
 * The condition "no event and no status change after $2" on entity row e,
 * for the sweep's statements.
 */
static void
AppendIdleCondition(StringInfo sql, StatusAttachment *att)
{
	const char *key = quote_identifier(att->key_column);

	if (OidIsValid(att->event_table))
		appendStringInfo(sql, " AND NOT EXISTS (SELECT 1 FROM %s v WHERE v.%s = e.%s AND v.%s > $2)",
						 QualifiedRelName(att->event_table), quote_identifier(att->ev_entity_column), key,
						 quote_identifier(att->ev_time_column));
	appendStringInfo(sql, " AND NOT EXISTS (SELECT 1 FROM crm.status_history h WHERE h.entity_table = $3"
					 " AND h.entity_key = e.%s::pg_catalog.text AND h.changed_at > $2)", key);
}

/* whether role holds privilege mode (one bit) on column col of relid, by a table or a column grant */
static bool
ColumnPrivilege(Oid relid, const char *col, Oid role, AclMode mode)
{
	AttrNumber	attnum = get_attnum(relid, col);

	if (attnum == InvalidAttrNumber)
		return false;
	return pg_class_aclcheck(relid, role, mode) == ACLCHECK_OK ||
		pg_attribute_aclcheck(relid, attnum, role, mode) == ACLCHECK_OK;
}

/*
 * May the caller run the time rules of this attachment?  The sweep runs the
 * moving statement as the table's owner, so the caller must hold, itself,
 * the rights a manual change needs: SELECT on the key and status columns and
 * UPDATE on the status column of the entity table, SELECT on the entity and
 * time columns of the event table; and no row-level security may apply to
 * it there (the owner's statement would not apply it).  Else a WARNING
 * names the table and its rules are skipped.
 */
static bool
SweepAllowed(StatusAttachment *att, Oid caller)
{
	const char *why = NULL;

	if (!ColumnPrivilege(att->entity_table, att->key_column, caller, ACL_SELECT) ||
		!ColumnPrivilege(att->entity_table, att->status_column, caller, ACL_SELECT) ||
		!ColumnPrivilege(att->entity_table, att->status_column, caller, ACL_UPDATE))
		why = "permission denied for the entity table";
	else if (OidIsValid(att->event_table) &&
			 (!ColumnPrivilege(att->event_table, att->ev_entity_column, caller, ACL_SELECT) ||
			  !ColumnPrivilege(att->event_table, att->ev_time_column, caller, ACL_SELECT)))
		why = "permission denied for the event table";
	else if (check_enable_rls(att->entity_table, caller, true) == RLS_ENABLED ||
			 (OidIsValid(att->event_table) && check_enable_rls(att->event_table, caller, true) == RLS_ENABLED))
		why = "row-level security applies to the caller";
	if (why == NULL)
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("time rules of %s skipped: %s", QualifiedRelName(att->entity_table), why),
			 errdetail("Role \"%s\" ran crm.apply_time_rules().", GetUserNameFromId(caller, false)),
			 errhint("Run the sweep as the table's owner or a role with SELECT and UPDATE on the entity table and SELECT on the event table, not subject to row-level security there.")));
	return false;
}

/* the owner of a relation */
static Oid
RelOwner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("attached table with oid %u does not exist", relid)));
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * apply one time rule: returns the number of entities moved, -1 when the
 * caller may not sweep the table (SPI connected, search_path pinned).  Per batch of locked candidates: re-check them under
 * a fresh snapshot (as the caller), move them (as the table's owner, in a
 * security-restricted operation, with the session's search_path: the
 * owner's triggers run with the owner's rights only, and any setting they
 * change is rolled back), then write the history rows (as the caller).
 */
static int64
ApplyTimeRule(TimeRule *rule, TimestampTz as_of, const char *session_path)
{
	StatusAttachment att;
	StringInfoData sql;
	char	   *ent;
	const char *key;
	const char *status;
	char	   *stype;
	Oid			arrtype;
	Oid			types[5];
	Datum		values[5];
	Oid			htypes[6] = {REGCLASSOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTARRAYOID};
	Datum		hvalues[6];
	SPIPlanPtr	recheck_plan;
	SPIPlanPtr	update_plan;
	SPIPlanPtr	history_plan;
	Portal		portal;
	Oid			caller = GetUserId();
	volatile Oid owner;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	volatile int64 moved = 0;
	bool		known;
	MemoryContext batch_cxt;
	MemoryContext outer_cxt;

	if (!TransitionAllowed(GetConfigOrError(rule->entity_table), rule->from_status, rule->to_status, &known))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("time rule %lld skipped: status change from \"%s\" to \"%s\" is not allowed for %s",
						(long long) rule->rule_id, rule->from_status, rule->to_status,
						QualifiedRelName(rule->entity_table)),
				 errhint("Allow it with a row in crm.status_transitions, or disable the rule.")));
		return 0;
	}
	LoadAttachment(rule->attachment_id, &att, CurrentMemoryContext);
	if (!SweepAllowed(&att, caller))
		return -1;
	owner = RelOwner(att.entity_table);
	ent = QualifiedRelName(att.entity_table);
	key = quote_identifier(att.key_column);
	status = quote_identifier(att.status_column);
	stype = format_type_be_qualified(att.status_type);
	arrtype = get_array_type(att.key_type);
	if (!OidIsValid(arrtype))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key column \"%s\" of %s has type %s, which has no array type",
						att.key_column, ent, format_type_be(att.key_type))));
	get_typlenbyvalalign(att.key_type, &typlen, &typbyval, &typalign);

	types[0] = TEXTOID;			/* from status */
	types[1] = TIMESTAMPTZOID;	/* cutoff */
	types[2] = REGCLASSOID;		/* entity table */
	types[3] = TEXTOID;			/* to status */
	types[4] = arrtype;			/* keys */
	values[0] = CStringGetTextDatum(rule->from_status);
	values[1] = TimestampTzGetDatum(rule->cutoff);
	values[2] = ObjectIdGetDatum(att.entity_table);
	values[3] = CStringGetTextDatum(rule->to_status);
	hvalues[0] = ObjectIdGetDatum(att.entity_table);
	hvalues[1] = values[0];
	hvalues[2] = values[3];
	hvalues[3] = TimestampTzGetDatum(as_of);
	hvalues[4] = Int64GetDatum(rule->rule_id);

	/* step 2a (caller): the locked rows that are still idle, in a fresh snapshot */
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT e.%s FROM pg_catalog.unnest($5) k(key) JOIN %s e ON e.%s = k.key "
					 "WHERE e.%s = CAST($1 AS %s)", key, ent, key, status, stype);
	AppendIdleCondition(&sql, &att);
	recheck_plan = SPI_prepare(sql.data, 5, types);
	if (recheck_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	/*
	 * step 2b (owner): move them; every name qualified, as it runs under the
	 * session's search_path
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s e SET %s = CAST($4 AS %s) FROM pg_catalog.unnest($5) k(key) "
					 "WHERE e.%s OPERATOR(pg_catalog.=) k.key AND e.%s OPERATOR(pg_catalog.=) CAST($1 AS %s) "
					 "RETURNING e.%s::pg_catalog.text, e.%s::pg_catalog.text",
					 ent, status, stype, key, status, stype, key, status);
	update_plan = SPI_prepare(sql.data, 5, types);
	if (update_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	/* step 2c (caller): the history rows of the entities the rule moved */
	history_plan = SPI_prepare("INSERT INTO crm.status_history "
							   "(entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) "
							   "SELECT $1, k.key, $2, $3, $4, $5, 'rule' FROM pg_catalog.unnest($6) k(key)",
							   6, htypes);
	if (history_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	/* step 1: the idle entities, locked as they are read, skipping locked ones */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT e.%s FROM %s e WHERE e.%s = CAST($1 AS %s)", key, ent, status, stype);
	AppendIdleCondition(&sql, &att);
	appendStringInfoString(&sql, " FOR NO KEY UPDATE OF e SKIP LOCKED");
	portal = SPI_cursor_open_with_args(NULL, sql.data, 3, types, values, NULL, false, 0);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "crm_analytics sweep batch", ALLOCSET_DEFAULT_SIZES);
	outer_cxt = MemoryContextSwitchTo(batch_cxt);

	for (;;)
	{
		uint64		n;
		uint64		i;
		Datum	   *keys;
		Datum	   *moved_keys;
		int			nmoved = 0;
		ArrayType  *arr;
		int			ret;
		Oid			save_userid;
		int			save_sec_context;
		int			save_nestlevel;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(batch_cxt);
		SPI_cursor_fetch(portal, true, SWEEP_BATCH);
		n = SPI_processed;
		if (n == 0)
			break;
		keys = palloc(sizeof(Datum) * n);
		for (i = 0; i < n; i++)
		{
			bool		isnull;

			keys[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		}
		arr = construct_array(keys, (int) n, att.key_type, typlen, typbyval, typalign);
		SPI_freetuptable(SPI_tuptable);

		/* 2a */
		values[4] = PointerGetDatum(arr);
		ret = SPI_execute_plan(recheck_plan, values, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
		n = SPI_processed;
		for (i = 0; i < n; i++)
		{
			bool		isnull;

			keys[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		}
		arr = construct_array(keys, (int) n, att.key_type, typlen, typbyval, typalign);
		SPI_freetuptable(SPI_tuptable);
		if (n == 0)
			continue;
		values[4] = PointerGetDatum(arr);

		/* 2b, as the owner */
		GetUserIdAndSecContext(&save_userid, &save_sec_context);
		save_nestlevel = NewGUCNestLevel();
		(void) set_config_option("search_path", session_path, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		SetUserIdAndSecContext(owner, save_sec_context | SECURITY_RESTRICTED_OPERATION);
		{
			RuleContext saved = CurrentRule;

			CurrentRule.active = true;
			CurrentRule.entity_table = att.entity_table;
			CurrentRule.to_status = rule->to_status;
			CurrentRule.reader = caller;
			RuleDepth++;
			PG_TRY();
			{
				CommandCounterIncrement();
				CurrentRule.cid = GetCurrentCommandId(false);
				ret = SPI_execute_plan(update_plan, values, NULL, false, 0);
				if (ret != SPI_OK_UPDATE_RETURNING)
					elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
			}
			PG_FINALLY();
			{
				RuleDepth--;
				CurrentRule = saved;
			}
			PG_END_TRY();
		}
		/* roll back any setting the owner's code changed, restore the caller */
		AtEOXact_GUC(false, save_nestlevel);
		SetUserIdAndSecContext(save_userid, save_sec_context);

		/* 2c: the rows that got the rule's status (a user's BEFORE trigger may have put another) */
		moved_keys = palloc(sizeof(Datum) * Max(SPI_processed, 1));
		for (i = 0; i < SPI_processed; i++)
		{
			char	   *st = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

			if (st != NULL && strcmp(st, rule->to_status) == 0)
				moved_keys[nmoved++] = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		}
		SPI_freetuptable(SPI_tuptable);
		if (nmoved > 0)
		{
			hvalues[5] = PointerGetDatum(construct_array(moved_keys, nmoved, TEXTOID, -1, false, TYPALIGN_INT));
			ret = SPI_execute_plan(history_plan, hvalues, NULL, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
			moved += nmoved;
		}
	}
	MemoryContextSwitchTo(outer_cxt);
	MemoryContextDelete(batch_cxt);
	SPI_cursor_close(portal);
	SPI_freeplan(recheck_plan);
	SPI_freeplan(update_plan);
	SPI_freeplan(history_plan);
	pfree(sql.data);
	return moved;
}

/*
 * crm.apply_time_rules(as_of timestamptz default now()) -> int
 *
 * Every enabled time rule, by attachment and then priority (highest first):
 * entities in from_status with no event and no status change after
 * as_of - idle_for move to to_status (history changed_at = as_of).  A second
 * run with the same as_of finds nothing to do; rows another session holds
 * are skipped (a later run picks them up).  The function has no SET clause:
 * it pins search_path itself for its own statements and gives the session's
 * path to the user's triggers (see ApplyTimeRule).
 */
Datum
status_apply_time_rules(PG_FUNCTION_ARGS)
{
	TimestampTz as_of;
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	TimeRule   *rules;
	uint64		nrules;
	uint64		i;
	int64		total = 0;
	int			ret;
	char	   *session_path;
	int			level;
	int32		skipped = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("as_of must not be null"),
				 errhint("Omit it to use now().")));
	as_of = PG_GETARG_TIMESTAMPTZ(0);
	if (TIMESTAMP_NOT_FINITE(as_of))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("as_of must be finite")));

	session_path = pstrdup(namespace_search_path ? namespace_search_path : "");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	level = PinSearchPath();
	values[0] = TimestampTzGetDatum(as_of);
	ret = SPI_execute_with_args("SELECT r.rule_id, a.attachment_id, r.entity_table::oid, r.from_status, r.to_status, "
								"$1 - r.idle_for "
								"FROM crm.status_time_rules r "
								"JOIN crm.status_attachments a ON a.entity_table = r.entity_table "
								"WHERE r.enabled ORDER BY a.attachment_id, r.priority DESC, r.rule_id",
								1, argtypes, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	nrules = SPI_processed;
	rules = palloc0(sizeof(TimeRule) * Max(nrules, 1));
	for (i = 0; i < nrules; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		rules[i].rule_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		rules[i].attachment_id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		rules[i].entity_table = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		rules[i].from_status = SPI_getvalue(tup, desc, 4);
		rules[i].to_status = SPI_getvalue(tup, desc, 5);
		rules[i].cutoff = DatumGetTimestampTz(SPI_getbinval(tup, desc, 6, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);

	for (i = 0; i < nrules; i++)
	{
		int64		moved;

		/* a table the caller may not sweep: one warning, its other rules skipped too */
		if (i > 0 && rules[i].attachment_id == skipped)
			continue;
		moved = ApplyTimeRule(&rules[i], as_of, session_path);
		if (moved < 0)
			skipped = rules[i].attachment_id;
		else
			total += moved;
	}

	UnpinSearchPath(level);
	SPI_finish();
	if (total > PG_INT32_MAX)
		total = PG_INT32_MAX;
	PG_RETURN_INT32((int32) total);
}
