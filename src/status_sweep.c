/*
 * status_sweep.c
 *      Automatic statuses (docs/auto-status.md): the time-rule sweep
 *      crm.apply_time_rules().
 *
 * For each time rule, the sweep locks the idle entities with SKIP LOCKED,
 * re-checks them under a fresh snapshot and moves them; the statement that
 * moves them (and so the user's triggers on the table) runs as the table's
 * owner in a security-restricted operation, with the session's search_path
 * (the switches are in pg_user_context.c).  The caller must hold, itself,
 * the rights a manual change needs (SweepAllowed).
 * See src/status.h for the layout of the status files and the naming rule.
 */
#include "status.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rls.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(status_apply_time_rules);

/* rows locked and moved per batch by the sweep */
#define SWEEP_BATCH 10000

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
						 StatusQualifiedRelName(att->event_table), quote_identifier(att->ev_entity_column), key,
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
			 errmsg("time rules of %s skipped: %s", StatusQualifiedRelName(att->entity_table), why),
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

/* one time rule being applied: its attachment, the roles and the plans of its steps */
typedef struct Sweep
{
	TimeRule   *rule;
	StatusAttachment att;
	Oid			caller;
	Oid			owner;
	const char *session_path;
	int16		typlen;			/* of the key type */
	bool		typbyval;
	char		typalign;
	SPIPlanPtr	recheck_plan;	/* step 2a */
	SPIPlanPtr	update_plan;	/* step 2b */
	SPIPlanPtr	history_plan;	/* step 2c */
	Oid			types[5];		/* arguments of steps 1, 2a and 2b */
	Datum		values[5];
	Datum		hvalues[6];		/* arguments of step 2c */
} Sweep;

/* a prepared statement of the sweep, or an error */
static SPIPlanPtr
SweepPrepare(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * The attachment, the arguments and the plans of steps 2a, 2b and 2c of one
 * time rule (SPI connected, search_path pinned).
 */
static void
SweepSetup(Sweep *sw, TimeRule *rule, TimestampTz as_of)
{
	StatusAttachment *att = &sw->att;
	StringInfoData sql;
	char	   *ent = StatusQualifiedRelName(att->entity_table);
	const char *key = quote_identifier(att->key_column);
	const char *status = quote_identifier(att->status_column);
	char	   *stype = format_type_be_qualified(att->status_type);
	Oid			arrtype = get_array_type(att->key_type);
	Oid			htypes[6] = {REGCLASSOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, TEXTARRAYOID};

	if (!OidIsValid(arrtype))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("key column \"%s\" of %s has type %s, which has no array type",
						att->key_column, ent, format_type_be(att->key_type))));
	get_typlenbyvalalign(att->key_type, &sw->typlen, &sw->typbyval, &sw->typalign);

	sw->types[0] = TEXTOID;		/* from status */
	sw->types[1] = TIMESTAMPTZOID;	/* cutoff */
	sw->types[2] = REGCLASSOID;	/* entity table */
	sw->types[3] = TEXTOID;		/* to status */
	sw->types[4] = arrtype;		/* keys */
	sw->values[0] = CStringGetTextDatum(rule->from_status);
	sw->values[1] = TimestampTzGetDatum(rule->cutoff);
	sw->values[2] = ObjectIdGetDatum(att->entity_table);
	sw->values[3] = CStringGetTextDatum(rule->to_status);
	sw->hvalues[0] = ObjectIdGetDatum(att->entity_table);
	sw->hvalues[1] = sw->values[0];
	sw->hvalues[2] = sw->values[3];
	sw->hvalues[3] = TimestampTzGetDatum(as_of);
	sw->hvalues[4] = Int64GetDatum(rule->rule_id);

	/* step 2a (caller): the locked rows that are still idle, in a fresh snapshot */
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT e.%s FROM pg_catalog.unnest($5) k(key) JOIN %s e ON e.%s = k.key "
					 "WHERE e.%s = CAST($1 AS %s)", key, ent, key, status, stype);
	AppendIdleCondition(&sql, att);
	sw->recheck_plan = SweepPrepare(sql.data, 5, sw->types);

	/*
	 * step 2b (owner): move them; every name qualified, as it runs under the
	 * session's search_path
	 */
	resetStringInfo(&sql);
	appendStringInfo(&sql, "UPDATE %s e SET %s = CAST($4 AS %s) FROM pg_catalog.unnest($5) k(key) "
					 "WHERE e.%s OPERATOR(pg_catalog.=) k.key AND e.%s OPERATOR(pg_catalog.=) CAST($1 AS %s) "
					 "RETURNING e.%s::pg_catalog.text, e.%s::pg_catalog.text",
					 ent, status, stype, key, status, stype, key, status);
	sw->update_plan = SweepPrepare(sql.data, 5, sw->types);

	/* step 2c (caller): the history rows of the entities the rule moved */
	sw->history_plan = SweepPrepare("INSERT INTO crm.status_history "
									"(entity_table, entity_key, from_status, to_status, changed_at, rule_id, actor) "
									"SELECT $1, k.key, $2, $3, $4, $5, 'rule' FROM pg_catalog.unnest($6) k(key)",
									6, htypes);
	pfree(sql.data);
}

/* the keys in column 1 of the current SPI result, as an array of the key type (result freed) */
static ArrayType *
ResultKeys(Sweep *sw, uint64 *n)
{
	Datum	   *keys;
	ArrayType  *arr;
	uint64		i;

	*n = SPI_processed;
	keys = palloc(sizeof(Datum) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		bool		isnull;

		keys[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	}
	arr = construct_array(keys, (int) *n, sw->att.key_type, sw->typlen, sw->typbyval, sw->typalign);
	SPI_freetuptable(SPI_tuptable);
	return arr;
}

/* step 2b: move the entities of keys, as the owner; leaves the RETURNING rows in SPI_tuptable */
static void
MoveAsOwner(Sweep *sw, ArrayType *keys)
{
	StatusSavedUser saved_user;
	RuleContext saved = StatusCurrentRule;
	int			ret;

	sw->values[4] = PointerGetDatum(keys);
	StatusBecomeOwner(sw->owner, sw->session_path, &saved_user);
	StatusCurrentRule.active = true;
	StatusCurrentRule.entity_table = sw->att.entity_table;
	StatusCurrentRule.to_status = sw->rule->to_status;
	StatusCurrentRule.reader = sw->caller;
	StatusRuleDepth++;
	PG_TRY();
	{
		CommandCounterIncrement();
		StatusCurrentRule.cid = GetCurrentCommandId(false);
		ret = SPI_execute_plan(sw->update_plan, sw->values, NULL, false, 0);
		if (ret != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
	PG_FINALLY();
	{
		StatusRuleDepth--;
		StatusCurrentRule = saved;
	}
	PG_END_TRY();
	/* roll back any setting the owner's code changed, restore the caller */
	StatusRestoreUser(&saved_user);
}

/*
 * One batch of locked candidates (in SPI_tuptable): re-check them (2a), move
 * those still idle (2b) and write the history rows of the rows that got the
 * rule's status (2c).  Returns the number of entities moved.
 */
static int64
SweepBatch(Sweep *sw)
{
	uint64		n;
	uint64		i;
	ArrayType  *keys = ResultKeys(sw, &n);
	Datum	   *moved_keys;
	int			nmoved = 0;
	int			ret;

	/* 2a */
	sw->values[4] = PointerGetDatum(keys);
	ret = SPI_execute_plan(sw->recheck_plan, sw->values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	keys = ResultKeys(sw, &n);
	if (n == 0)
		return 0;

	/* 2b, as the owner */
	MoveAsOwner(sw, keys);

	/* 2c: the rows that got the rule's status (a user's BEFORE trigger may have put another) */
	moved_keys = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *st = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (st != NULL && strcmp(st, sw->rule->to_status) == 0)
			moved_keys[nmoved++] = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	}
	SPI_freetuptable(SPI_tuptable);
	if (nmoved > 0)
	{
		sw->hvalues[5] = PointerGetDatum(construct_array(moved_keys, nmoved, TEXTOID, -1, false, TYPALIGN_INT));
		ret = SPI_execute_plan(sw->history_plan, sw->hvalues, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
	return nmoved;
}

/* error context of the sweep's statements (the owner's triggers run inside them) */
static void
SweepErrorContext(void *arg)
{
	errcontext("time rule %lld in crm.apply_time_rules()", (long long) *(int64 *) arg);
}

/*
 * apply one time rule: returns the number of entities moved, -1 when the
 * caller may not sweep the table (SPI connected, search_path pinned).  Step
 * 1 locks the idle candidates, skipping locked rows; per batch of them:
 * re-check them under a fresh snapshot (as the caller), move them (as the
 * table's owner, in a security-restricted operation, with the session's
 * search_path: the owner's triggers run with the owner's rights only, and
 * any setting they change is rolled back), then write the history rows (as
 * the caller).
 */
static int64
ApplyTimeRule(TimeRule *rule, TimestampTz as_of, const char *session_path, int64 rule_no, int64 nrules)
{
	Sweep		sw;
	StringInfoData sql;
	Portal		portal;
	int64		moved = 0;
	bool		known;
	MemoryContext batch_cxt;
	MemoryContext outer_cxt;
	ErrorContextCallback errcb;

	if (!StatusTransitionAllowed(StatusGetConfigOrError(rule->entity_table), rule->from_status,
								 rule->to_status, &known))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("time rule %lld skipped: status change from \"%s\" to \"%s\" is not allowed for %s",
						(long long) rule->rule_id, rule->from_status, rule->to_status,
						StatusQualifiedRelName(rule->entity_table)),
				 errhint("Allow it with a row in crm.status_transitions, or disable the rule.")));
		return 0;
	}
	memset(&sw, 0, sizeof(sw));
	sw.rule = rule;
	sw.caller = GetUserId();
	sw.session_path = session_path;
	StatusLoadAttachment(rule->attachment_id, &sw.att, CurrentMemoryContext);
	if (!SweepAllowed(&sw.att, sw.caller))
		return -1;
	sw.owner = RelOwner(sw.att.entity_table);
	SweepSetup(&sw, rule, as_of);

	/* step 1: the idle entities, locked as they are read, skipping locked ones */
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT e.%s FROM %s e WHERE e.%s = CAST($1 AS %s)",
					 quote_identifier(sw.att.key_column), StatusQualifiedRelName(sw.att.entity_table),
					 quote_identifier(sw.att.status_column), format_type_be_qualified(sw.att.status_type));
	AppendIdleCondition(&sql, &sw.att);
	appendStringInfoString(&sql, " FOR NO KEY UPDATE OF e SKIP LOCKED");
	portal = SPI_cursor_open_with_args(NULL, sql.data, 3, sw.types, sw.values, NULL, false, 0);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "crm_analytics sweep batch", ALLOCSET_DEFAULT_SIZES);
	outer_cxt = MemoryContextSwitchTo(batch_cxt);
	errcb.callback = SweepErrorContext;
	errcb.arg = &rule->rule_id;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(batch_cxt);
		/* progress between batches: rules done so far, entities this rule moved */
		CrmProgress(psprintf("crm.apply_time_rules: rule " INT64_FORMAT " on %s, " INT64_FORMAT " moved",
							 rule->rule_id, StatusQualifiedRelName(sw.att.entity_table), moved),
					rule_no, nrules);
		SPI_cursor_fetch(portal, true, SWEEP_BATCH);
		if (SPI_processed == 0)
			break;
		moved += SweepBatch(&sw);
	}
	error_context_stack = errcb.previous;
	MemoryContextSwitchTo(outer_cxt);
	MemoryContextDelete(batch_cxt);
	SPI_cursor_close(portal);
	SPI_freeplan(sw.recheck_plan);
	SPI_freeplan(sw.update_plan);
	SPI_freeplan(sw.history_plan);
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

	session_path = StatusSessionSearchPath();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	level = StatusPinSearchPath();
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
		moved = ApplyTimeRule(&rules[i], as_of, session_path, (int64) i, (int64) nrules);
		if (moved < 0)
			skipped = rules[i].attachment_id;
		else
			total += moved;
	}

	StatusUnpinSearchPath(level);
	SPI_finish();
	if (total > PG_INT32_MAX)
		total = PG_INT32_MAX;
	PG_RETURN_INT32((int32) total);
}
