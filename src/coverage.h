/*
 * coverage.h
 *      What the files of the contact coverage engine share (docs/coverage.md):
 *
 *      coverage.c          crm.coverage_trigger (AFTER INSERT), its kept
 *                          SPI statements and the per-statement fold
 *      coverage_change.c   crm.coverage_change_trigger (AFTER UPDATE /
 *                          DELETE) and crm.coverage_truncate_trigger
 *      coverage_settings.c the per-trigger settings cache (columns,
 *                          filters, unknown-customer mode), the counting
 *                          rule of a row, and whether crm.coverage may be
 *                          updated directly
 *      pg_heap_update.c    the direct update of crm.coverage rows (the
 *                          PostgreSQL executor and table AM internals)
 *
 *      The crm.median_interval aggregate is in median_interval.c.
 *
 *      Naming: SQL-callable functions keep their released symbol names
 *      (coverage_trigger, ...); functions shared between these files are
 *      Coverage + CamelCase and declared here; the rest is static.
 */
#ifndef CRM_COVERAGE_H
#define CRM_COVERAGE_H

#include "crm_analytics.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"

typedef enum CoverageUnknown
{
	COVERAGE_UNKNOWN_INSERT,
	COVERAGE_UNKNOWN_IGNORE,
	COVERAGE_UNKNOWN_ERROR
} CoverageUnknown;

/* one column filter: attribute number and the accepted values */
typedef struct CoverageFilter
{
	AttrNumber	attnum;			/* 0 = no filter */
	Oid			typid;
	bool		is_text;		/* text/varchar: compare bytes directly */
	FmgrInfo	outfn;			/* otherwise: output function */
	int			nvalues;
	char	  **values;
	int		   *lens;
} CoverageFilter;

/* per-customer fold of one statement */
typedef struct CoverageHit
{
	int64		customer;
	TimestampTz latest;
	int64		count;
} CoverageHit;

/*
 * What the triggers read from their arguments and the interactions table,
 * cached per trigger (pg_trigger oid) in this backend; rebuilt after any
 * relcache invalidation (a column dropped, renamed or retyped sends one).
 *
 * Trigger arguments (written by crm.attach_coverage, which validated them):
 *   0 customer column, 1 timestamp column,
 *   2 kind column ('' = none), 3 counted kinds as a text[] literal ('' = all),
 *   4 direction column ('' = none), 5 counted directions ('' = all),
 *   6 automated column ('' = none; automated rows never count),
 *   7 unknown customers: insert | ignore | error
 */
typedef struct CoverageTriggerInfo
{
	Oid			tgoid;			/* hash key */
	uint64		generation;		/* invalidation count when built */
	MemoryContext cxt;			/* owns the filters' lists and functions */
	AttrNumber	cust_att;
	AttrNumber	ts_att;
	Oid			cust_type;
	Oid			ts_type;
	CoverageFilter kinds;
	CoverageFilter directions;
	AttrNumber	auto_att;		/* 0 = none */
	CoverageUnknown unknown;
	SPIPlanPtr	recompute_plan; /* crm.coverage_change_trigger's statement */
} CoverageTriggerInfo;

/* coverage_settings.c */

/* the cached settings of the firing trigger, checked against its table */
extern CoverageTriggerInfo *CoverageGetTriggerInfo(TriggerData *trigdata);

/*
 * Does the row count as a contact (a customer, a finite time, not
 * automated, an accepted kind and direction)?  Sets its customer and time.
 */
extern bool CoverageCountedRow(CoverageTriggerInfo *info, TupleTableSlot *slot,
							   int64 *customer, TimestampTz *when);

/* crm.coverage's oid when this statement may update it directly, else InvalidOid */
extern Oid	CoverageDirectTarget(void);

/* pg_heap_update.c */

/*
 * Apply the statement's customers (sorted, distinct) to crm.coverage (relid,
 * from CoverageDirectTarget) directly; the customers without a coverage row
 * are returned in *missing (count *nmissing).  false, with nothing done,
 * when the table's shape does not allow it.
 */
extern bool CoverageApplyDirect(Oid relid, CoverageHit *hits, int nhits,
								CoverageHit **missing, int *nmissing);

#endif							/* CRM_COVERAGE_H */
