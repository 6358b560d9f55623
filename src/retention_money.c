/*
 * retention_money.c
 *      Exact revenue for the cohort functions (docs/retention.md): amounts
 *      are summed as 128-bit integers scaled by 10^dscale, where dscale is
 *      the largest number of decimal places seen (at most COHORT_MAX_SCALE),
 *      so a sum is exact to about 38 significant digits and a sum beyond
 *      that is an error, never a rounded number.
 *
 *      Reading a numeric's digits depends on PostgreSQL's stored form of
 *      numeric; that part lives in pg_numeric.c.
 */
#include "retention.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

int128		RetentionPow10Tab[39];

void
RetentionPow10Init(void)
{
	int			i;

	RetentionPow10Tab[0] = 1;
	for (i = 1; i < 39; i++)
		RetentionPow10Tab[i] = RetentionPow10Tab[i - 1] * 10;
}

void
RetentionRevenueOverflow(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("revenue is out of the range the cohort functions sum exactly"),
			 errdetail("Amounts are summed exactly as 128-bit fixed-point numbers (about 38 significant digits)."),
			 errhint("Round the amount in the inner query, for example round(amount, 2).")));
	pg_unreachable();
}

/*
 * The value of a numeric datum as an integer scaled by 10^dscale (its
 * display scale).  NaN and infinities are refused, and so are amounts with
 * more than COHORT_MAX_SCALE decimal places.
 */
int128
RetentionScaledFromNumeric(Datum d, int *dscale)
{
	int128		val;

	switch (CrmNumericScaled(d, COHORT_MAX_SCALE, &val, dscale))
	{
		case CRM_NUMERIC_OK:
			return val;
		case CRM_NUMERIC_NOT_FINITE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("amount must be a finite number"),
					 errhint("Filter NaN and infinite amounts out in the inner query.")));
			break;
		case CRM_NUMERIC_SCALE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("amount has %d decimal places, the cohort functions keep at most %d",
							*dscale, COHORT_MAX_SCALE),
					 errhint("Round the amount in the inner query, for example round(amount, 2).")));
			break;
		case CRM_NUMERIC_OVERFLOW:
			RetentionRevenueOverflow();
			break;
		case CRM_NUMERIC_CORRUPT:
			break;
	}
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("invalid numeric amount")));
	return 0;					/* keep compiler quiet */
}

/* v / 10^dscale as text, e.g. (-5, 2) -> "-0.05" */
char *
RetentionScaledToCString(int128 v, int dscale, char *buf, Size buflen)
{
	char	   *p = buf + buflen;
	bool		neg = v < 0;
	uint128		u = neg ? -(uint128) v : (uint128) v;
	int			ndig = 0;

	*--p = '\0';
	do
	{
		*--p = '0' + (int) (u % 10);
		u /= 10;
		ndig++;
		if (ndig == dscale)
			*--p = '.';
	} while (u != 0 || ndig <= dscale);
	if (*p == '.')
		*--p = '0';
	if (neg)
		*--p = '-';
	return p;
}

Numeric
RetentionNumericFromScaled(int128 v, int dscale)
{
	char		buf[64];

	return DatumGetNumeric(DirectFunctionCall3(numeric_in,
											   CStringGetDatum(RetentionScaledToCString(v, dscale, buf, sizeof(buf))),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}
