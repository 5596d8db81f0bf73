/*
 * deliver_policy.c — what a failed delivery attempt means (see deliver.h):
 * the retry/dead-letter decision with its backoff, and Retry-After parsing.
 * Pure functions: no state, no I/O, safe from any thread.
 */
#include "deliver.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DELIVER_BACKOFF_CAP_S     600.0   /* 10 min, SPEC §7 */
#define DELIVER_RETRY_AFTER_CAP_S 3600.0  /* a server may ask for up to an hour */

enum deliver_outcome deliver_policy(int status, long attempts, long max_attempts, double age_ms,
				    long max_age_ms, double retry_after_s, double rnd,
				    double *delay_s)
{
	double base;
	int retryable;

	if (delay_s)
		*delay_s = 0;
	if (status >= 200 && status <= 299)
		return DELIVER_DONE;
	retryable = status == 0 || status == 408 || status == 429 ||
		    (status >= 500 && status <= 599);
	if (!retryable)
		return DELIVER_DEAD;
	if ((max_attempts > 0 && attempts >= max_attempts) ||
	    (max_age_ms > 0 && age_ms >= (double)max_age_ms))
		return DELIVER_DEAD;
	if (!delay_s)
		return DELIVER_RETRY;
	if (retry_after_s >= 0) {
		*delay_s = fmin(retry_after_s, DELIVER_RETRY_AFTER_CAP_S);
		return DELIVER_RETRY;
	}
	/* 1 s doubling per attempt, capped; 2^10 already exceeds the cap. */
	if (attempts <= 1)
		base = 1.0;
	else if (attempts > 11)
		base = DELIVER_BACKOFF_CAP_S;
	else
		base = fmin(ldexp(1.0, (int)attempts - 1), DELIVER_BACKOFF_CAP_S);
	if (!(rnd >= 0))
		rnd = 0;
	if (rnd >= 1)
		rnd = nextafter(1.0, 0.0);
	*delay_s = rnd * base;
	return DELIVER_RETRY;
}

double deliver_parse_retry_after(const char *value, double now)
{
	/* IMF-fixdate first; the two obsolete forms RFC 9110 says to accept. */
	static const char *const formats[] = {
		"%a, %d %b %Y %H:%M:%S GMT",
		"%A, %d-%b-%y %H:%M:%S GMT",
		"%a %b %e %H:%M:%S %Y",
	};
	char buf[64];
	size_t len, i;
	const char *p;

	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	len = strlen(value);
	while (len > 0 && strchr(" \t\r\n", value[len - 1]))
		len--;
	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, value, len);
	buf[len] = '\0';

	for (p = buf; *p >= '0' && *p <= '9'; p++)
		;
	if (*p == '\0')
		return strtod(buf, NULL);

	for (i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		struct tm tm;
		time_t t;

		memset(&tm, 0, sizeof tm);
		p = strptime(buf, formats[i], &tm);
		if (!p || *p != '\0')
			continue;
		t = timegm(&tm);
		if (t == (time_t)-1)
			return -1;
		return (double)t > now ? (double)t - now : 0;
	}
	return -1;
}
