/*
 * clv_pattern.c
 *      The aggregate state of the model fits (crm.bgnbd_state,
 *      crm.gamma_gamma_state; docs/clv.md): customers compressed to their
 *      distinct patterns with a weight, and its text form.
 *
 * Payload: PatternHeader, then entries of width doubles each: the key
 * (BG/NBD: x, t_x, T; Gamma-Gamma: x, mbar) and a weight last.  The first
 * nsorted entries are sorted by key and distinct; rows are appended after
 * them and merged in (sort + dedupe) whenever the unsorted tail grows as
 * large as the sorted part, so memory stays proportional to the number of
 * distinct patterns and the work per row is amortised O(log n).
 */
#include "clv.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/memutils.h"

typedef struct PatternHeader
{
	int32		width;			/* doubles per entry, weight last */
	int32		pad;
	int64		nsorted;
	int64		nall;
} PatternHeader;

#define PATTERN_MIN_TAIL 4096

static int	pattern_cmp_keys;	/* keys for PatternCmp (qsort has no context) */

static int
PatternCmp(const void *a, const void *b)
{
	const double *x = a;
	const double *y = b;
	int			i;

	for (i = 0; i < pattern_cmp_keys; i++)
	{
		if (x[i] < y[i])
			return -1;
		if (x[i] > y[i])
			return 1;
	}
	return 0;
}

/*
 * The two pattern widths the models use (BG/NBD: x, t_x, T, weight;
 * Gamma-Gamma: x, mbar, weight) get sorts with the comparison inlined
 * (PostgreSQL's sort template): sorting a million patterns through qsort's
 * comparison callback was a fifth of a BG/NBD fit.
 */
typedef struct Pattern4
{
	double		v[4];
} Pattern4;
typedef struct Pattern3
{
	double		v[3];
} Pattern3;

static inline int
Pattern4Cmp(const Pattern4 *a, const Pattern4 *b)
{
	int			i;

	for (i = 0; i < 3; i++)
		if (a->v[i] != b->v[i])
			return a->v[i] < b->v[i] ? -1 : 1;
	return 0;
}

static inline int
Pattern3Cmp(const Pattern3 *a, const Pattern3 *b)
{
	int			i;

	for (i = 0; i < 2; i++)
		if (a->v[i] != b->v[i])
			return a->v[i] < b->v[i] ? -1 : 1;
	return 0;
}

#define ST_SORT pattern4_sort
#define ST_ELEMENT_TYPE Pattern4
#define ST_COMPARE(a, b) Pattern4Cmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

#define ST_SORT pattern3_sort
#define ST_ELEMENT_TYPE Pattern3
#define ST_COMPARE(a, b) Pattern3Cmp(a, b)
#define ST_CHECK_FOR_INTERRUPTS
#define ST_SCOPE static
#define ST_DECLARE
#define ST_DEFINE
#include "lib/sort_template.h"

/* sort n entries of the given width by all keys (every field but the last) */
static void
PatternSort(double *e, int64 n, int width)
{
	StaticAssertStmt(sizeof(Pattern4) == 4 * sizeof(double) && sizeof(Pattern3) == 3 * sizeof(double),
					 "pattern structs must be packed arrays of doubles");
	if (width == 4)
		pattern4_sort((Pattern4 *) e, n);
	else if (width == 3)
		pattern3_sort((Pattern3 *) e, n);
	else
	{
		pattern_cmp_keys = width - 1;
		qsort(e, n, sizeof(double) * width, PatternCmp);
	}
}

/* sort and merge all entries of a pattern array in place; returns distinct count */
static int64
PatternCompactArray(double *e, int64 n, int width)
{
	int64		i, out;

	if (n <= 1)
		return n;
	PatternSort(e, n, width);
	pattern_cmp_keys = width - 1;
	out = 0;
	for (i = 1; i < n; i++)
	{
		double	   *cur = e + i * width;
		double	   *dst = e + out * width;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		if (PatternCmp(cur, dst) == 0)
			dst[width - 1] += cur[width - 1];
		else
		{
			out++;
			if (out != i)
				memcpy(e + out * width, cur, sizeof(double) * width);
		}
	}
	return out + 1;
}

static inline PatternHeader *
PatternHdr(CrmState *st)
{
	return (PatternHeader *) st->data;
}

static inline double *
PatternEntries(CrmState *st)
{
	return (double *) (st->data + sizeof(PatternHeader));
}

/*
 * Merge the unsorted tail e[nsorted..nall) into the sorted, distinct prefix:
 * sort and dedupe the tail alone, then one linear merge.  Returns the new
 * number of entries (all sorted and distinct).
 */
static int64
PatternMergeTail(double *e, int64 nsorted, int64 nall, int width)
{
	double	   *tail = e + nsorted * width;
	int64		ntail = PatternCompactArray(tail, nall - nsorted, width);
	double	   *out;
	int64		i = 0, j = 0, n = 0;
	Size		esz = sizeof(double) * width;

	if (nsorted == 0)
		return ntail;
	out = palloc(esz * (nsorted + ntail));
	pattern_cmp_keys = width - 1;
	while (i < nsorted || j < ntail)
	{
		const double *a = i < nsorted ? e + i * width : NULL;
		const double *b = j < ntail ? tail + j * width : NULL;
		int			c = a == NULL ? 1 : (b == NULL ? -1 : PatternCmp(a, b));

		if ((n & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		if (c < 0)
		{
			memcpy(out + n * width, a, esz);
			i++;
		}
		else if (c > 0)
		{
			memcpy(out + n * width, b, esz);
			j++;
		}
		else
		{
			memcpy(out + n * width, a, esz);
			out[n * width + width - 1] += b[width - 1];
			i++;
			j++;
		}
		n++;
	}
	memcpy(e, out, esz * n);
	pfree(out);
	return n;
}

/* compact the state: everything sorted and distinct */
static void
PatternCompact(CrmState *st)
{
	PatternHeader *h = PatternHdr(st);

	if (h->nsorted == h->nall)
		return;
	h->nall = PatternMergeTail(PatternEntries(st), h->nsorted, h->nall, h->width);
	h->nsorted = h->nall;
	st->len = sizeof(PatternHeader) + (Size) h->nall * h->width * sizeof(double);
}

/* writable pattern state of argument argno, header initialised */
CrmState *
ClvPatternArg(FunctionCallInfo fcinfo, int argno, MemoryContext aggcontext, uint32 magic, int width)
{
	CrmState   *st = CrmStateArgRW(fcinfo, argno, aggcontext, magic, 1024);

	if (st->len == 0)
	{
		PatternHeader *h = (PatternHeader *) CrmStateReserve(st, sizeof(PatternHeader));

		h->width = width;
		h->pad = 0;
		h->nsorted = 0;
		h->nall = 0;
		st->len = sizeof(PatternHeader);
	}
	return st;
}

/* append one entry; compacts when the tail is as long as the sorted part */
void
ClvPatternAppend(CrmState *st, const double *entry)
{
	PatternHeader *h;
	int			width = PatternHdr(st)->width;
	char	   *p = CrmStateReserve(st, sizeof(double) * width);

	memcpy(p, entry, sizeof(double) * width);
	st->len += sizeof(double) * width;
	h = PatternHdr(st);
	h->nall++;
	if (h->nall - h->nsorted >= Max(PATTERN_MIN_TAIL, h->nsorted))
		PatternCompact(st);
}

/* validated read-only view of a pattern payload */
static const double *
PatternView(const char *payload, Size len, int width, int64 *n)
{
	PatternHeader h;

	if (len == 0)
	{
		*n = 0;
		return NULL;
	}
	if (len < sizeof(PatternHeader))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid model fit state: too short")));
	memcpy(&h, payload, sizeof(h));
	if (h.width != width || h.nall < 0 || h.nsorted < 0 || h.nsorted > h.nall ||
		len != sizeof(PatternHeader) + (Size) h.nall * width * sizeof(double))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid model fit state: bad size or count")));
	*n = h.nall;
	return (const double *) (payload + sizeof(PatternHeader));
}

/* combine: append every entry of the right state to the left one */
Datum
ClvPatternCombine(FunctionCallInfo fcinfo, const char *fname, uint32 magic, int width)
{
	MemoryContext aggcontext = CrmAggContext(fcinfo, fname);
	CrmState   *st;
	const char *rp;
	Size		rlen;
	const double *re;
	int64		rn, i;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_DATUM(CrmStateGetDatum(ClvPatternArg(fcinfo, 0, aggcontext, magic, width)));
	}
	st = ClvPatternArg(fcinfo, 0, aggcontext, magic, width);
	rp = CrmStatePayload(PG_GETARG_DATUM(1), magic, &rlen);
	re = PatternView(rp, rlen, width, &rn);
	for (i = 0; i < rn; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		ClvPatternAppend(st, re + i * width);
	}
	PG_RETURN_DATUM(CrmStateGetDatum(st));
}

/*
 * Text form: the count, then the doubles of each distinct entry, each the
 * shortest decimal that reads back exactly.  0.1.0 and 0.2.0 wrote the
 * same fields with %.17g, which reads back to the same doubles.
 */
char *
ClvPatternOut(Datum d, uint32 magic, int width)
{
	Size		len;
	const char *payload = CrmStatePayload(d, magic, &len);
	int64		n, i;
	int			j;
	const double *view = PatternView(payload, len, width, &n);
	double	   *e = NULL;
	StringInfoData buf;

	/* print the compacted patterns, so the text form is canonical */
	if (n > 0)
	{
		e = palloc(sizeof(double) * width * n);
		memcpy(e, view, sizeof(double) * width * n);
		n = PatternCompactArray(e, n, width);
	}
	initStringInfo(&buf);
	CrmTextWriteInt64(&buf, n);
	for (i = 0; i < n; i++)
	{
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
		for (j = 0; j < width; j++)
		{
			appendStringInfoChar(&buf, ' ');
			CrmTextWriteFloat8(&buf, e[i * width + j]);
		}
	}
	return buf.data;
}

/* the names of the fields of an entry, for the reader's messages */
static const char *
PatternFieldName(int width, int j)
{
	static const char *const bgnbd[] = {"frequency", "recency", "t", "weight"};
	static const char *const gg[] = {"frequency", "monetary", "weight"};

	if (width == 4)
		return bgnbd[j];
	if (width == 3)
		return gg[j];
	return "a pattern field";
}

/* read the text form; every entry goes through the row validation */
Datum
ClvPatternIn(const char *text, uint32 magic, int width, const char *typname, ClvPatternCheck check)
{
	CrmTextReader r;
	int64		n, i;
	int			j;
	StringInfoData buf;
	PatternHeader h;

	Assert(width <= 4);
	CrmTextReaderInit(&r, text, typname);
	while (*r.p == ' ')
		r.p++;
	n = CrmTextReadInt64(&r, "the pattern count", 0,
						 (int64) (MaxAllocSize / (sizeof(double) * width)));
	initStringInfo(&buf);
	h.width = width;
	h.pad = 0;
	h.nsorted = 0;
	h.nall = n;
	appendBinaryStringInfo(&buf, (char *) &h, sizeof(h));
	for (i = 0; i < n; i++)
	{
		double		e[4];
		const char *start;
		const char *end;

		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();

		ClvTextSpace(&r);
		start = r.p;
		for (j = 0; j < width; j++)
		{
			if (j > 0)
				ClvTextSpace(&r);
			e[j] = CrmTextReadFloat8(&r, PatternFieldName(width, j));
		}
		end = r.p;
		r.p = start;			/* errors about the entry point at its start */
		if (!(e[width - 1] > 0))
			CrmTextError(&r, "Invalid pattern: weights must be positive");
		check(e, &r);
		r.p = end;
		appendBinaryStringInfo(&buf, (char *) e, sizeof(double) * width);
	}
	ClvTextEnd(&r);
	return PointerGetDatum(CrmStateFlatFromPayload(magic, buf.data, buf.len));
}

/* the sorted distinct patterns of a state, as a palloc'd array */
double *
ClvPatternsForFit(Datum d, uint32 magic, int width, int64 *n, double *weight)
{
	Size		len;
	const char *payload = CrmStatePayload(d, magic, &len);
	const double *view = PatternView(payload, len, width, n);
	double	   *e;
	int64		i;

	*weight = 0;
	if (*n == 0)
		return NULL;
	e = palloc(sizeof(double) * width * *n);
	memcpy(e, view, sizeof(double) * width * *n);
	*n = PatternCompactArray(e, *n, width);
	for (i = 0; i < *n; i++)
		*weight += e[i * width + width - 1];
	return e;
}

/* ------------------------------------------------------------------------
 * Text helpers shared with clv_summary.c
 * ------------------------------------------------------------------------
 */
void
ClvTextSpace(CrmTextReader *r)
{
	if (*r->p != ' ')
		CrmTextError(r, *r->p == '\0' ? "Too few fields" : "Expected a space");
	while (*r->p == ' ')
		r->p++;
}

void
ClvTextEnd(CrmTextReader *r)
{
	while (*r->p == ' ')
		r->p++;
	CrmTextExpectEnd(r);
}

void
ClvRowError(CrmTextReader *r, const char *hint, const char *fmt,...)
{
	char		msg[256];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	if (r != NULL)
		CrmTextError(r, "Invalid pattern: %s", msg);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}
