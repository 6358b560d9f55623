/*
 * pg_numeric.c
 *      A numeric datum as a scaled 128-bit integer, for the exact revenue of
 *      the cohort functions (retention_money.c).
 *
 *      PostgreSQL internals: the fast path reads numeric's stored form (the
 *      NumericData layout of src/backend/utils/adt/numeric.c, which is not in
 *      any header): a 16-bit header word with the sign, the display scale
 *      and, in the short format, the weight; then base-10000 digits.  The
 *      masks below are the ones of numeric.c in PostgreSQL 14 and 15 (14
 *      added the infinities).  The layout is the on-disk format, which
 *      pg_upgrade needs to stay the same across major versions; the fast
 *      path is compiled for 14 to 17 and the fallback serves the others.
 *      A port to a new major version checks numeric.c's "Interpretation of
 *      high bits" block against the masks here and widens the version test.
 *
 *      Fallback: numeric_out (public fmgr API), whose text has exactly
 *      dscale digits after the point; slower (it allocates per value) and
 *      dependent on nothing internal.  It runs on other PostgreSQL versions
 *      and when crm_analytics.numeric_fast_path is off.
 *
 *      Tests: test/retention_numeric.sql sums amounts of every shape (short
 *      and long format, large weights, 0 to 30 decimals, negative, zero,
 *      NaN, infinities, overflow) with the fast path on and off and compares
 *      both with plain SQL sums; the rest of the retention tests run the
 *      fast path.
 */
#include "retention.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

/* crm_analytics.numeric_fast_path (core.c registers it) */
bool		CrmNumericFastPath = true;

#if PG_VERSION_NUM >= 140000 && PG_VERSION_NUM < 180000
#define CRM_NUMERIC_LAYOUT_KNOWN 1
#endif

#ifdef CRM_NUMERIC_LAYOUT_KNOWN

/* from numeric.c (PostgreSQL 14 to 17) */
#define NUM_SIGN_MASK			0xC000
#define NUM_NEG					0x4000
#define NUM_SHORT				0x8000
#define NUM_SPECIAL				0xC000
#define NUM_DSCALE_MASK			0x3FFF
#define NUM_SHORT_SIGN_MASK		0x2000
#define NUM_SHORT_DSCALE_MASK	0x1F80
#define NUM_SHORT_DSCALE_SHIFT	7
#define NUM_SHORT_WEIGHT_SIGN	0x0040
#define NUM_SHORT_WEIGHT_MASK	0x003F
#define NUM_DEC_DIGITS			4		/* decimal digits per base-10000 digit */

/* the digits as an integer when there are at most 16 and their scale is simple: no int128 division */
static bool
SmallDigits(const char *digits, int ndigits, int e, bool neg, int128 *val)
{
	int64		v64 = 0;
	int			i;

	if (!(ndigits <= 4 && e > -NUM_DEC_DIGITS && e <= 0))
		return false;
	for (i = 0; i < ndigits; i++)
	{
		int16		dg;

		memcpy(&dg, digits + i * sizeof(int16), sizeof(int16));
		v64 = v64 * 10000 + dg;
	}
	/* trailing fractional digits beyond dscale are zero */
	switch (-e)
	{
		case 1:
			v64 /= 10;
			break;
		case 2:
			v64 /= 100;
			break;
		case 3:
			v64 /= 1000;
			break;
	}
	*val = neg ? -v64 : v64;
	return true;
}

/* the fast path: read the stored form without converting or allocating */
static CrmNumericStatus
ScaledFromStored(Datum d, int maxscale, int128 *val, int *dscale)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(d);
	const char *p = VARDATA_ANY(v);
	Size		len = VARSIZE_ANY_EXHDR(v);
	uint16		h;
	int			weight;
	bool		neg;
	const char *digits;
	int			ndigits;
	int			e;
	int			i;
	int128		acc = 0;

	if (len < sizeof(uint16))
		return CRM_NUMERIC_CORRUPT;
	memcpy(&h, p, sizeof(uint16));
	if ((h & NUM_SIGN_MASK) == NUM_SPECIAL)
		return CRM_NUMERIC_NOT_FINITE;
	if ((h & NUM_SIGN_MASK) == NUM_SHORT)
	{
		/* short format: sign, display scale and weight packed in the header */
		neg = (h & NUM_SHORT_SIGN_MASK) != 0;
		*dscale = (h & NUM_SHORT_DSCALE_MASK) >> NUM_SHORT_DSCALE_SHIFT;
		weight = (h & NUM_SHORT_WEIGHT_MASK);
		if (h & NUM_SHORT_WEIGHT_SIGN)
			weight |= ~NUM_SHORT_WEIGHT_MASK;
		digits = p + sizeof(uint16);
		ndigits = (len - sizeof(uint16)) / sizeof(int16);
	}
	else
	{
		int16		w;

		if (len < 2 * sizeof(uint16))
			return CRM_NUMERIC_CORRUPT;
		neg = (h & NUM_SIGN_MASK) == NUM_NEG;
		*dscale = h & NUM_DSCALE_MASK;
		memcpy(&w, p + sizeof(uint16), sizeof(int16));
		weight = w;
		digits = p + 2 * sizeof(uint16);
		ndigits = (len - 2 * sizeof(uint16)) / sizeof(int16);
	}
	if (*dscale > maxscale)
		return CRM_NUMERIC_SCALE;
	*val = 0;
	if (ndigits == 0)
		return CRM_NUMERIC_OK;
	/* the digits as an integer; the last digit group has weight 10000^(weight-ndigits+1) */
	e = NUM_DEC_DIGITS * (weight - ndigits + 1) + *dscale;
	if (SmallDigits(digits, ndigits, e, neg, val))
		return CRM_NUMERIC_OK;
	for (i = 0; i < ndigits; i++)
	{
		int16		dg;

		memcpy(&dg, digits + i * sizeof(int16), sizeof(int16));
		if (__builtin_mul_overflow(acc, (int128) 10000, &acc) ||
			__builtin_add_overflow(acc, (int128) dg, &acc))
			return CRM_NUMERIC_OVERFLOW;
	}
	if (e > 38)
		return CRM_NUMERIC_OVERFLOW;
	else if (e > 0)
	{
		if (__builtin_mul_overflow(acc, RetentionPow10(e), &acc))
			return CRM_NUMERIC_OVERFLOW;
	}
	else if (e < 0)
	{
		/* trailing fractional digits beyond dscale are zero */
		if (-e > 38)
			return CRM_NUMERIC_CORRUPT;
		acc /= RetentionPow10(-e);
	}
	*val = neg ? -acc : acc;
	return CRM_NUMERIC_OK;
}
#endif							/* CRM_NUMERIC_LAYOUT_KNOWN */

/* the fallback: numeric_out's text, "-123.4500", "NaN", "Infinity" */
static CrmNumericStatus
ScaledFromText(Datum d, int maxscale, int128 *val, int *dscale)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out, d));
	const char *p = text;
	bool		neg = false;
	bool		frac = false;
	int128		acc = 0;
	CrmNumericStatus status = CRM_NUMERIC_OK;

	*dscale = 0;
	if (*p == '-')
		neg = true, p++;
	if (*p < '0' || *p > '9')
		status = CRM_NUMERIC_NOT_FINITE;	/* NaN, Infinity, -Infinity */
	for (; status == CRM_NUMERIC_OK && *p != '\0'; p++)
	{
		if (*p == '.' && !frac)
		{
			frac = true;
			continue;
		}
		if (*p < '0' || *p > '9')
			status = CRM_NUMERIC_CORRUPT;
		else if (__builtin_mul_overflow(acc, (int128) 10, &acc) ||
				 __builtin_add_overflow(acc, (int128) (*p - '0'), &acc))
			status = CRM_NUMERIC_OVERFLOW;
		if (frac)
			(*dscale)++;
	}
	if (status == CRM_NUMERIC_OVERFLOW)
	{
		/* the scale error comes first, as on the fast path */
		const char *dot = strchr(text, '.');

		*dscale = dot ? (int) strlen(dot + 1) : 0;
	}
	if (status != CRM_NUMERIC_NOT_FINITE && *dscale > maxscale)
		status = CRM_NUMERIC_SCALE;
	pfree(text);
	*val = neg ? -acc : acc;
	return status;
}

CrmNumericStatus
CrmNumericScaled(Datum d, int maxscale, int128 *val, int *dscale)
{
#ifdef CRM_NUMERIC_LAYOUT_KNOWN
	if (CrmNumericFastPath)
		return ScaledFromStored(d, maxscale, val, dscale);
#endif
	return ScaledFromText(d, maxscale, val, dscale);
}
