/*
 * status_config.c
 *      Automatic statuses (docs/auto-status.md): the attachments
 *      (crm.status_attachments), the backend-local configuration cache
 *      (stages, transitions, event rules, settings), the transition test and
 *      the relcache callback that drops the cache after a change.
 *
 * See src/status.h for the layout of the status files and the naming rule.
 */
#include "status.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(status_transition_allowed);
PG_FUNCTION_INFO_V1(status_config_changed);

uint64		StatusConfigInvalidations = 1;

static MemoryContext ConfigContext = NULL;
static bool ConfigValid = false;
static bool ConfigCallbackRegistered = false;
static int	NumConfigs = 0;
static AttachmentConfig *Configs = NULL;

/* qualified, quoted name of a relation */
char *
StatusQualifiedRelName(Oid relid)
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
AttrNumber
StatusAttachedColumn(Oid relid, const char *col, Oid *typid)
{
	AttrNumber	attnum = get_attnum(relid, col);

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation %s does not exist", col, StatusQualifiedRelName(relid)),
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
void
StatusLoadAttachment(int32 attachment_id, StatusAttachment *att, MemoryContext cxt)
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

	StatusAttachedColumn(att->entity_table, att->key_column, &att->key_type);
	StatusAttachedColumn(att->entity_table, att->status_column, &att->status_type);
	if (OidIsValid(att->event_table))
	{
		StatusAttachedColumn(att->event_table, att->ev_entity_column, &att->ev_entity_type);
		StatusAttachedColumn(att->event_table, att->ev_time_column, &att->ev_time_type);
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
	StatusConfigInvalidations++;
	ConfigValid = false;
	StatusCacheInvalidate(relid);
}

/* register ConfigInvalidate once per backend */
void
StatusRegisterInvalidation(void)
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

/* the enabled event rules of every attachment, by priority (SPI connected) */
static void
LoadEventRules(void)
{
	uint64		i;

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
}

/* (Re)load every attachment's configuration into ConfigContext (SPI connected) */
static void
LoadConfig(void)
{
	MemoryContext old;
	uint64		i;
	uint64		n;
	uint64		invalidations_at_start;

	StatusRegisterInvalidation();
	if (ConfigContext == NULL)
		ConfigContext = AllocSetContextCreate(TopMemoryContext, "crm_analytics status config",
											  ALLOCSET_SMALL_SIZES);
	ConfigValid = false;
	MemoryContextReset(ConfigContext);
	NumConfigs = 0;
	Configs = NULL;
	invalidations_at_start = StatusConfigInvalidations;

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

	LoadEventRules();

	/*
	 * Valid only if nothing was invalidated meanwhile (a change committed
	 * while we read is then read again next time); an error above leaves the
	 * cache invalid.
	 */
	ConfigValid = (StatusConfigInvalidations == invalidations_at_start);
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
		int			level = StatusPinSearchPath();

		LoadConfig();
		StatusUnpinSearchPath(level);
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
bool
StatusTransitionAllowed(AttachmentConfig *c, const char *from, const char *to, bool *known)
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
char *
StatusStageList(AttachmentConfig *c)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < c->nstages; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", c->stages[i]);
	return buf.data;
}

/* the configuration of an attached table, or an error */
AttachmentConfig *
StatusGetConfigOrError(Oid entity_table)
{
	AttachmentConfig *c = GetConfig(entity_table);

	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table %s has no automatic status attached", StatusQualifiedRelName(entity_table)),
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
				 errmsg("function \"%s\" was not called by trigger manager", "crm._status_config_changed")));
	trigdata = (TriggerData *) fcinfo->context;
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	StatusConfigInvalidations++;
	ConfigValid = false;
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
	allowed = StatusTransitionAllowed(StatusGetConfigOrError(PG_GETARG_OID(0)), from, to, &known);
	SPI_finish();
	PG_RETURN_BOOL(allowed);
}
