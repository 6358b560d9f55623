/*
 * crm_analytics.h
 *      Shared pieces of the crm_analytics extension: the growable aggregate
 *      state kept as an expanded object, the magic numbers and the text
 *      reader/writer of the state types, inner-query checking, and small
 *      helpers used by every capability.
 *
 * Naming of C symbols:
 *      - SQL-callable functions (PG_FUNCTION_INFO_V1) keep the snake_case
 *        names the install scripts give them; released scripts reference
 *        them, so they are never renamed.
 *      - Functions and globals shared between files: Crm + CamelCase, here
 *        (shared by all) or in a capability's own header (src/<cap>.h,
 *        shared by the files of that capability, prefixed with the
 *        capability: FunnelScan, ClvBgnbdLogLik).
 *      - File-local functions: static, CamelCase.
 *      - Macros and constants: upper case; CRM_MAGIC_* for state types.
 */
#ifndef CRM_ANALYTICS_H
#define CRM_ANALYTICS_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/expandeddatum.h"
#include "datatype/timestamp.h"
#include "catalog/pg_type.h"
#include "access/tupdesc.h"
#include "lib/stringinfo.h"

/* ------------------------------------------------------------------------
 * CrmState: an aggregate state that is updated in place.
 *
 * The transition function keeps the state as a read/write expanded object
 * whose memory context is a child of the aggregate context, so nodeAgg hands
 * the same pointer back on the next row and nothing is copied per row (the
 * technique PostgreSQL's array_append uses).  Whenever the server needs the
 * datum as bytes (a parallel worker sends a partial state, a state is
 * stored, printed or given to a final function that detoasts it) the object
 * is flattened to a varlena:
 *
 *     [varlena header 4 bytes][magic uint32][payload ... len bytes]
 *
 * so the payload always starts MAXALIGNed in a palloc'd flat copy.  The
 * payload layout belongs to each capability; the magic number says which
 * state type the bytes belong to, so a state of one type can never be read
 * as another.
 * ------------------------------------------------------------------------
 */
typedef struct CrmState
{
	ExpandedObjectHeader hdr;
	uint32		magic;			/* which state type */
	Size		len;			/* payload bytes in use */
	Size		cap;			/* payload bytes allocated */
	char	   *data;			/* payload, allocated in hdr.eoh_context */
} CrmState;

#define CRM_STATE_FLAT_HDRSZ	(VARHDRSZ + sizeof(uint32))

/*
 * The magic number of every state type: the first 4 bytes of a flat state
 * say which type the bytes belong to (read as ASCII).  Old layouts that are
 * still read carry their own number.  Never reuse a number.
 */
#define CRM_MAGIC_DEMAND_CV          0x43565354	/* "CVST": crm.demand_cv_state (classes) */
#define CRM_MAGIC_CLV_SUMMARY        0x434c5653	/* "CLVS": crm.clv_summary_state */
#define CRM_MAGIC_CLV_BGNBD          0x42474e42	/* "BGNB": crm.bgnbd_state */
#define CRM_MAGIC_CLV_GG             0x47414747	/* "GAGG": crm.gamma_gamma_state */
#define CRM_MAGIC_MEDIAN_INTERVAL    0x43564d49	/* "CVMI": crm.median_interval_state */
#define CRM_MAGIC_FUNNEL_V1          0x464e4c31	/* "FNL1": window_funnel state, 0.1.0 layout (read only) */
#define CRM_MAGIC_FUNNEL_V2          0x464e4c32	/* "FNL2": window_funnel state, 0.2.0 layout (read only) */
#define CRM_MAGIC_FUNNEL             0x464e4c33	/* "FNL3": crm.window_funnel_state */
#define CRM_MAGIC_FUNNEL_COUNTS      0x464e4332	/* "FNC2": crm.funnel_counts_state */
#define CRM_MAGIC_RETENTION          0x52544E31	/* "RTN1": crm.retention_state */
#define CRM_MAGIC_COHORT             0x43484132	/* "CHA2": crm.cohort_activity_state */
#define CRM_MAGIC_COHORT_V1          0x43484131	/* "CHA1": cohort_activity state, 0.1.0 layout (read only) */

/* new empty state owned by a child context of parent */
extern CrmState *CrmStateNew(MemoryContext parent, uint32 magic, Size initial_cap);

/*
 * The state given as argument argno of an aggregate support function, ready
 * to be modified in place: the same object if it already is a read/write
 * expanded state of ours under aggcontext, otherwise a new expanded copy
 * (from a flat varlena or a read-only pointer).  NULL argument -> new state.
 */
extern CrmState *CrmStateArgRW(FunctionCallInfo fcinfo, int argno, MemoryContext aggcontext,
								  uint32 magic, Size initial_cap);

/*
 * Read-only view of a state datum (expanded or flat): sets *len and returns
 * a MAXALIGNed pointer to the payload.  Checks the magic number.
 */
extern const char *CrmStatePayload(Datum d, uint32 magic, Size *len);

/* make room for extra more payload bytes; returns pointer to the first free byte */
extern char *CrmStateReserve(CrmState *st, Size extra);

/* flat varlena holding a copy of payload (for input/receive functions) */
extern struct varlena *CrmStateFlatFromPayload(uint32 magic, const char *payload, Size len);

#define CrmStateGetDatum(st)	EOHPGetRWDatum(&(st)->hdr)

/* ascending sort of n int64 values, checking for interrupts */
extern void CrmSortInt64(int64 *values, size_t n);

/* the aggregate context or an error naming the function */
extern MemoryContext CrmAggContext(FunctionCallInfo fcinfo, const char *fname);

/* ------------------------------------------------------------------------
 * Inner queries: report functions take the user's data as SQL text.
 * ------------------------------------------------------------------------
 */
typedef enum CrmColKind
{
	CRM_COL_ANY,				/* any type (an entity key) */
	CRM_COL_TIMESTAMP,			/* timestamptz, timestamp or date */
	CRM_COL_NUMERIC,			/* numeric, integers, float */
	CRM_COL_TEXT,				/* text, varchar, name, bpchar */
	CRM_COL_INTEGER,			/* int2, int4, int8 */
	CRM_COL_BOOL
} CrmColKind;

typedef struct CrmColumnSpec
{
	const char *name;			/* documented name, used in errors */
	CrmColKind	kind;
	bool		optional;		/* may be absent (only trailing columns) */
} CrmColumnSpec;

/*
 * Check, with SPI connected, that the inner query sql of function fname is
 * one SELECT (CrmInnerQueryValidate) and returns the columns cols (by
 * position and type); the query is prepared alone and started without
 * fetching a row, so the caller's rights on what it reads are checked too.
 * Returns the number of columns present (optional trailing ones may be
 * missing).  Errors name the expected columns.
 */
extern int	CrmCheckInnerQuery(const char *fname, const char *sql,
								  const CrmColumnSpec *cols, int ncols);
/* the same, also storing each present column's type in types[ncols] (may be NULL) */
extern int	CrmCheckInnerQueryTypes(const char *fname, const char *sql,
										const CrmColumnSpec *cols, int ncols, Oid *types);

/*
 * The one gate for SQL text a caller passes (inner_query.c explains the
 * rule): sql must be exactly one SELECT statement (SELECT, VALUES, TABLE),
 * parsed alone: no second statement, no semicolon, no SELECT ... INTO, no
 * data-modifying statement in a WITH clause.  Errors otherwise (22004 NULL,
 * 22023 empty, 42601 syntax / not one SELECT, 0A000 INTO / data-modifying
 * WITH).  Needs no SPI; CrmCheckInnerQuery and every function below call
 * it first.
 */
extern void CrmInnerQueryValidate(const char *fname, const char *sql);

/* for "(<text>)" wrappers without a newline: refuse a text ending in a "--" comment */
extern void CrmInnerQueryRejectOpenComment(const char *fname, const char *sql);

/*
 * With SPI connected: validate sql, prepare it alone (one SELECT plan,
 * parallel allowed) and check its columns as CrmCheckInnerQuery does.
 * Returns the SPIPlanPtr (as void *, living until SPI_finish), the number of
 * columns in *natts and their exact types in types[] (may be NULL).
 */
extern void *CrmInnerQueryPrepare(const char *fname, const char *sql,
									 const CrmColumnSpec *cols, int ncols, int *natts, Oid *types);

/*
 * With SPI connected: prepare a query the C code built around a validated
 * inner query and require exactly one plan source whose query is a SELECT.
 */
extern void *CrmPrepareSelect(const char *fname, const char *sql);

/*
 * A receiver's check of the tuple descriptor it is handed: natts columns of
 * exactly types[], otherwise a 42804 error (nothing is read).
 */
extern void CrmCheckResultDesc(const char *fname, TupleDesc desc, int natts, const Oid *types);

/* an int2, int4 or int8 datum (an entity or customer key) as int64 */
static inline int64
CrmIntKey(Datum d, Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

/* progress of long calls (bi.c): crm_analytics.progress_interval in ms, -1 = no notices */
extern int	CrmProgressInterval;
extern void CrmProgressDefineSettings(void);
/* a progress line (NOTICE at intervals, pg_stat_activity.query); total <= 0 = unknown */
extern void CrmProgress(const char *phase, int64 done, int64 total);

/* crm_analytics.cohort_two_pass: cohort_retention may read its inner query twice */
extern bool CrmCohortTwoPass;
/* crm_analytics.numeric_fast_path: pg_numeric.c reads numeric's stored form */
extern bool CrmNumericFastPath;

/* "entity, ts, step [, value]" for error messages */
extern char *CrmDescribeColumns(const CrmColumnSpec *cols, int ncols);

/*
 * ts (finite) as local wall-clock microseconds in the session time zone: the
 * value whose floor division by a day gives the local date.  Zones with one
 * fixed offset (UTC, Etc/GMT-9, '+03:00') take a shortcut without the
 * broken-down time; others go through timestamp2tm.
 */
extern int64 CrmLocalUsecs(TimestampTz ts);

/*
 * With SPI connected: prepare sql and keep the plan for the life of the
 * backend (SPI_keepplan); errors name fname.  The plan is a void pointer
 * here so this header needs no SPI include.
 */
extern void *CrmPrepareKept(const char *fname, const char *sql, int nargs, Oid *argtypes);

/* ------------------------------------------------------------------------
 * The text form of the state types (state_text.c): one reader and writer.
 * A malformed text is a 22P02 error "invalid input syntax for type T: "..."
 * with a detail saying what was expected and at which character.
 * ------------------------------------------------------------------------
 */
typedef struct CrmTextReader
{
	const char *input;			/* the whole text, for messages */
	const char *p;				/* the next character to read */
	const char *typname;		/* e.g. "crm.window_funnel_state" */
} CrmTextReader;

extern void CrmTextReaderInit(CrmTextReader *r, const char *input, const char *typname);
extern pg_attribute_noreturn() void CrmTextError(CrmTextReader *r, const char *fmt,...) pg_attribute_printf(2, 3);
/* an integer in [min, max] (what names it in errors) */
extern int64 CrmTextReadInt64(CrmTextReader *r, const char *what, int64 min, int64 max);
extern uint64 CrmTextReadUInt64(CrmTextReader *r, const char *what);
/* a finite float8 written in decimal */
extern double CrmTextReadFloat8(CrmTextReader *r, const char *what);
/* consume lit if the text continues with it */
extern bool CrmTextSkip(CrmTextReader *r, const char *lit);
extern void CrmTextExpect(CrmTextReader *r, const char *lit);
extern void CrmTextExpectEnd(CrmTextReader *r);
#define CrmTextAtEnd(r)	(*(r)->p == '\0')
extern void CrmTextWriteInt64(StringInfo buf, int64 v);
extern void CrmTextWriteUInt64(StringInfo buf, uint64 v);
/* the shortest decimal text that reads back as exactly v */
extern void CrmTextWriteFloat8(StringInfo buf, double v);

#endif							/* CRM_ANALYTICS_H */
