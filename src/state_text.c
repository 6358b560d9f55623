/*
 * state_text.c
 *      The one text reader and writer of the state types.
 *
 *      Every state type of the extension has a text form (its input and
 *      output functions), because a state can be printed, stored in a
 *      table, or sent between the nodes of a distributed query.  The forms
 *      differ per type (docs/scaling.md lists them), but they are all made
 *      of the same pieces: integers, finite float8 values and literal
 *      punctuation.  This file reads and writes those pieces, so every type
 *      parses numbers the same way (no strtol, no errno, overflow checked)
 *      and reports a malformed text with the same message and SQLSTATE:
 *
 *          invalid input syntax for type <type>: "<the whole text>"
 *          DETAIL:  <what was wrong, and where>
 *
 *      Readers never read past the terminating NUL: every function stops at
 *      the first character that does not fit.
 */
#include "crm_analytics.h"

#include <math.h>

#include "common/int.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

void
CrmTextReaderInit(CrmTextReader *r, const char *input, const char *typname)
{
	r->input = input;
	r->p = input;
	r->typname = typname;
}

void
CrmTextError(CrmTextReader *r, const char *fmt,...)
{
	char		detail[256];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(detail, sizeof(detail), fmt, args);
	va_end(args);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type %s: \"%s\"", r->typname, r->input),
			 errdetail("%s (at character %d).", detail, (int) (r->p - r->input) + 1)));
	pg_unreachable();
}

/* digits at r->p as an unsigned magnitude; false when there are none or too many */
static bool
ReadMagnitude(CrmTextReader *r, uint64 *out)
{
	uint64		v = 0;
	const char *p = r->p;

	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
	{
		if (pg_mul_u64_overflow(v, 10, &v) || pg_add_u64_overflow(v, (uint64) (*p - '0'), &v))
			return false;
		p++;
	}
	r->p = p;
	*out = v;
	return true;
}

int64
CrmTextReadInt64(CrmTextReader *r, const char *what, int64 min, int64 max)
{
	const char *start = r->p;
	bool		neg = false;
	uint64		mag;
	int64		v;

	if (*r->p == '-')
	{
		neg = true;
		r->p++;
	}
	if (!ReadMagnitude(r, &mag))
	{
		r->p = start;
		CrmTextError(r, "Expected an integer for %s", what);
	}
	if (neg)
	{
		if (mag > (uint64) PG_INT64_MAX + 1)
			goto range;
		v = (mag == (uint64) PG_INT64_MAX + 1) ? PG_INT64_MIN : -(int64) mag;
	}
	else
	{
		if (mag > (uint64) PG_INT64_MAX)
			goto range;
		v = (int64) mag;
	}
	if (v < min || v > max)
		goto range;
	return v;
range:
	r->p = start;
	CrmTextError(r, "The %s must be between " INT64_FORMAT " and " INT64_FORMAT, what, min, max);
	return 0;
}

uint64
CrmTextReadUInt64(CrmTextReader *r, const char *what)
{
	uint64		v;

	if (!ReadMagnitude(r, &v))
		CrmTextError(r, "Expected an unsigned integer for %s", what);
	return v;
}

double
CrmTextReadFloat8(CrmTextReader *r, const char *what)
{
	const char *p = r->p;
	const char *start = p;
	char		buf[64];
	char	   *end;
	double		v;
	size_t		n;

	/* the characters a finite decimal float8 may have: sign, digits, '.', exponent */
	if (*p == '-' || *p == '+')
		p++;
	while ((*p >= '0' && *p <= '9') || *p == '.')
		p++;
	if (p > start && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (*p == '-' || *p == '+')
			p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	n = p - start;
	if (n == 0 || n >= sizeof(buf))
		CrmTextError(r, "Expected a finite number for %s", what);
	memcpy(buf, start, n);
	buf[n] = '\0';
	errno = 0;
	v = strtod(buf, &end);
	if (end != buf + n || errno != 0 || isnan(v) || isinf(v))
		CrmTextError(r, "Expected a finite number for %s", what);
	r->p = p;
	return v;
}

bool
CrmTextSkip(CrmTextReader *r, const char *lit)
{
	size_t		n = strlen(lit);

	if (strncmp(r->p, lit, n) != 0)
		return false;
	r->p += n;
	return true;
}

void
CrmTextExpect(CrmTextReader *r, const char *lit)
{
	if (!CrmTextSkip(r, lit))
		CrmTextError(r, "Expected \"%s\"", lit);
}

void
CrmTextExpectEnd(CrmTextReader *r)
{
	if (*r->p != '\0')
		CrmTextError(r, "Unexpected text at the end");
}

void
CrmTextWriteInt64(StringInfo buf, int64 v)
{
	appendStringInfo(buf, INT64_FORMAT, v);
}

void
CrmTextWriteUInt64(StringInfo buf, uint64 v)
{
	appendStringInfo(buf, UINT64_FORMAT, v);
}

/* the shortest text that reads back as exactly v (v finite) */
void
CrmTextWriteFloat8(StringInfo buf, double v)
{
	char		num[DOUBLE_SHORTEST_DECIMAL_LEN];

	double_to_shortest_decimal_buf(v, num);
	appendStringInfoString(buf, num);
}
