/*
 * funnel.h
 *      What the files of the sales funnel share (docs/funnel.md): the
 *      window_funnel state layouts, the step masks, the mode flags and the
 *      step-name cache, and the internal functions one file calls in another.
 *
 *      funnel_agg.c     argument checks, the transition and combine functions
 *      funnel_names.c   step names: parsing, identity, crm._funnel_step_flags
 *      funnel_state.c   the state: allocation, reading every layout, text form
 *      funnel_scan.c    the final scan (every mode) and the final functions
 *      funnel_counts.c  crm.funnel_counts and its state type
 *
 * Naming: SQL-callable functions keep the names the install scripts give
 * them; functions shared by these files are Funnel + CamelCase and declared
 * here; file-local functions are static.
 *
 * Semantics (docs/funnel.md has the long form):
 *   a chain is a sequence of events e1..ek, e_j matching step j, in the order
 *   of (ts, step index), every ts within window of ts(e1) (bound inclusive);
 *   the level is the largest k reached by a chain.  strict_increase requires
 *   strictly increasing timestamps, strict_once distinct rows; these two are
 *   computed exactly (not by ClickHouse's greedy scan).  strict_order and
 *   strict_deduplication end the scan at an event, as in ClickHouse.
 */
#ifndef CRM_FUNNEL_H
#define CRM_FUNNEL_H

#include "crm_analytics.h"

#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/array.h"

#define FUNNEL_MAX_STEPS	64
#define FUNNEL_BIT(j)		(UINT64CONST(1) << (j))

/* mode flags */
#define FM_DEDUP		0x01		/* strict_deduplication */
#define FM_ORDER		0x02		/* strict_order */
#define FM_INCREASE		0x04		/* strict_increase */
#define FM_ONCE			0x08		/* strict_once */
#define FM_REENTRY		0x10		/* allow_reentry (with strict_order only) */
#define FM_ALL			0x1f

#define FUNNEL_MODE_WORDS "strict_deduplication, strict_order, strict_increase, strict_once, allow_reentry"

/* interrupts are checked every FUNNEL_CFI_EVERY events of a group */
#define FUNNEL_CFI_EVERY	4096
#define FUNNEL_CFI(i) \
	do { \
		if (((i) & (FUNNEL_CFI_EVERY - 1)) == 0) \
			CHECK_FOR_INTERRUPTS(); \
	} while (0)

/* a window_funnel state's parameters, in memory */
typedef struct FunnelHeader
{
	int32		nsteps;			/* 1..64 */
	uint32		flags;			/* FM_* */
	int64		window;			/* microseconds, >= 0 */
	uint64		steps_id;		/* identity of the step names (0: boolean steps) */
} FunnelHeader;

/* payload of a CRM_MAGIC_FUNNEL_V1 state: this header, then FunnelEvent[] */
typedef struct FunnelHeaderV1
{
	int32		nsteps;
	uint32		flags;
	int64		window;
} FunnelHeaderV1;

typedef struct FunnelEvent
{
	int64		ts;				/* finite timestamptz */
	uint64		mask;			/* bit j-1 set: the row matches step j */
} FunnelEvent;

/*
 * A window_funnel state: one flat varlena, updated in place.
 *
 *     FunnelFlat (24 bytes) | int64 ts[cap] | mask[cap]
 *
 * The varlena size is the capacity in bytes, a power of two (exactly one
 * allocator chunk); cap = (size - 24) / (8 + w) events, w the width of a
 * step mask (1, 2, 4 or 8 bytes for up to 8, 16, 32 or 64 steps), so a
 * 4-step funnel costs 9 bytes per matching row.  Events in use are counted
 * in the header; the unused tail is zeroed.  The transition function
 * appends in place while an event fits; when it does not, it returns a copy
 * twice as large, allocated in the per-row context, which nodeAgg copies into
 * the aggregate context (freeing the old one): growth costs two copies
 * log2(n) times and nothing per row.  One small allocation per group keeps
 * hash aggregation over a million entities compact.  The first chunk (128
 * bytes: 10 events of up to 8 steps) is allocated on the group's first row,
 * whatever it matches, in the memory context that has just received the
 * group's hash entry, so it usually sits right after it: as long as it does
 * not grow, reading it costs no cache miss of its own (measured: about 10% of
 * a 10M-row hash aggregation over 1M groups).
 *
 * The first 8 bytes are those of every crm_analytics state (varlena header,
 * magic); states of the older layouts CRM_MAGIC_FUNNEL_V1 (a FunnelHeaderV1 and
 * FunnelEvent pairs) and CRM_MAGIC_FUNNEL_V2 (the 24-byte header of 0.2.0,
 * without steps_id) are still read, e.g. from a table of partial states.
 */
typedef struct FunnelFlat
{
	int32		vl_len_;		/* varlena header: capacity in bytes */
	uint32		magic;			/* CRM_MAGIC_FUNNEL */
	int64		window;			/* microseconds, >= 0 */
	int16		nsteps;			/* 1..64 */
	uint16		flags;			/* FM_* */
	int32		nevents;		/* events in use */
	uint64		steps_id;		/* step-name form: hash of the step names; else 0 */
} FunnelFlat;

/* the 0.2.0 layout (CRM_MAGIC_FUNNEL_V2): the same without steps_id (24 bytes) */
typedef struct FunnelFlatV2
{
	int32		vl_len_;
	uint32		magic;
	int64		window;
	int16		nsteps;
	uint16		flags;
	int32		nevents;
} FunnelFlatV2;

#define FUNNEL_FLAT_HDRSZ	sizeof(FunnelFlat)
#define FUNNEL_FLAT_MIN		128	/* smallest capacity: 10 events of up to 8 steps */

/* bytes per step mask for nsteps steps */
static inline int
FunnelMaskWidth(int nsteps)
{
	return nsteps <= 8 ? 1 : nsteps <= 16 ? 2 : nsteps <= 32 ? 4 : 8;
}

/* events that fit in a state of size bytes */
static inline int64
FunnelCapacityAt(Size size, int w, Size hdrsz)
{
	Size		b;

	if (size < hdrsz)
		return 0;
	b = size - hdrsz;
	/* constant divisors: this runs on every appended row */
	switch (w)
	{
		case 1:
			return (int64) (b / (sizeof(int64) + 1));
		case 2:
			return (int64) (b / (sizeof(int64) + 2));
		case 4:
			return (int64) (b / (sizeof(int64) + 4));
		default:
			return (int64) (b / (sizeof(int64) + 8));
	}
}

static inline int64
FunnelCapacity(Size size, int w)
{
	return FunnelCapacityAt(size, w, FUNNEL_FLAT_HDRSZ);
}

static inline int64 *
FunnelTimes(FunnelFlat *st)
{
	return (int64 *) ((char *) st + FUNNEL_FLAT_HDRSZ);
}

static inline char *
FunnelMasks(FunnelFlat *st, int w)
{
	return (char *) st + FUNNEL_FLAT_HDRSZ + sizeof(int64) * FunnelCapacity(VARSIZE(st), w);
}

static inline uint64
FunnelMaskGet(const char *masks, int w, int64 i)
{
	switch (w)
	{
		case 1:
			return ((const uint8 *) masks)[i];
		case 2:
			return ((const uint16 *) masks)[i];
		case 4:
			return ((const uint32 *) masks)[i];
		default:
			return ((const uint64 *) masks)[i];
	}
}

static inline void
FunnelMaskSet(char *masks, int w, int64 i, uint64 mask)
{
	switch (w)
	{
		case 1:
			((uint8 *) masks)[i] = (uint8) mask;
			break;
		case 2:
			((uint16 *) masks)[i] = (uint16) mask;
			break;
		case 4:
			((uint32 *) masks)[i] = (uint32) mask;
			break;
		default:
			((uint64 *) masks)[i] = mask;
			break;
	}
}

#define FUNNEL_STACK_EVENTS 32

/* funnel_state.c */
extern FunnelFlat *FunnelFlatNew(const FunnelHeader *h, int64 min_events, bool exact, FunnelFlat *src, int64 n);
extern bool FunnelRead(Datum d, FunnelHeader *h, FunnelEvent **events, int64 *nevents,
					   FunnelEvent *buf, int bufn);

/* the header of a state of the current layout */
static inline FunnelHeader
FunnelFlatHeader(const FunnelFlat *st)
{
	FunnelHeader h;

	h.nsteps = st->nsteps;
	h.flags = st->flags;
	h.window = st->window;
	h.steps_id = st->steps_id;
	return h;
}

/* append one event, growing (into a new copy) when full; returns the state */
static inline FunnelFlat *
FunnelFlatPush(FunnelFlat *st, int64 ts, uint64 mask)
{
	int			w = FunnelMaskWidth(st->nsteps);

	if (st->nevents >= FunnelCapacity(VARSIZE(st), w))
	{
		FunnelHeader h = FunnelFlatHeader(st);

		st = FunnelFlatNew(&h, (int64) st->nevents + 1, false, st, st->nevents);
	}
	FunnelTimes(st)[st->nevents] = ts;
	FunnelMaskSet(FunnelMasks(st, w), w, st->nevents, mask);
	st->nevents++;
	return st;
}

typedef struct FunnelStepsCache
{
	Size		arrsize;		/* bytes of the cached steps array ... */
	char	   *arrbytes;		/* ... and a copy of them */
	bool		constant;		/* the argument is a constant of the query */
	uint64		id;				/* hash of the names (never 0): their identity in a state */
	int			n;
	int		   *lens;			/* byte length of name k, -1 for a NULL element */
	uint64	   *heads;			/* its first (up to) 8 bytes, zero-padded */
	const char **names;			/* its bytes, inside arrbytes */
} FunnelStepsCache;

/* the first (up to) 8 bytes of a string as one zero-padded word */
static inline uint64
FunnelHead(const char *p, int len)
{
	uint64		h = 0;

	memcpy(&h, p, Min(len, 8));
	return h;
}

/* the step mask of a step name: bit k-1 set when it equals name k (byte-wise) */
static inline uint64
FunnelNameMask(const FunnelStepsCache *c, const char *step, int len)
{
	uint64		mask = 0;
	uint64		head = FunnelHead(step, len);
	int			i;

	/* candidates: same length and first 8 bytes, without a branch per name */
	for (i = 0; i < c->n; i++)
		mask |= (uint64) ((c->lens[i] == len) & (c->heads[i] == head)) << i;
	if (len > 8 && mask != 0)
	{
		uint64		m;

		/* long names: the candidates must agree on the rest too */
		for (m = mask; m != 0; m &= m - 1)
		{
			i = pg_rightmost_one_pos64(m);
			if (memcmp(c->names[i] + 8, step + 8, len - 8) != 0)
				mask &= ~FUNNEL_BIT(i);
		}
	}
	return mask;
}

/* funnel_agg.c */
extern void FunnelCheckSteps(int nsteps, const char *what);
extern bool FunnelAggArgIsConst(FunctionCallInfo fcinfo, int argno);
extern int	FunnelErrContext(FunctionCallInfo fcinfo);

/* funnel_names.c */
extern FunnelStepsCache *FunnelStepsArg(FunctionCallInfo fcinfo, FunnelStepsCache **slot, ArrayType *arr,
										int const_argno, const char *what);

/* funnel_scan.c */
extern int	FunnelEvaluate(const FunnelHeader *h, FunnelEvent *ev, int64 nev, int64 *times);

#endif							/* CRM_FUNNEL_H */
