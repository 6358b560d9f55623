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
 *    entity table.  A change made by a rule is recorded with the rule id and
 *    actor 'rule'; any other change is a manual one: it must be an allowed
 *    transition (else an error) and is recorded with the person as actor.
 *  - status_apply_time_rules: for each time rule, locks the idle entities
 *    with SKIP LOCKED, re-checks them under a fresh snapshot and moves them.
 *
 * Loops: a rule-driven change runs with a depth counter raised; an event
 * inserted at depth >= max_depth (by a user trigger reacting to the change)
 * is stored but applies no rule.
 *
 * All SQL is built from catalog names through quote_identifier and kept as
 * prepared SPI plans (per trigger, in a backend-local hash table).
 */
#include "crm_analytics.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(status_event_trigger);
PG_FUNCTION_INFO_V1(status_entity_trigger);
PG_FUNCTION_INFO_V1(status_apply_time_rules);
PG_FUNCTION_INFO_V1(status_transition_allowed);

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

/* What a trigger needs, cached per pg_trigger oid */
typedef struct TriggerCacheEntry
{
	Oid			tgoid;			/* hash key */
	bool		valid;
	StatusAttachment att;
	/* entity trigger: columns of the entity table */
	AttrNumber	key_attnum;
	AttrNumber	status_attnum;
	FmgrInfo	key_out;
	FmgrInfo	status_out;
	/* event trigger: columns of the event table and plans */
	AttrNumber	ev_entity_attnum;
	AttrNumber	ev_type_attnum;
	AttrNumber	ev_time_attnum;
	FmgrInfo	ev_type_out;
	SPIPlanPtr	lock_plan;		/* current status of the entity, locked */
	SPIPlanPtr	rule_plan;		/* the applicable event rule */
	SPIPlanPtr	update_plan;	/* set the entity's status */
} TriggerCacheEntry;

/* The change being made by a rule right now (read by the entity trigger) */
typedef struct RuleContext
{
	bool		active;
	Oid			entity_table;
	int64		rule_id;
	TimestampTz changed_at;
} RuleContext;

static HTAB *TriggerCache = NULL;
static RuleContext CurrentRule = {false, InvalidOid, 0, 0};
static int	RuleDepth = 0;
static SPIPlanPtr HistoryPlan = NULL;
static SPIPlanPtr CheckPlan = NULL;

/*
 * The transition test shared by the manual-change check and the rule lookup:
 * an explicit crm.status_transitions row wins; else moving from NULL or from
 * an unknown status is allowed, and so is a forward move (higher position),
 * and a backward one with allow_backward.  sf/st/t/a are the joined rows.
 */
#define TRANSITION_ALLOWED_SQL(from) \
	"coalesce(t.allowed, " from " IS NULL OR sf.status IS NULL OR a.allow_backward " \
	"OR st.position > sf.position, false)"

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

/* prepare sql and keep the plan for the life of the backend */
static SPIPlanPtr
PrepareKept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/* the kept plans that do not depend on an attachment (SPI connected) */
static void
PrepareSharedPlans(void)
{
	if (HistoryPlan == NULL)
	{
		Oid			types[7] = {REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTOID};

		HistoryPlan = PrepareKept("INSERT INTO crm.status_history "
								  "(entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, types);
	}
	if (CheckPlan == NULL)
	{
		Oid			types[3] = {REGCLASSOID, TEXTOID, TEXTOID};

		CheckPlan = PrepareKept("SELECT ($3 IS NULL OR st.status IS NOT NULL), "
								TRANSITION_ALLOWED_SQL("$2") ", "
								"(SELECT string_agg(s.status, ', ' ORDER BY s.position) "
								"   FROM crm.status_stages s WHERE s.entity_table = a.entity_table) "
								"FROM crm.status_attachments a "
								"LEFT JOIN crm.status_stages sf ON sf.entity_table = a.entity_table AND sf.status = $2 "
								"LEFT JOIN crm.status_stages st ON st.entity_table = a.entity_table AND st.status = $3 "
								"LEFT JOIN crm.status_transitions t ON t.entity_table = a.entity_table "
								"      AND t.from_status = $2 AND t.to_status = $3 "
								"WHERE a.entity_table = $1", 3, types);
	}
}

/*
 * Run the transition check for (entity_table, from, to), SPI connected.
 * Returns true when allowed; *known says whether to is a known status (or
 * NULL), *stages lists the known statuses.  Errors when not attached.
 */
static bool
CheckTransition(Oid entity_table, const char *from, const char *to, bool *known, char **stages)
{
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	bool		allowed;
	int			ret;

	PrepareSharedPlans();
	values[0] = ObjectIdGetDatum(entity_table);
	values[1] = from ? CStringGetTextDatum(from) : (Datum) 0;
	values[2] = to ? CStringGetTextDatum(to) : (Datum) 0;
	if (!from)
		nulls[1] = 'n';
	if (!to)
		nulls[2] = 'n';
	ret = SPI_execute_plan(CheckPlan, values, nulls, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table %s has no automatic status attached", QualifiedRelName(entity_table)),
				 errhint("Call crm.attach_auto_status() for the table first.")));
	*known = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	allowed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (stages)
		*stages = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	return allowed && *known;
}

/* the cache entry of the firing trigger, built on first use (SPI connected) */
static TriggerCacheEntry *
GetTriggerEntry(TriggerData *trigdata, bool for_events)
{
	Trigger    *trigger = trigdata->tg_trigger;
	TriggerCacheEntry *entry;
	bool		found;
	int32		attachment_id;
	char	   *end;
	long		v;

	if (TriggerCache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(TriggerCacheEntry);
		TriggerCache = hash_create("crm_analytics status triggers", 32, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(TriggerCache, &trigger->tgoid, HASH_ENTER, &found);
	if (!found)
	{
		memset(((char *) entry) + sizeof(Oid), 0, sizeof(TriggerCacheEntry) - sizeof(Oid));
		entry->valid = false;
	}
	if (entry->valid)
		return entry;

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

	/* forget plans of an earlier, failed build */
	if (entry->lock_plan)
		SPI_freeplan(entry->lock_plan);
	if (entry->rule_plan)
		SPI_freeplan(entry->rule_plan);
	if (entry->update_plan)
		SPI_freeplan(entry->update_plan);
	entry->lock_plan = entry->rule_plan = entry->update_plan = NULL;

	LoadAttachment(attachment_id, &entry->att, TopMemoryContext);
	PrepareSharedPlans();

	if (!for_events)
	{
		Oid			outfn;
		bool		isvarlena;

		if (RelationGetRelid(trigdata->tg_relation) != entry->att.entity_table)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" is on %s but attachment %d is for %s", trigger->tgname,
							QualifiedRelName(RelationGetRelid(trigdata->tg_relation)), attachment_id,
							QualifiedRelName(entry->att.entity_table))));
		entry->key_attnum = AttachedColumn(entry->att.entity_table, entry->att.key_column, NULL);
		entry->status_attnum = AttachedColumn(entry->att.entity_table, entry->att.status_column, NULL);
		getTypeOutputInfo(entry->att.key_type, &outfn, &isvarlena);
		fmgr_info_cxt(outfn, &entry->key_out, TopMemoryContext);
		getTypeOutputInfo(entry->att.status_type, &outfn, &isvarlena);
		fmgr_info_cxt(outfn, &entry->status_out, TopMemoryContext);
	}
	else
	{
		Oid			outfn;
		bool		isvarlena;
		Oid			ev_type_type;
		char	   *ent = QualifiedRelName(entry->att.entity_table);
		const char *key = quote_identifier(entry->att.key_column);
		const char *status = quote_identifier(entry->att.status_column);
		char	   *stype = format_type_be_qualified(entry->att.status_type);
		StringInfoData sql;
		Oid			types[4];

		if (RelationGetRelid(trigdata->tg_relation) != entry->att.event_table)
			ereport(ERROR,
					(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
					 errmsg("trigger \"%s\" is not on the event table of attachment %d", trigger->tgname,
							attachment_id)));
		entry->ev_entity_attnum = AttachedColumn(entry->att.event_table, entry->att.ev_entity_column, NULL);
		entry->ev_type_attnum = AttachedColumn(entry->att.event_table, entry->att.ev_type_column, &ev_type_type);
		entry->ev_time_attnum = AttachedColumn(entry->att.event_table, entry->att.ev_time_column, NULL);
		getTypeOutputInfo(ev_type_type, &outfn, &isvarlena);
		fmgr_info_cxt(outfn, &entry->ev_type_out, TopMemoryContext);

		initStringInfo(&sql);
		appendStringInfo(&sql, "SELECT e.%s::pg_catalog.text FROM %s e WHERE e.%s = $1 FOR NO KEY UPDATE OF e",
						 status, ent, key);
		types[0] = entry->att.ev_entity_type;
		entry->lock_plan = PrepareKept(sql.data, 1, types);

		resetStringInfo(&sql);
		appendStringInfo(&sql, "UPDATE %s e SET %s = CAST($2 AS %s) WHERE e.%s = $1", ent, status, stype, key);
		types[1] = TEXTOID;
		entry->update_plan = PrepareKept(sql.data, 2, types);

		resetStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT r.rule_id, r.to_status, a.max_depth, CAST($4 AS pg_catalog.timestamptz) "
						 "FROM crm.status_event_rules r "
						 "JOIN crm.status_attachments a ON a.entity_table = r.entity_table "
						 "JOIN crm.status_stages st ON st.entity_table = r.entity_table AND st.status = r.to_status "
						 "LEFT JOIN crm.status_stages sf ON sf.entity_table = r.entity_table AND sf.status = $3 "
						 "LEFT JOIN crm.status_transitions t ON t.entity_table = r.entity_table "
						 "      AND t.from_status = $3 AND t.to_status = r.to_status "
						 "WHERE r.entity_table = $1 AND r.event_type = $2 AND r.enabled "
						 "  AND (r.from_statuses IS NULL OR $3 = ANY (r.from_statuses)) "
						 "  AND r.to_status IS DISTINCT FROM $3 "
						 "  AND " TRANSITION_ALLOWED_SQL("$3") " "
						 "ORDER BY r.priority DESC, r.rule_id LIMIT 1");
		types[0] = REGCLASSOID;
		types[1] = TEXTOID;
		types[2] = TEXTOID;
		types[3] = entry->att.ev_time_type;
		entry->rule_plan = PrepareKept(sql.data, 4, types);
		pfree(sql.data);
	}
	entry->valid = true;
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

/*
 * status_event_trigger: an event row was inserted.  Lock its entity, find the
 * applicable event rule and apply it (once).  Events for entities that do not
 * exist (or a NULL entity reference) are stored and ignored; a NULL event
 * type or time is an error.
 */
Datum
status_event_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = CheckTriggerCall(fcinfo, "crm.status_event_trigger", false);
	HeapTuple	tuple = trigdata->tg_trigtuple;
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	TriggerCacheEntry *entry;
	Datum		entity;
	Datum		evtype;
	Datum		evtime;
	bool		isnull;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *current;
	int64		rule_id;
	Datum		to_status;
	int32		max_depth;
	TimestampTz changed_at;
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

	/* lock the entity row: events of one entity and the sweep serialise here */
	values[0] = entity;
	ret = SPI_execute_plan(entry->lock_plan, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		/* no such entity: the event is kept, no rule applies */
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	current = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

	values[0] = ObjectIdGetDatum(entry->att.entity_table);
	values[1] = CStringGetTextDatum(OutputFunctionCall(&entry->ev_type_out, evtype));
	values[2] = current ? CStringGetTextDatum(current) : (Datum) 0;
	nulls[2] = current ? ' ' : 'n';
	values[3] = evtime;
	ret = SPI_execute_plan(entry->rule_plan, values, nulls, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	rule_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	to_status = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	max_depth = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	changed_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));

	if (RuleDepth >= max_depth)
	{
		ereport(WARNING,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("automatic status rule %lld not applied: rule chain depth %d reached",
						(long long) rule_id, max_depth),
				 errdetail("The event was inserted while a rule was changing a status of %s.",
						   QualifiedRelName(entry->att.entity_table)),
				 errhint("Raise max_depth in crm.status_attachments if the chain is intended.")));
		SPI_finish();
		return PointerGetDatum(NULL);
	}

	/* apply the rule; the entity trigger records it as this rule's change */
	{
		RuleContext saved = CurrentRule;

		values[0] = entity;
		values[1] = to_status;
		nulls[0] = nulls[1] = ' ';
		CurrentRule.active = true;
		CurrentRule.entity_table = entry->att.entity_table;
		CurrentRule.rule_id = rule_id;
		CurrentRule.changed_at = changed_at;
		RuleDepth++;
		PG_TRY();
		{
			ret = SPI_execute_plan(entry->update_plan, values, nulls, false, 0);
			if (ret != SPI_OK_UPDATE)
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

/*
 * status_entity_trigger: a row of the entity table was inserted with a
 * status, or its status changed.  Checks manual changes against the allowed
 * transitions and writes the one history row.
 */
Datum
status_entity_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = CheckTriggerCall(fcinfo, "crm.status_entity_trigger", true);
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	Oid			relid = RelationGetRelid(trigdata->tg_relation);
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event);
	HeapTuple	newtuple = is_update ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	TriggerCacheEntry *entry;
	char	   *from = NULL;
	char	   *to = NULL;
	char	   *key;
	Datum		d;
	bool		isnull;
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		by_rule;
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	entry = GetTriggerEntry(trigdata, false);

	d = heap_getattr(newtuple, entry->status_attnum, tupdesc, &isnull);
	if (!isnull)
		to = OutputFunctionCall(&entry->status_out, d);
	if (is_update)
	{
		d = heap_getattr(trigdata->tg_trigtuple, entry->status_attnum, tupdesc, &isnull);
		if (!isnull)
			from = OutputFunctionCall(&entry->status_out, d);
	}
	if ((from == NULL && to == NULL) || (from != NULL && to != NULL && strcmp(from, to) == 0))
	{
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	d = heap_getattr(newtuple, entry->key_attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key column \"%s\" of %s must not be null", entry->att.key_column, QualifiedRelName(relid))));
	key = OutputFunctionCall(&entry->key_out, d);

	by_rule = CurrentRule.active && CurrentRule.entity_table == relid;
	if (!by_rule)
	{
		bool		known;
		char	   *stages = NULL;

		if (!CheckTransition(relid, from, to, &known, &stages))
		{
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("status \"%s\" is not a stage of %s", to, QualifiedRelName(relid)),
						 errdetail("Known stages: %s.", stages ? stages : ""),
						 errhint("Use one of the known stages or add the status to crm.status_stages.")));
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("status change from \"%s\" to \"%s\" is not allowed for %s",
							from ? from : "NULL", to ? to : "NULL", QualifiedRelName(relid)),
					 errdetail("Statuses move forward only (stages: %s).", stages ? stages : ""),
					 errhint("Allow it with a row in crm.status_transitions, or set allow_backward in crm.status_attachments.")));
		}
	}

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(key);
	values[2] = from ? CStringGetTextDatum(from) : (Datum) 0;
	nulls[2] = from ? ' ' : 'n';
	values[3] = to ? CStringGetTextDatum(to) : (Datum) 0;
	nulls[3] = to ? ' ' : 'n';
	if (by_rule)
	{
		values[4] = TimestampTzGetDatum(CurrentRule.changed_at);
		values[5] = Int64GetDatum(CurrentRule.rule_id);
		values[6] = CStringGetTextDatum("rule");
	}
	else
	{
		values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		nulls[5] = 'n';
		values[6] = CStringGetTextDatum(ManualActor());
	}
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
	allowed = CheckTransition(PG_GETARG_OID(0), from, to, &known, NULL);
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

/* apply one time rule: returns the number of entities moved (SPI connected) */
static int64
ApplyTimeRule(TimeRule *rule, TimestampTz as_of)
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
	SPIPlanPtr	update_plan;
	Portal		portal;
	volatile int64 moved = 0;
	bool		known;
	char	   *stages;

	if (!CheckTransition(rule->entity_table, rule->from_status, rule->to_status, &known, &stages))
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

	types[0] = TEXTOID;			/* from status */
	types[1] = TIMESTAMPTZOID;	/* cutoff */
	types[2] = REGCLASSOID;		/* entity table */
	types[3] = TEXTOID;			/* to status */
	types[4] = arrtype;			/* locked keys */
	values[0] = CStringGetTextDatum(rule->from_status);
	values[1] = TimestampTzGetDatum(rule->cutoff);
	values[2] = ObjectIdGetDatum(att.entity_table);
	values[3] = CStringGetTextDatum(rule->to_status);

	/* step 2: with a fresh snapshot, re-check the locked rows and move them */
	initStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s e SET %s = CAST($4 AS %s) FROM pg_catalog.unnest($5) k(key) "
					 "WHERE e.%s = k.key AND e.%s = CAST($1 AS %s)",
					 ent, status, stype, key, status, stype);
	AppendIdleCondition(&sql, &att);
	update_plan = SPI_prepare(sql.data, 5, types);
	if (update_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	/* step 1: the idle entities, locked as they are read, skipping locked ones */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT e.%s FROM %s e WHERE e.%s = CAST($1 AS %s)", key, ent, status, stype);
	AppendIdleCondition(&sql, &att);
	appendStringInfoString(&sql, " FOR NO KEY UPDATE OF e SKIP LOCKED");
	portal = SPI_cursor_open_with_args(NULL, sql.data, 3, types, values, NULL, false, 0);

	for (;;)
	{
		uint64		n;
		uint64		i;
		Datum	   *keys;
		ArrayType  *arr;
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			ret;

		CHECK_FOR_INTERRUPTS();
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
		get_typlenbyvalalign(att.key_type, &typlen, &typbyval, &typalign);
		arr = construct_array(keys, (int) n, att.key_type, typlen, typbyval, typalign);
		values[4] = PointerGetDatum(arr);

		{
			RuleContext saved = CurrentRule;

			CurrentRule.active = true;
			CurrentRule.entity_table = att.entity_table;
			CurrentRule.rule_id = rule->rule_id;
			CurrentRule.changed_at = as_of;
			RuleDepth++;
			PG_TRY();
			{
				ret = SPI_execute_plan(update_plan, values, NULL, false, 0);
				if (ret != SPI_OK_UPDATE)
					elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
				moved += SPI_processed;
			}
			PG_FINALLY();
			{
				RuleDepth--;
				CurrentRule = saved;
			}
			PG_END_TRY();
		}
		pfree(keys);
		pfree(arr);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(update_plan);
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
 * are skipped (a later run picks them up).
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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
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
		total += ApplyTimeRule(&rules[i], as_of);

	SPI_finish();
	if (total > PG_INT32_MAX)
		total = PG_INT32_MAX;
	PG_RETURN_INT32((int32) total);
}
