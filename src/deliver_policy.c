/*
 * deliver_policy.c — what a failed delivery attempt means (see deliver.h):
 * the retry/dead-letter decision with its backoff, a destination's circuit,
 * and Retry-After parsing. Pure functions on their arguments: no I/O, no
 * globals; safe from any thread (a struct deliver_circuit belongs to the
 * delivery thread).
 */
#include "deliver.h"

#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DELIVER_RETRY_AFTER_CAP_S 3600.0  /* a server may ask for up to an hour */
#define DELIVER_CIRCUIT_FIRST_S   1.0     /* first open period */
#define DELIVER_CIRCUIT_CAP_S     60.0    /* longest open period, under forward_backoff_max */

int deliver_retryable(int status)
{
	return status == 0 || status == 408 || status == 429 || (status >= 500 && status <= 599);
}

enum deliver_outcome deliver_policy(int status, long attempts, double age_ms, double retry_after_s,
				    double rnd, const struct deliver_limits *lim, double *delay_s)
{
	double base, cap = lim->backoff_max_s > 0 ? lim->backoff_max_s : 1.0;

	if (delay_s)
		*delay_s = 0;
	if (status >= 200 && status <= 299)
		return DELIVER_DONE;
	if (!deliver_retryable(status))
		return DELIVER_DEAD;
	if ((lim->max_attempts > 0 && attempts >= lim->max_attempts) ||
	    (lim->max_age_ms > 0 && age_ms >= (double)lim->max_age_ms))
		return DELIVER_DEAD;
	if (!delay_s)
		return DELIVER_RETRY;
	/* 1 s doubling per attempt, capped; past 2^62 the cap has long won. */
	base = attempts <= 1 ? 1.0 : ldexp(1.0, attempts > 62 ? 62 : (int)attempts - 1);
	base = fmin(base, cap);
	if (!(rnd >= 0))
		rnd = 0;
	if (rnd >= 1)
		rnd = nextafter(1.0, 0.0);
	*delay_s = rnd * base;
	/* The server's word is a floor, never a shortcut: attempts are not spent
	 * faster because it asked for a short pause. */
	if (retry_after_s >= 0)
		*delay_s = fmax(*delay_s, fmin(retry_after_s, DELIVER_RETRY_AFTER_CAP_S));
	return DELIVER_RETRY;
}

double deliver_pause(double retry_after_s)
{
	return retry_after_s > 0 ? fmin(retry_after_s, DELIVER_RETRY_AFTER_CAP_S) : 0;
}

long deliver_circuit_allowance(struct deliver_circuit *c, double now, long per_host)
{
	switch (c->state) {
	case DELIVER_CLOSED:
		return per_host;
	case DELIVER_OPEN:
		if (now < c->until)
			return 0;
		c->state = DELIVER_HALF_OPEN;
		return 1;
	case DELIVER_HALF_OPEN:
		return 1;
	}
	return 0;
}

enum deliver_transition deliver_circuit_record(struct deliver_circuit *c, int failed, double now,
					       double pause_s, double backoff_max_s)
{
	double cap = fmin(DELIVER_CIRCUIT_CAP_S, backoff_max_s > 0 ? backoff_max_s : 1.0);

	if (!failed) {
		enum deliver_transition t = c->state == DELIVER_CLOSED ? DELIVER_STAYED
								       : DELIVER_CLOSED_AGAIN;

		c->state = DELIVER_CLOSED;
		c->failures = 0;
		c->open_s = 0;
		return t;
	}
	c->failures++;
	switch (c->state) {
	case DELIVER_CLOSED:
		if (c->failures < DELIVER_CIRCUIT_FAILURES)
			return DELIVER_STAYED;
		c->open_s = fmin(DELIVER_CIRCUIT_FIRST_S, cap);
		c->state = DELIVER_OPEN;
		c->until = now + fmax(c->open_s, pause_s);
		return DELIVER_OPENED;
	case DELIVER_HALF_OPEN:
		c->open_s = fmin(fmax(c->open_s * 2, DELIVER_CIRCUIT_FIRST_S), cap);
		c->state = DELIVER_OPEN;
		c->until = now + fmax(c->open_s, pause_s);
		return DELIVER_REOPENED;
	case DELIVER_OPEN:
		/* a request started before the circuit opened: it already is */
		c->until = fmax(c->until, now + pause_s);
		return DELIVER_STAYED;
	}
	return DELIVER_STAYED;
}

/*
 * Whether s has the shape of pattern: '@' is a run of letters, '#' a run of
 * digits, ' ' a run of spaces, anything else itself. curl_getdate accepts
 * far more than HTTP dates (no zone, ISO 8601, a bare "21 Oct 2015"); this
 * keeps Retry-After to the three forms RFC 9110 names and lets curl
 * check the values (a 32nd of October, a month called Foo).
 */
static int deliver_policy_shape(const char *s, const char *pattern)
{
	for (; *pattern; pattern++) {
		const char *from = s;

		switch (*pattern) {
		case '@':
			while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
				s++;
			break;
		case '#':
			while (*s >= '0' && *s <= '9')
				s++;
			break;
		case ' ':
			while (*s == ' ')
				s++;
			break;
		default:
			if (*s == *pattern)
				s++;
			break;
		}
		if (s == from)
			return 0;
	}
	return *s == '\0';
}

double deliver_parse_retry_after(const char *value, double now)
{
	/* IMF-fixdate first; the two obsolete forms RFC 9110 says to accept. */
	static const char *const shapes[] = {
		"@, # @ # #:#:# GMT",
		"@, #-@-# #:#:# GMT",
		"@ @ # #:#:# #",
	};
	char buf[64];
	size_t len, i;
	const char *p;
	time_t t;

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

	for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		if (deliver_policy_shape(buf, shapes[i]))
			break;
	if (i == sizeof shapes / sizeof shapes[0])
		return -1;
	/* curl_getdate needs no curl_global_init: it is a pure parser (dates
	 * without a zone, like asctime's, are read as GMT, as HTTP wants). */
	t = curl_getdate(buf, NULL);
	if (t == (time_t)-1)
		return -1;
	return (double)t > now ? (double)t - now : 0;
}
