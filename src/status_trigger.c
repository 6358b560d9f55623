/*
 * status_trigger.c
 *      Automatic statuses (docs/auto-status.md): the two row triggers that
 *      crm.attach_auto_status() installs on the user's own tables.
 *
 *  - status_event_trigger: AFTER INSERT row trigger on the event table.  In
 *    four steps (read event, pick rule, lock, apply) with one exit path: it
 *    locks the entity row (FOR NO KEY UPDATE, so events of one entity and
 *    the sweep serialise on it), picks the one applicable event rule with the
 *    highest priority and updates the entity's status.
 *  - status_entity_trigger: AFTER INSERT / UPDATE OF status row trigger on the
 *    entity table.  A change made by a rule's own statement (recognised by
 *    the command id that wrote the row version, and the status the rule set)
 *    is recorded by that statement; any other change, including one made by
 *    the user's triggers while a rule runs, is a manual one: it must be an
 *    allowed transition (else an error) and is recorded with the person as
 *    actor.
 *
 * Loops: a rule-driven change runs with a depth counter raised; an event
 * inserted at depth >= max_depth (by a user trigger reacting to the change)
 * is stored but applies no rule.
 * See src/status.h for the layout of the status files and the naming rule.
 */
#include "status.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(status_event_trigger);
PG_FUNCTION_INFO_V1(status_entity_trigger);

RuleContext StatusCurrentRule = {false, InvalidOid, InvalidCommandId, NULL, InvalidOid};
int			StatusRuleDepth = 0;

static SPIPlanPtr HistoryPlan = NULL;

/* the kept plan that does not depend on an attachment (SPI connected) */
static void
PrepareSharedPlans(void)
{
	if (HistoryPlan == NULL)
	{
		int			level = StatusPinSearchPath();
		Oid			types[7] = {REGCLASSOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTOID};

		HistoryPlan = CrmPrepareKept("crm_analytics auto-status", "INSERT INTO crm.status_history "
								  "(entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, types);
		StatusUnpinSearchPath(level);
	}
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

/* one inserted event, as the event trigger reads it */
typedef struct StatusEvent
{
	TriggerData *trigdata;
	TriggerCacheEntry *entry;
	Datum		entity;
	Datum		evtime;
	char	   *event_type;
	char	   *current;		/* the entity's status once locked (NULL: none) */
} StatusEvent;

/*
 * Read event: the entity, type and time of the inserted row (SPI
 * connected).  False for a NULL entity reference (the event is kept, no rule
 * applies); a NULL type or time is an error.
 */
static bool
ReadEvent(TriggerData *trigdata, StatusEvent *ev)
{
	HeapTuple	tuple = trigdata->tg_trigtuple;
	TupleDesc	tupdesc = RelationGetDescr(trigdata->tg_relation);
	TriggerCacheEntry *entry = StatusGetTriggerEntry(trigdata, true);
	Datum		evtype;
	bool		isnull;

	ev->trigdata = trigdata;
	ev->entry = entry;
	ev->current = NULL;
	ev->entity = heap_getattr(tuple, entry->ev_entity_attnum, tupdesc, &isnull);
	if (isnull)
		return false;
	evtype = heap_getattr(tuple, entry->ev_type_attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event type must not be null"),
				 errdetail("Column \"%s\" of %s is the event type of automatic status attachment %d.",
						   entry->att.ev_type_column, StatusQualifiedRelName(entry->att.event_table),
						   entry->att.attachment_id),
				 errhint("Give every event a type, or add a NOT NULL constraint to the column.")));
	ev->evtime = heap_getattr(tuple, entry->ev_time_attnum, tupdesc, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event time must not be null"),
				 errdetail("Column \"%s\" of %s is the event time of automatic status attachment %d.",
						   entry->att.ev_time_column, StatusQualifiedRelName(entry->att.event_table),
						   entry->att.attachment_id),
				 errhint("Give every event a time, e.g. with DEFAULT now().")));
	ev->event_type = OutputFunctionCall(&entry->ev_type_out, evtype);
	return true;
}

/* whether an enabled rule of the attachment reacts to the event's type */
static bool
HasRuleForType(StatusEvent *ev)
{
	AttachmentConfig *config = StatusGetConfigOrError(ev->entry->att.entity_table);
	int			i;

	for (i = 0; i < config->nrules; i++)
		if (strcmp(config->rules[i].event_type, ev->event_type) == 0)
			return true;
	return false;
}

/*
 * Lock: lock the entity row and read its status into ev->current; events of
 * one entity and the sweep serialise here (directly through the key's
 * unique index when possible, see pg_lock.c, else with the lock plan).
 * False when there is no such entity (the event is kept, no rule applies).
 */
static bool
LockEventEntity(StatusEvent *ev)
{
	int			found;

	/*
	 * The entity table is locked from here to the end of the transaction, so
	 * its columns cannot change under us; an ALTER committed before is seen
	 * now (the lock accepts pending invalidations) and rebuilds the entry.
	 */
	LockRelationOid(ev->entry->att.entity_table, RowShareLock);
	if (!ev->entry->valid)
		ev->entry = StatusGetTriggerEntry(ev->trigdata, true);

	found = StatusLockEntity(ev->entry, ev->entity, &ev->current);
	if (found < 0)
	{
		Datum		values[1];
		int			ret;

		values[0] = ev->entity;
		ret = SPI_execute_plan(ev->entry->lock_plan, values, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
		found = (SPI_processed > 0);
		ereport(DEBUG1,
				(errmsg_internal("entity row of %s locked with the kept lock statement",
								 get_rel_name(ev->entry->att.entity_table))));
		if (found)
			ev->current = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	}
	return found > 0;
}

/* whether rule r applies to an entity in status current (NULL: none) */
static bool
RuleMatches(AttachmentConfig *config, EventRule *r, const char *event_type, const char *current)
{
	bool		known;

	if (strcmp(r->event_type, event_type) != 0)
		return false;
	if (r->nfrom >= 0)
	{
		bool		match = false;
		int			j;

		for (j = 0; current != NULL && j < r->nfrom && !match; j++)
			match = (strcmp(r->from[j], current) == 0);
		if (!match)
			return false;
	}
	if (current != NULL && strcmp(r->to, current) == 0)
		return false;
	return StatusTransitionAllowed(config, current, r->to, &known);
}

/*
 * Pick rule: the first enabled rule for the event's type (by priority, then
 * rule id) that matches the locked entity's status and whose move is
 * allowed.  False when there is none, or (with a WARNING) when the rule
 * chain is already max_depth deep.  *to is a copy: the cached configuration
 * may be reloaded while the rule is applied.
 */
static bool
PickRule(StatusEvent *ev, int64 *rule_id, char **to)
{
	/* the configuration may have been reloaded by the lock query's catalog access */
	AttachmentConfig *config = StatusGetConfigOrError(ev->entry->att.entity_table);
	EventRule  *rule = NULL;
	int			i;

	for (i = 0; i < config->nrules && rule == NULL; i++)
		if (RuleMatches(config, &config->rules[i], ev->event_type, ev->current))
			rule = &config->rules[i];
	if (rule == NULL)
		return false;
	if (StatusRuleDepth >= config->max_depth)
	{
		ereport(WARNING,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("automatic status rule %lld not applied: rule chain depth %d reached",
						(long long) rule->rule_id, config->max_depth),
				 errdetail("The event was inserted while a rule was changing a status of %s.",
						   StatusQualifiedRelName(ev->entry->att.entity_table)),
				 errhint("Raise max_depth in crm.status_attachments if the chain is intended.")));
		return false;
	}
	*rule_id = rule->rule_id;
	*to = pstrdup(rule->to);
	return true;
}

/* error context of a rule's statement (the user's triggers run inside it) */
static void
RuleErrorContext(void *arg)
{
	errcontext("event rule %lld in crm.status_event_trigger()", (long long) *(int64 *) arg);
}

/*
 * Apply: one statement updates the entity and writes its history row; the
 * entity trigger sees the row this statement wrote with the rule's status
 * and leaves it alone.
 */
static void
ApplyRule(StatusEvent *ev, int64 rule_id, char *to)
{
	TriggerCacheEntry *entry = ev->entry;
	RuleContext saved = StatusCurrentRule;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	int			ret;
	ErrorContextCallback errcb;

	values[0] = ev->entity;
	values[1] = CStringGetTextDatum(to);
	values[2] = ObjectIdGetDatum(entry->att.entity_table);
	values[3] = ev->current ? CStringGetTextDatum(ev->current) : (Datum) 0;
	nulls[3] = ev->current ? ' ' : 'n';
	values[4] = TimestampTzGetDatum(EventTimeAsTimestampTz(ev->evtime, entry->ev_time_type));
	values[5] = Int64GetDatum(rule_id);
	StatusCurrentRule.active = true;
	StatusCurrentRule.entity_table = entry->att.entity_table;
	StatusCurrentRule.to_status = to;
	errcb.callback = RuleErrorContext;
	errcb.arg = &rule_id;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	StatusRuleDepth++;
	PG_TRY();
	{
		/*
		 * the statement runs with the command id current after this
		 * increment (SPI's own increment is then a no-op)
		 */
		CommandCounterIncrement();
		StatusCurrentRule.cid = GetCurrentCommandId(false);
		ret = SPI_execute_plan(entry->update_plan, values, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
	PG_FINALLY();
	{
		StatusRuleDepth--;
		StatusCurrentRule = saved;
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;
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
	TriggerData *trigdata = StatusCheckTriggerCall(fcinfo, "crm.status_event_trigger", false);
	StatusEvent ev;
	int64		rule_id;
	char	   *to;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* an event with no rule for its type cannot change a status: no lock */
	if (ReadEvent(trigdata, &ev) && HasRuleForType(&ev) && LockEventEntity(&ev) &&
		PickRule(&ev, &rule_id, &to))
		ApplyRule(&ev, rule_id, to);
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
 * status_entity_trigger: a row of the entity table (or of one of its
 * partitions) was inserted with a status, or its status changed.  Leaves the
 * rows a rule's statement moved to the rule's status alone (that statement
 * writes their history rows); every other change is a manual one: checked
 * against the allowed transitions and recorded with the person as actor.
 */
Datum
status_entity_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = StatusCheckTriggerCall(fcinfo, "crm.status_entity_trigger", true);
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

	entry = StatusGetTriggerEntry(trigdata, false);
	table = entry->att.entity_table;
	d = heap_getattr(newtuple, entry->status_attnum, tupdesc, &isnull);
	if (!isnull)
		to = OutputFunctionCall(&entry->status_out, d);

	/* the row a rule's statement moved to the rule's status: recorded there */
	if (is_update && StatusCurrentRule.active && StatusCurrentRule.entity_table == table && to != NULL &&
		StatusTupleWrittenByCommand(newtuple, StatusCurrentRule.cid) && strcmp(to, StatusCurrentRule.to_status) == 0)
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
				 errmsg("key column \"%s\" of %s must not be null", entry->att.key_column, StatusQualifiedRelName(table))));
	key = OutputFunctionCall(&entry->key_out, d);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	config = StatusGetConfigOrError(table);
	if (!StatusTransitionAllowed(config, from, to, &known))
	{
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("status \"%s\" is not a stage of %s", to, StatusQualifiedRelName(table)),
					 errdetail("Known stages: %s.", StatusStageList(config)),
					 errhint("Use one of the known stages or add the status to crm.status_stages.")));
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("status change from \"%s\" to \"%s\" is not allowed for %s",
						from ? from : "NULL", to ? to : "NULL", StatusQualifiedRelName(table)),
				 errdetail("Statuses move forward only (stages: %s).", StatusStageList(config)),
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
