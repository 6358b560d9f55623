/*
 * bi.c
 *      BI conventions and progress of long calls (docs/dashboard.md,
 *      docs/demo.md, docs/auto-status.md):
 *
 *      - crm.id_number(text): an id as a number when it is one, the sort key
 *        the crm.v_* views put beside their text ids;
 *      - CrmProgress / crm._progress(phase, done, total): progress of a long
 *        call, as a NOTICE every crm_analytics.progress_interval (default
 *        10 s) and in pg_stat_activity.query of the backend (another session
 *        sees it); the query text is restored when the transaction ends.
 */
#include "crm_analytics.h"

#include "access/xact.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(crm_id_number);
PG_FUNCTION_INFO_V1(crm_progress);

/* crm_analytics.progress_interval, in milliseconds; -1 = no notices */
int			CrmProgressInterval = 10000;

/* the statement the last progress call belonged to, and its last notice */
static TimestampTz ProgressStmtStart = 0;
static TimestampTz ProgressLastNotice = 0;
/* pg_stat_activity.query shows a progress line: restore it at transaction end */
static bool ProgressActivityDirty = false;
static bool ProgressCallbackRegistered = false;

/*
 * crm_analytics.rollups: whether the reports may answer from the rollups
 * (read by crm._rollups_usable() through current_setting; docs/rollups.md)
 */
static int	CrmRollupsMode = 0;
static const struct config_enum_entry CrmRollupsModes[] = {
	{"fresh", 0, false},
	{"last_refresh", 1, false},
	{"off", 2, false},
	{NULL, 0, false}
};

/* the settings, defined at module load (core.c's _PG_init) */
void
CrmProgressDefineSettings(void)
{
	DefineCustomEnumVariable("crm_analytics.rollups",
							 "Whether the reports answer from the rollups kept by crm.refresh_rollups.",
							 "fresh: only when the rollups equal the live data (no change waiting); "
							 "last_refresh: whenever they are built, as of the last refresh; "
							 "off: always the full computation.",
							 &CrmRollupsMode,
							 0,
							 CrmRollupsModes,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("crm_analytics.progress_interval",
							"Least time between two progress notices of a long call (load_demo, apply_time_rules, ...).",
							"-1 = no progress notices (pg_stat_activity still shows the progress); "
							"0 = a notice at every progress step.",
							&CrmProgressInterval,
							10000, -1, PG_INT32_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * crm.id_number(id text) -> numeric: the id as a number when it is written
 * as one (an optional minus, digits, optionally a point and digits; at most
 * 1000 characters), else NULL.  Leading zeros are ignored ('007' -> 7).
 */
Datum
crm_id_number(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	int			i = 0;
	int			int_digits = 0;
	int			frac_digits = 0;
	bool		point = false;

	if (len > 1000)
		PG_RETURN_NULL();
	if (len > 0 && s[0] == '-')
		i++;
	for (; i < len; i++)
	{
		if (s[i] >= '0' && s[i] <= '9')
		{
			if (point)
				frac_digits++;
			else
				int_digits++;
		}
		else if (s[i] == '.' && !point)
			point = true;
		else
			PG_RETURN_NULL();
	}
	if (int_digits == 0 || (point && frac_digits == 0))
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall3(numeric_in, CStringGetDatum(text_to_cstring(t)),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/*
 * Only the query text of this backend's pg_stat_activity row: unlike
 * pgstat_report_activity(), which starts a new query, it keeps state,
 * state_change and query_id (monitoring that looks for long-running calls
 * by state_change, or joins pg_stat_statements by query_id, still sees the
 * call that started when it did).  Stored as pgstat_report_activity stores
 * it: raw, cut to track_activity_query_size - 1 bytes (pg_stat_activity
 * clips multibyte characters when it reads it).
 */
static void
ProgressSetActivity(const char *text)
{
	volatile PgBackendStatus *beentry = MyBEEntry;
	int			len;

	if (beentry == NULL || !pgstat_track_activities)
		return;
	len = Min((int) strlen(text), pgstat_track_activity_query_size - 1);
	PGSTAT_BEGIN_WRITE_ACTIVITY(beentry);
	memcpy((char *) beentry->st_activity_raw, text, len);
	beentry->st_activity_raw[len] = '\0';
	PGSTAT_END_WRITE_ACTIVITY(beentry);
}

/* at the end of the transaction: pg_stat_activity shows the statement again */
static void
ProgressXactCallback(XactEvent event, void *arg)
{
	(void) arg;
	if (!ProgressActivityDirty)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		ProgressActivityDirty = false;
		if (debug_query_string != NULL)
			ProgressSetActivity(debug_query_string);
	}
}

/* pg_stat_activity.query of this backend: "<progress line> | <the statement>" */
static void
ProgressReportActivity(const char *line)
{
	StringInfoData buf;

	if (!pgstat_track_activities)
		return;
	if (!ProgressCallbackRegistered)
	{
		RegisterXactCallback(ProgressXactCallback, NULL);
		ProgressCallbackRegistered = true;
	}
	initStringInfo(&buf);
	appendStringInfo(&buf, "%s | %s", line, debug_query_string != NULL ? debug_query_string : "");
	ProgressSetActivity(buf.data);
	ProgressActivityDirty = true;
	pfree(buf.data);
}

/*
 * Progress of a long call: phase says what runs ("crm.load_demo: ..."),
 * done of total (total <= 0: unknown) how far it has got; the elapsed time
 * counts from the start of the client's statement.  Every call updates
 * pg_stat_activity.query; a NOTICE goes out when crm_analytics.progress_interval
 * has passed since the statement started or since the last notice (so a
 * call shorter than the interval says nothing).  Call it between batches,
 * never per row.
 */
void
CrmProgress(const char *phase, int64 done, int64 total)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz start = GetCurrentStatementStartTimestamp();
	StringInfoData line;

	if (start != ProgressStmtStart)
	{
		ProgressStmtStart = start;
		ProgressLastNotice = start;
	}
	initStringInfo(&line);
	appendStringInfoString(&line, phase);
	if (total > 0)
		appendStringInfo(&line, ": " INT64_FORMAT " of " INT64_FORMAT " done (%d%%)", done, total,
						 (int) (100.0 * (double) Min(done, total) / (double) total));
	else
		appendStringInfo(&line, ": " INT64_FORMAT " done", done);
	appendStringInfo(&line, ", %.1f s elapsed", (double) (now - start) / 1000000.0);
	ProgressReportActivity(line.data);
	if (CrmProgressInterval >= 0 && now - ProgressLastNotice >= (int64) CrmProgressInterval * 1000)
	{
		ProgressLastNotice = now;
		ereport(NOTICE, (errmsg("%s", line.data)));
	}
	pfree(line.data);
}

/*
 * crm._progress(phase text, done bigint, total bigint) -> void: CrmProgress
 * for PL/pgSQL callers (total NULL = unknown).
 */
Datum
crm_progress(PG_FUNCTION_ARGS)
{
	char	   *phase;
	int64		done;
	int64		total = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("crm._progress: phase and done must not be null"),
				 errhint("Pass total NULL when it is not known.")));
	phase = text_to_cstring(PG_GETARG_TEXT_PP(0));
	done = PG_GETARG_INT64(1);
	if (!PG_ARGISNULL(2))
		total = PG_GETARG_INT64(2);
	if (phase[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("crm._progress: phase must not be empty"),
				 errhint("Say what runs, e.g. 'crm.refresh_rollups: orders'.")));
	if (done < 0 || (!PG_ARGISNULL(2) && total < 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("crm._progress: done and total must not be negative, got " INT64_FORMAT " and " INT64_FORMAT,
						done, total)));
	CrmProgress(phase, done, total);
	PG_RETURN_VOID();
}
