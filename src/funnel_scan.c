/*
 * funnel_scan.c
 *      The final scan of window_funnel (docs/funnel.md): the events of a group
 *      sorted by (ts, step mask), then scanned once, timestamp group by
 *      timestamp group, for every mode; and the final functions of
 *      crm.window_funnel and crm.window_funnel_times.
 */
#include "funnel.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "port/pg_bitutils.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(funnel_window_finalfn);
PG_FUNCTION_INFO_V1(funnel_window_times_finalfn);

/* ------------------------------------------------------------------------
 * window_funnel final: sort, then one scan by groups of equal timestamps
 * ------------------------------------------------------------------------
 */

/* order events by (ts, mask) */
static int
FunnelEventCmp(const void *a, const void *b)
{
	const FunnelEvent *x = (const FunnelEvent *) a;
	const FunnelEvent *y = (const FunnelEvent *) b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->mask != y->mask)
		return x->mask < y->mask ? -1 : 1;
	return 0;
}

/* scan working storage: per level (0-based j = level j+1) the best chain start */
typedef struct FunnelScan
{
	int			n;				/* steps */
	uint32		flags;
	uint64		window;
	int			level;			/* highest level reached so far */
	bool		started;		/* a step-1 event was seen */
	uint64		has;			/* bit j: committed (or live) level j+1 reached */
	int64		first[FUNNEL_MAX_STEPS];	/* its chain's step-1 time (latest) */
	uint64		phas;			/* bit j: pending, this timestamp group */
	int64		pfirst[FUNNEL_MAX_STEPS];
	/* times: chain[j * n + i] = time of step i+1 in the chain of level j+1 */
	int64	   *chain;
	int64	   *pchain;
	int64	   *best;			/* chain of the first time 'level' was reached */
} FunnelScan;

/* a new highest level: remember the chain that reached it */
static inline void
FunnelNoteLevel(FunnelScan *s, int lvl, const int64 *chain)
{
	if (lvl > s->level)
	{
		s->level = lvl;
		if (s->best)
			memcpy(s->best, chain, sizeof(int64) * lvl);
	}
}

/* set (pending or live) level j (0-based) to a chain = prefix of level j-1 + t repeated */
static inline void
FunnelOffer(FunnelScan *s, bool pending, int j, int64 first, const int64 *prefix, int prefix_len, int64 t)
{
	uint64	   *hasv = pending ? &s->phas : &s->has;
	int64	   *firstv = pending ? s->pfirst : s->first;

	if ((*hasv & FUNNEL_BIT(j)) && firstv[j] >= first)
		return;					/* keep the earlier chain with the same or a later start */
	*hasv |= FUNNEL_BIT(j);
	firstv[j] = first;
	if (s->chain)
	{
		int64	   *c = (pending ? s->pchain : s->chain) + (Size) j * s->n;
		int			i;

		if (prefix_len > 0 && c != prefix)
			memmove(c, prefix, sizeof(int64) * prefix_len);
		for (i = prefix_len; i <= j; i++)
			c[i] = t;
	}
	if (!pending)
		FunnelNoteLevel(s, j + 1, s->chain ? s->chain + (Size) j * s->n : NULL);
}

/* move the pending chains of a timestamp group into the committed ones */
static void
FunnelCommit(FunnelScan *s)
{
	uint64		p = s->phas;
	int			j;

	/* live offers (no pending ones) have noted their level already */
	if (p == 0)
		return;
	s->phas = 0;
	for (; p != 0; p &= p - 1)
	{
		j = pg_rightmost_one_pos64(p);
		if ((s->has & FUNNEL_BIT(j)) && s->first[j] >= s->pfirst[j])
			continue;
		s->has |= FUNNEL_BIT(j);
		s->first[j] = s->pfirst[j];
		if (s->chain)
			memcpy(s->chain + (Size) j * s->n, s->pchain + (Size) j * s->n, sizeof(int64) * (j + 1));
	}
	j = pg_leftmost_one_pos64(s->has);
	FunnelNoteLevel(s, j + 1, s->chain ? s->chain + (Size) j * s->n : NULL);
}

/* is level j (0-based) reached, counting this group's pending chains */
static inline bool
FunnelReached(const FunnelScan *s, int j)
{
	return ((s->has | s->phas) & FUNNEL_BIT(j)) != 0;
}

/*
 * One event (t, step j+1) in (ts, step) order, for every mode but
 * strict_once without strict_increase.  Returns false when the scan ends.
 */
static bool
FunnelEventStep(FunnelScan *s, int64 t, int j)
{
	bool		incr = (s->flags & FM_INCREASE) != 0;

	if (j == 0)
	{
		s->started = true;
		FunnelOffer(s, incr, 0, t, NULL, 0, t);
		return true;
	}
	if ((s->flags & FM_DEDUP) && FunnelReached(s, j))
		return false;
	if ((s->flags & FM_ORDER) && s->started && !FunnelReached(s, j - 1))
		return (s->flags & FM_REENTRY) != 0;	/* allow_reentry: the event is ignored */
	/* extend the chain of level j-1 with the latest start (committed only when strict_increase) */
	if ((s->has & FUNNEL_BIT(j - 1)) && (uint64) t - (uint64) s->first[j - 1] <= s->window)
		FunnelOffer(s, incr, j, s->first[j - 1],
					s->chain ? s->chain + (Size) (j - 1) * s->n : NULL, j, t);
	return true;
}

/* Kuhn's augmenting path: give step k a row of the group (rows[r] = step mask) */
static bool
FunnelAugment(int k, const uint64 *rows, int nrows, int *row_step, bool *seen)
{
	int			r;

	for (r = 0; r < nrows; r++)
	{
		FUNNEL_CFI(r);
		if (seen[r] || !(rows[r] & (UINT64CONST(1) << k)))
			continue;
		seen[r] = true;
		if (row_step[r] < 0 || FunnelAugment(row_step[r], rows, nrows, row_step, seen))
		{
			row_step[r] = k;
			return true;
		}
	}
	return false;
}

/*
 * strict_once (without strict_increase): the rows of one timestamp group can
 * fill a run of consecutive steps j..k when the steps can be matched to
 * distinct rows.  For every valid start j, extend the matching step by step.
 */
static void
FunnelGroupOnce(FunnelScan *s, int64 t, const FunnelEvent *ev, int nrows)
{
	uint64	   *rows;
	int		   *row_step;
	bool	   *seen;
	uint64		any = 0;
	int			j;
	int			r;

	if (nrows == 1)
	{
		/* one row fills one step: start a chain or extend a committed one */
		for (j = 0; j < s->n; j++)
		{
			if (!(ev[0].mask & (UINT64CONST(1) << j)))
				continue;
			if (j == 0)
			{
				s->started = true;
				FunnelOffer(s, true, 0, t, NULL, 0, t);
			}
			else if ((s->has & FUNNEL_BIT(j - 1)) && (uint64) t - (uint64) s->first[j - 1] <= s->window)
				FunnelOffer(s, true, j, s->first[j - 1],
							s->chain ? s->chain + (Size) (j - 1) * s->n : NULL, j, t);
		}
		return;
	}
	rows = palloc(sizeof(uint64) * nrows);
	row_step = palloc(sizeof(int) * nrows);
	seen = palloc(sizeof(bool) * nrows);
	for (r = 0; r < nrows; r++)
	{
		rows[r] = ev[r].mask;
		any |= ev[r].mask;
	}
	/*
	 * Later starts first: on a tie in the chain start the chain that keeps
	 * more earlier (committed) steps is offered first and wins.
	 */
	for (j = s->n - 1; j >= 0; j--)
	{
		int64		first;
		int			k;

		if (!(any & (UINT64CONST(1) << j)))
			continue;
		if (j == 0)
		{
			first = t;
			s->started = true;
		}
		else if ((s->has & FUNNEL_BIT(j - 1)) && (uint64) t - (uint64) s->first[j - 1] <= s->window)
			first = s->first[j - 1];
		else
			continue;
		for (r = 0; r < nrows; r++)
			row_step[r] = -1;
		for (k = j; k < s->n; k++)
		{
			memset(seen, 0, sizeof(bool) * nrows);
			if (!FunnelAugment(k, rows, nrows, row_step, seen))
				break;
			FunnelOffer(s, true, k, first,
						(s->chain && j > 0) ? s->chain + (Size) (j - 1) * s->n : NULL, j, t);
		}
	}
	pfree(rows);
	pfree(row_step);
	pfree(seen);
}

/* the sort of long event lists: comparison inlined, interrupts checked */
#define ST_SORT funnel_event_sort
#define ST_ELEMENT_TYPE FunnelEvent
#define ST_COMPARE(a, b) FunnelEventCmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * strict_once (without strict_increase) with strict_deduplication and/or
 * strict_order: the steps of the group are taken in ascending order, as the
 * other modes do, and each ends the scan when its mode says so (a step
 * already reached under strict_deduplication; a step whose previous one is
 * not reached under strict_order, unless allow_reentry ignores it).  The rows
 * of the group then fill only the steps taken before the one that ended the
 * scan, with strict_once's matching (a row fills at most one step of a
 * chain).  Returns false when the scan ends after this group.
 */
static bool
FunnelGroupOnceModes(FunnelScan *s, int64 t, const FunnelEvent *ev, int nrows)
{
	FunnelEvent sbuf[FUNNEL_STACK_EVENTS];
	FunnelEvent *mev;
	uint64		any = 0;
	uint64		twice = 0;
	uint64		allowed = 0;
	bool		unmatched = false;
	bool		go = true;
	int			r;

	for (r = 0; r < nrows; r++)
	{
		twice |= any & ev[r].mask;
		any |= ev[r].mask;
		if (ev[r].mask == 0)
			unmatched = true;
	}
	/* strict_order: a row matching no step sorts first in its group */
	if ((s->flags & FM_ORDER) && unmatched && s->started)
		return false;
	if (s->n < 64)
		any &= FUNNEL_BIT(s->n) - 1;
	mev = nrows <= FUNNEL_STACK_EVENTS ? sbuf : palloc(sizeof(FunnelEvent) * nrows);
	for (; any != 0; any &= any - 1)
	{
		int			j = pg_rightmost_one_pos64(any);

		if (j > 0 && (s->flags & FM_DEDUP) && FunnelReached(s, j))
		{
			go = false;
			break;
		}
		if (j > 0 && (s->flags & FM_ORDER) && s->started && !FunnelReached(s, j - 1))
		{
			if (s->flags & FM_REENTRY)
				continue;		/* the step is ignored, the rows still fill the others */
			go = false;
			break;
		}
		allowed |= FUNNEL_BIT(j);
		for (r = 0; r < nrows; r++)
		{
			FUNNEL_CFI(r);
			mev[r].ts = ev[r].ts;
			mev[r].mask = ev[r].mask & allowed;
		}
		/* offers only grow with the allowed steps: rerunning keeps the earlier ones */
		FunnelGroupOnce(s, t, mev, nrows);
		/* a second row of the step at the same time is a repetition */
		if ((twice & FUNNEL_BIT(j)) && j > 0 && (s->flags & FM_DEDUP) && FunnelReached(s, j))
		{
			go = false;
			break;
		}
	}
	if (mev != sbuf)
		pfree(mev);
	return go;
}

/* sort events by (ts, mask): insertion sort for the short lists of one entity, the sort template beyond */
static void
FunnelSortEvents(FunnelEvent *ev, int64 n)
{
	int64		i;

	if (n > 32)
	{
		funnel_event_sort(ev, n);
		return;
	}
	for (i = 1; i < n; i++)
	{
		FunnelEvent x = ev[i];
		int64		k = i;

		while (k > 0 && (ev[k - 1].ts > x.ts || (ev[k - 1].ts == x.ts && ev[k - 1].mask > x.mask)))
		{
			ev[k] = ev[k - 1];
			k--;
		}
		ev[k] = x;
	}
}

/*
 * The level of the events ev[0..nev) (the caller's copy, sorted here in
 * place); when times is not NULL it receives the chain (level entries).
 * The scan arrays are initialised for the state's step count only.
 */
int
FunnelEvaluate(const FunnelHeader *h, FunnelEvent *ev, int64 nev, int64 *times)
{
	FunnelScan	scan;
	FunnelScan *s = &scan;
	int64		i;
	int			level;

	if (nev == 0)
		return 0;
	for (i = 1; i < nev; i++)
	{
		FUNNEL_CFI(i);
		if (FunnelEventCmp(&ev[i - 1], &ev[i]) > 0)
			break;
	}
	if (i < nev)
		FunnelSortEvents(ev, nev);

	s->n = h->nsteps;
	s->flags = h->flags;
	s->window = (uint64) h->window;
	s->level = 0;
	s->started = false;
	s->has = 0;
	s->phas = 0;
	s->chain = NULL;
	s->pchain = NULL;
	s->best = NULL;
	if (times)
	{
		s->chain = palloc0(sizeof(int64) * s->n * s->n);
		s->pchain = palloc0(sizeof(int64) * s->n * s->n);
		s->best = times;
	}

	i = 0;
	while (i < nev && s->level < s->n)
	{
		int64		t = ev[i].ts;
		int64		g = i;
		bool		stop = false;

		while (g < nev && ev[g].ts == t)
		{
			FUNNEL_CFI(g);
			g++;
		}
		/* one check per group too: a group of one event each may be long */
		CHECK_FOR_INTERRUPTS();

		if ((s->flags & FM_ONCE) && !(s->flags & FM_INCREASE) && !(s->flags & (FM_DEDUP | FM_ORDER)))
			FunnelGroupOnce(s, t, ev + i, (int) Min(g - i, INT_MAX));
		else if ((s->flags & FM_ONCE) && !(s->flags & FM_INCREASE))
			stop = !FunnelGroupOnceModes(s, t, ev + i, (int) Min(g - i, INT_MAX));
		else
		{
			uint64		any = 0;
			uint64		twice = 0;
			bool		unmatched = false;
			int64		r;
			int			j;

			for (r = i; r < g; r++)
			{
				twice |= any & ev[r].mask;
				any |= ev[r].mask;
				if (ev[r].mask == 0)
					unmatched = true;
			}
			/* strict_order: a row matching no step sorts first in its group */
			if ((s->flags & FM_ORDER) && unmatched && s->started)
				stop = true;
			/* the steps of the group in ascending order (none beyond the state's steps) */
			if (s->n < 64)
				any &= FUNNEL_BIT(s->n) - 1;
			for (; !stop && any != 0; any &= any - 1)
			{
				j = pg_rightmost_one_pos64(any);
				if (!FunnelEventStep(s, t, j))
					stop = true;
				/* a second event of the same step at the same time */
				else if ((twice & FUNNEL_BIT(j)) && !FunnelEventStep(s, t, j))
					stop = true;
			}
		}
		FunnelCommit(s);
		if (stop)
			break;
		i = g;
	}
	level = s->level;
	if (s->chain)
	{
		pfree(s->chain);
		pfree(s->pchain);
	}
	return level;
}

/* crm.window_funnel final function -> int */
Datum
funnel_window_finalfn(PG_FUNCTION_ARGS)
{
	FunnelHeader h;
	FunnelEvent buf[FUNNEL_STACK_EVENTS];
	FunnelEvent *ev;
	int64		n;

	CrmAggContext(fcinfo, "window_funnel");
	if (PG_ARGISNULL(0) || !FunnelRead(PG_GETARG_DATUM(0), &h, &ev, &n, buf, FUNNEL_STACK_EVENTS))
		PG_RETURN_INT32(0);
	PG_RETURN_INT32(FunnelEvaluate(&h, ev, n, NULL));
}

/* crm.window_funnel_times final function -> timestamptz[] */
Datum
funnel_window_times_finalfn(PG_FUNCTION_ARGS)
{
	FunnelHeader h;
	FunnelEvent buf[FUNNEL_STACK_EVENTS];
	FunnelEvent *ev;
	int64		n;
	int64		times[FUNNEL_MAX_STEPS];
	Datum		elems[FUNNEL_MAX_STEPS];
	int			level = 0;
	int			i;

	CrmAggContext(fcinfo, "window_funnel_times");
	if (!PG_ARGISNULL(0) && FunnelRead(PG_GETARG_DATUM(0), &h, &ev, &n, buf, FUNNEL_STACK_EVENTS))
		level = FunnelEvaluate(&h, ev, n, times);
	for (i = 0; i < level; i++)
		elems[i] = TimestampTzGetDatum(times[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, level, TIMESTAMPTZOID, sizeof(TimestampTz),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
