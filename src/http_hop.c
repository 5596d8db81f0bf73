/*
 * http_hop.c — the X-Router-Hop check (see http_hop.h).
 *
 * Threads: no state.
 */
#include "http_hop.h"

#include <stddef.h>

#define HTTP_HOP_DIGITS_MAX 9

int http_hop_check(const char *value, long max_hops, long *hop, const char **reason)
{
	const char *p = value;
	long n = 0;
	int digits = 0;

	*hop = 0;
	*reason = NULL;
	if (!value)
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	for (; *p >= '0' && *p <= '9'; p++, digits++)
		if (digits < HTTP_HOP_DIGITS_MAX)   /* more digits than that: surely a loop */
			n = n * 10 + (*p - '0');
	while (*p == ' ' || *p == '\t')
		p++;
	if (digits == 0 || *p != '\0') {
		*reason = "X-Router-Hop must be a decimal count";
		return 400;
	}
	*hop = n;
	if (max_hops > 0 && n >= max_hops) {   /* 0: a config built by hand, no limit */
		*reason = "forward loop: X-Router-Hop reached max_hops, batch not accepted";
		return 508;
	}
	return 0;
}
