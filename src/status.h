/*
 * status.h
 *      Automatic statuses (docs/auto-status.md): what the files of the
 *      status capability share.
 *
 *  status_config.c  attachments, the configuration cache and the transition test
 *  status_cache.c   the per-trigger cache (relcache invalidation)
 *  status_trigger.c the event trigger and the entity trigger
 *  status_sweep.c   the time-rule sweep crm.apply_time_rules()
 *  pg_lock.c        the entity row lock without SPI (table AM, index scan, tuple lock)
 *  pg_user_context.c search_path pinning and the user-id / security-context switches
 *
 * Naming: the SQL-callable functions keep their released symbol names
 * (status_event_trigger, ...); the non-static helpers and globals shared by
 * these files are Status + CamelCase and declared here; file-local functions
 * are static CamelCase.
 *
 * Triggers on a partition of an attached table are clones of the attached
 * table's triggers (same attachment id); their column numbers are the
 * partition's own.  The per-trigger cache is dropped on a relcache
 * invalidation of the attached tables (and checked against the relation's
 * tuple descriptor at each use), so ALTER TABLE ... TYPE is followed.
 *
 * All SQL is built from catalog names through quote_identifier and kept as
 * prepared SPI plans (per trigger, in a backend-local hash table).  The
 * trigger functions do not pin search_path in their definition (a SET clause
 * costs two GUC changes and a namespace-cache rebuild per row): every name in
 * the kept plans is schema-qualified, operators included, and the rare
 * catalog reads (configuration, attachment) run under a search_path pinned
 * in C (StatusPinSearchPath).  The configuration (stages, transitions, event
 * rules, settings) is read once into backend memory and re-read after a
 * change: a statement trigger on the configuration tables sends a relcache
 * invalidation, which every backend receives through a registered callback.
 */
#ifndef CRM_STATUS_H
#define CRM_STATUS_H

#include "crm_analytics.h"

#include "access/attnum.h"
#include "access/htup.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

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
	/* event trigger: locking the entity without the lock plan (pg_lock.c) */
	uint64		direct_generation;	/* StatusConfigInvalidations when checked */
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

/* the rule statement running now, and how deep rule-driven changes are nested */
extern RuleContext StatusCurrentRule;
extern int	StatusRuleDepth;

/* bumped by every relcache invalidation the status files receive */
extern uint64 StatusConfigInvalidations;

/* status_config.c */
extern char *StatusQualifiedRelName(Oid relid);
extern AttrNumber StatusAttachedColumn(Oid relid, const char *col, Oid *typid);
extern void StatusLoadAttachment(int32 attachment_id, StatusAttachment *att, MemoryContext cxt);
extern void StatusRegisterInvalidation(void);
extern bool StatusTransitionAllowed(AttachmentConfig *c, const char *from, const char *to, bool *known);
extern char *StatusStageList(AttachmentConfig *c);
extern AttachmentConfig *StatusGetConfigOrError(Oid entity_table);

/* status_cache.c */
extern void StatusCacheInvalidate(Oid relid);
extern bool StatusColumnIs(TupleDesc desc, AttrNumber attnum, Oid typid);
extern TriggerCacheEntry *StatusGetTriggerEntry(TriggerData *trigdata, bool for_events);
extern TriggerData *StatusCheckTriggerCall(FunctionCallInfo fcinfo, const char *fname, bool allow_update);

/* pg_lock.c */
extern int	StatusLockEntity(TriggerCacheEntry *entry, Datum entity, char **current);
extern bool StatusTupleWrittenByCommand(HeapTuple tuple, CommandId cid);

/* pg_user_context.c */
typedef struct StatusSavedUser
{
	Oid			userid;
	int			sec_context;
	int			nestlevel;		/* GUC nest level, 0 when none was opened */
} StatusSavedUser;

extern int	StatusPinSearchPath(void);
extern void StatusUnpinSearchPath(int level);
extern char *StatusSessionSearchPath(void);
extern void StatusBecomeReader(Oid reader, StatusSavedUser *saved);
extern void StatusBecomeOwner(Oid owner, const char *search_path, StatusSavedUser *saved);
extern void StatusRestoreUser(StatusSavedUser *saved);

#endif							/* CRM_STATUS_H */
