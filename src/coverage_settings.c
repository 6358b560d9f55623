/*
 * coverage_settings.c
 *      The settings of the coverage triggers (docs/coverage.md), cached per
 *      trigger in this backend: the interactions table's customer, time,
 *      kind, direction and automated columns, the counted kinds and
 *      directions, and the unknown-customer mode, read from the trigger's
 *      arguments (see coverage.h) and checked against the table.  The cache
 *      is rebuilt after any relcache invalidation.  Also here: the rule of
 *      which rows count as contacts, and whether a statement may update
 *      crm.coverage directly (pg_heap_update.c) or must use SQL.
 */
#include "coverage.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"

static HTAB *CoverageTriggerCache = NULL;
static uint64 CoverageInvalidations = 1;
static bool CoverageCallbackRegistered = false;

/* crm.coverage and its primary key, looked up once per generation */
static Oid	CoverageRelid = InvalidOid;
static uint64 CoverageRelidGeneration = 0;

/* attribute number of column name in rel, or a trigger protocol error */
static AttrNumber
TriggerColumn(Relation rel, const char *name, const char *what)
{
	AttrNumber	attnum = SPI_fnumber(RelationGetDescr(rel), name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("%s column \"%s\" does not exist in table \"%s\"",
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


/* relcache callback: forget every cached trigger description */
static void
CoverageInvalidate(Datum arg, Oid relid)
{
	(void) arg;
	(void) relid;
	CoverageInvalidations++;
}

/* context of the errors of a trigger's settings: which trigger, on which table */
static void
TriggerSettingsContext(void *arg)
{
	TriggerData *trigdata = (TriggerData *) arg;

	errcontext("coverage trigger \"%s\" on table \"%s\"",
			   trigdata->tg_trigger->tgname, RelationGetRelationName(trigdata->tg_relation));
}

/* read the trigger's arguments into info (in info->cxt), checking them against the table */
static void
BuildTriggerInfo(CoverageTriggerInfo *info, TriggerData *trigdata)
{
	Trigger    *trigger = trigdata->tg_trigger;
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	const char *mode;

	if (trigger->tgnargs != 8)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("expected 8 trigger arguments, got %d", trigger->tgnargs),
				 errhint("Install it with crm.attach_coverage().")));
	info->cust_att = TriggerColumn(rel, trigger->tgargs[0], "customer");
	info->ts_att = TriggerColumn(rel, trigger->tgargs[1], "timestamp");
	info->cust_type = getBaseType(TupleDescAttr(desc, info->cust_att - 1)->atttypid);
	info->ts_type = getBaseType(TupleDescAttr(desc, info->ts_att - 1)->atttypid);
	if (info->cust_type != INT2OID && info->cust_type != INT4OID && info->cust_type != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("customer column \"%s\" must be an integer, not %s",
						trigger->tgargs[0], format_type_be(info->cust_type))));
	if (info->ts_type != TIMESTAMPTZOID && info->ts_type != TIMESTAMPOID && info->ts_type != DATEOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("timestamp column \"%s\" must be timestamptz, timestamp or date, not %s",
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
					 errmsg("automated column \"%s\" must be boolean",
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
				 errmsg("unknown customer mode \"%s\"", mode),
				 errhint("Valid modes are insert, ignore and error.")));
}

/*
 * The cached description of the firing trigger: its columns, filters and
 * unknown-customer mode, checked against the interactions table.
 */
CoverageTriggerInfo *
CoverageGetTriggerInfo(TriggerData *trigdata)
{
	CoverageTriggerInfo *info;
	MemoryContext old;
	ErrorContextCallback errcb;
	bool		found;

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
	info = hash_search(CoverageTriggerCache, &trigdata->tg_trigger->tgoid, HASH_ENTER, &found);
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
	if (info->cxt == NULL)
		info->cxt = AllocSetContextCreate(TopMemoryContext, "crm_analytics coverage trigger",
										  ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(info->cxt);
	info->generation = 0;		/* invalid until built completely */

	errcb.callback = TriggerSettingsContext;
	errcb.arg = trigdata;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	old = MemoryContextSwitchTo(info->cxt);
	BuildTriggerInfo(info, trigdata);
	MemoryContextSwitchTo(old);
	error_context_stack = errcb.previous;

	info->generation = CoverageInvalidations;
	return info;
}

/* the customer and time of a row if the row counts as a contact */
bool
CoverageCountedRow(CoverageTriggerInfo *info, TupleTableSlot *slot, int64 *customer, TimestampTz *when)
{
	bool		isnull;
	Datum		d;

	d = slot_getattr(slot, info->cust_att, &isnull);
	if (isnull)
		return false;			/* a lead's interaction, not a customer's */
	*customer = CrmIntKey(d, info->cust_type);
	d = slot_getattr(slot, info->ts_att, &isnull);
	if (isnull)
		return false;
	*when = InteractionTime(d, info->ts_type);
	if (TIMESTAMP_NOT_FINITE(*when))
		return false;
	if (info->auto_att != 0)
	{
		d = slot_getattr(slot, info->auto_att, &isnull);
		if (!isnull && DatumGetBool(d))
			return false;
	}
	return FilterAccepts(&info->kinds, slot) && FilterAccepts(&info->directions, slot);
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
Oid
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
