/*
 * pg_user_context.c
 *      Automatic statuses: the PostgreSQL internals behind the status
 *      functions' search_path pinning and their user-id / security-context
 *      switches, and nothing else.
 *
 * The trigger functions and crm.apply_time_rules() have no SET clause (a
 * SET clause would cost two GUC changes and a namespace-cache rebuild per
 * row, and would give the user's triggers pg_catalog only): they pin
 * search_path in C for their own catalog reads, and the sweep runs its
 * moving statement as the table's owner in a security-restricted operation
 * with the session's search_path, as PostgreSQL does for maintenance
 * commands that run user code (REFRESH MATERIALIZED VIEW, index builds).
 *
 * It depends on: NewGUCNestLevel(), set_config_option() with GUC_ACTION_SAVE
 * and AtEOXact_GUC() (utils/guc.h) for a setting that lasts until the nest
 * level is closed, the namespace_search_path global (catalog/namespace.h),
 * and GetUserIdAndSecContext() / SetUserIdAndSecContext() with
 * SECURITY_LOCAL_USERID_CHANGE and SECURITY_RESTRICTED_OPERATION
 * (miscadmin.h).  Written against PostgreSQL 15 (the same calls exist in 12
 * to 17); a port checks these calls and nothing outside this file.  An error
 * between a switch and its restore is cleaned up by (sub)transaction abort,
 * which resets the user id, the security context and the GUC nest levels.
 *
 * There is no fallback: without these calls the sweep could not run the
 * owner's triggers safely.  Tests: test/status_triggers.sql (part 2: the
 * owner's trigger sees the owner's role, no superuser rights, the session's
 * search_path, and cannot leave a setting or deferred trigger behind; the
 * attachment row is read as the caller) and test/security_search_path.sql
 * (a hostile search_path does not reach the functions' own statements).
 */
#include "status.h"

#include "catalog/namespace.h"
#include "miscadmin.h"
#include "utils/guc.h"

/*
 * Pin search_path to pg_catalog, pg_temp until StatusUnpinSearchPath(level),
 * so the few queries parsed by the status functions (configuration loads,
 * plan preparation) get the same safe path a SET clause would give.
 */
int
StatusPinSearchPath(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/* undo StatusPinSearchPath */
void
StatusUnpinSearchPath(int level)
{
	AtEOXact_GUC(true, level);
}

/* a copy of the session's search_path as set now (before any pinning) */
char *
StatusSessionSearchPath(void)
{
	return pstrdup(namespace_search_path ? namespace_search_path : "");
}

/*
 * Run as reader (a local user-id change) until StatusRestoreUser(saved): for
 * a fixed catalog query made while the sweep's statement runs as the owner.
 */
void
StatusBecomeReader(Oid reader, StatusSavedUser *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->nestlevel = 0;
	SetUserIdAndSecContext(reader, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * Run as owner, in a security-restricted operation, with search_path set to
 * search_path, until StatusRestoreUser(saved), which also rolls back any
 * setting the owner's code changed meanwhile.
 */
void
StatusBecomeOwner(Oid owner, const char *search_path, StatusSavedUser *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	saved->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(owner, saved->sec_context | SECURITY_RESTRICTED_OPERATION);
}

/* back to the user and settings saved by StatusBecomeReader / StatusBecomeOwner */
void
StatusRestoreUser(StatusSavedUser *saved)
{
	if (saved->nestlevel > 0)
		AtEOXact_GUC(false, saved->nestlevel);
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}
