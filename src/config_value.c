/*
 * config_value.c — one router.conf value, read and checked by its key's
 * type: numbers with their units (durations, sizes), address lists,
 * enums, prefixes, variable-name lists, the endpoint and secrets. The
 * file side (lines, keys, env:NAME, the whole-file checks) is config.c.
 *
 * Threads: no shared state.
 */
#include "config_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void config_set_err(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Reads the digits at s; *end gets the first non-digit. */
static int config_value_digits(const char *s, const char **end, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (p == s)
		return -1;
	*end = p;
	*out = v;
	return 0;
}

struct cfg_unit {
	const char *suffix;
	unsigned long long mul;
};

/* Largest first: config_value_format writes the first unit that divides evenly. */
static const struct cfg_unit duration_units[] = {
	{ "h", CFG_MS_HOUR }, { "m", 60 * 1000 }, { "s", 1000 }, { "ms", 1 }, { "", 1000 },
	{ NULL, 0 },
};
static const struct cfg_unit size_units[] = {
	{ "G", CFG_GIB }, { "M", CFG_MIB }, { "k", 1024 }, { "", 1 },
	{ "g", CFG_GIB }, { "m", CFG_MIB }, { "K", 1024 }, { NULL, 0 },
};

/* Parses digits plus one of units' suffixes; fails above max. */
static int config_value_with_unit(const char *s, const struct cfg_unit *units,
			   unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	const char *end;

	if (config_value_digits(s, &end, &v) < 0)
		return -1;
	for (; units->suffix; units++) {
		if (strcmp(end, units->suffix) != 0)
			continue;
		if (v > max / units->mul)
			return -1;
		*out = v * units->mul;
		return 0;
	}
	return -1;
}

int config_parse_duration_ms(const char *s, long *out_ms)
{
	unsigned long long v;

	if (config_value_with_unit(s, duration_units, LONG_MAX, &v) < 0)
		return -1;
	*out_ms = (long)v;
	return 0;
}

int config_parse_size(const char *s, size_t *out)
{
	unsigned long long v;

	if (config_value_with_unit(s, size_units, SIZE_MAX, &v) < 0)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* Writes v (>= 0) as a user would write it for key k ("24h", "10M"). */
static void config_value_format(const struct cfg_key *k, long long v, char *buf, size_t len)
{
	const struct cfg_unit *u = k->type == CFG_DURATION ? duration_units :
				   k->type == CFG_SIZE ? size_units : NULL;

	for (; u && v > 0 && u->suffix; u++) {
		if ((unsigned long long)v % u->mul == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)v / u->mul, u->suffix);
			return;
		}
	}
	snprintf(buf, len, "%lld", v);
}

/* Parses a numeric value of key k; on success *out is in the stored unit. */
int config_value_number(const struct cfg_key *k, const char *val, long long *out,
			char *why, size_t whylen)
{
	char lo[32], hi[32];
	long long v;

	if (k->type == CFG_DURATION) {
		long ms;
		if (config_parse_duration_ms(val, &ms) < 0) {
			config_set_err(why, whylen, "%s: '%.64s' is not a duration (a whole number "
				"with ms, s, m or h)", k->name, val);
			return -1;
		}
		v = ms;
	} else if (k->type == CFG_SIZE) {
		size_t n;
		if (config_parse_size(val, &n) < 0 || (unsigned long long)n > LLONG_MAX) {
			config_set_err(why, whylen, "%s: '%.64s' is not a size (a whole number, "
				"optionally with k, M or G)", k->name, val);
			return -1;
		}
		v = (long long)n;
	} else {
		char *end;
		errno = 0;
		v = strtoll(val, &end, 10);
		if (end == val || *end != '\0' || errno == ERANGE) {
			config_set_err(why, whylen, "%s: '%.64s' is not a whole number", k->name, val);
			return -1;
		}
	}
	if (v < k->min || v > k->max) {
		config_value_format(k, k->min, lo, sizeof lo);
		config_value_format(k, k->max, hi, sizeof hi);
		config_set_err(why, whylen, "%s: %.64s is out of range (%s to %s)", k->name, val, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* Cuts the blanks around s in place. */
char *config_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Validates a CIDR list and returns it without blanks (heap), or NULL. */
char *config_value_cidrs(const struct cfg_key *k, const char *val, char *why, size_t whylen)
{
	char *copy = NULL, *out = NULL, *save = NULL, *item, *res = NULL;
	size_t used = 0;

	copy = strdup(val);
	out = calloc(1, strlen(val) + 1);
	if (!copy || !out) {
		config_set_err(why, whylen, "out of memory");
		goto out;
	}
	/* strtok_r would skip empty items; a stray comma is worth reporting. */
	for (item = copy; item; item = save) {
		unsigned char addr[16];
		char *slash, *start;
		unsigned long long bits = 0, maxbits;
		const char *rest;

		save = strchr(item, ',');
		if (save)
			*save++ = '\0';
		start = config_trim(item);
		if (*start == '\0') {
			config_set_err(why, whylen, "%s: empty entry in the list", k->name);
			goto out;
		}
		slash = strchr(start, '/');
		if (slash)
			*slash = '\0';
		if (inet_pton(AF_INET, start, addr) == 1) {
			maxbits = 32;
		} else if (inet_pton(AF_INET6, start, addr) == 1) {
			maxbits = 128;
		} else {
			config_set_err(why, whylen, "%s: '%.64s' is not an IPv4 or IPv6 address",
				k->name, start);
			goto out;
		}
		if (slash && (config_value_digits(slash + 1, &rest, &bits) < 0 || *rest != '\0' ||
			      bits > maxbits)) {
			config_set_err(why, whylen, "%s: bad prefix length '/%.16s' for %.64s",
				k->name, slash + 1, start);
			goto out;
		}
		if (slash)
			*slash = '/';
		/* Never longer than val: only blanks are dropped. */
		used += (size_t)snprintf(out + used, strlen(val) + 1 - used, "%s%s",
					 used ? "," : "", start);
	}
	res = out;
	out = NULL;
out:
	free(copy);
	free(out);
	return res;
}

/* "NAME, NAME": environment variable names ([A-Za-z_][A-Za-z0-9_]*) separated by commas. */
static int config_value_check_names(const struct cfg_key *k, const char *val, char *why, size_t whylen)
{
	const char *p = val;

	for (;;) {
		size_t n;

		p += strspn(p, " \t");
		n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
		if (n == 0 || (p[0] >= '0' && p[0] <= '9'))
			break;
		p += n;
		p += strspn(p, " \t");
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			break;
	}
	config_set_err(why, whylen, "%s: '%.64s' is not a comma-separated list of variable names",
		k->name, val);
	return -1;
}

/* Checks a string value against the key's constraints. */
int config_value_check(const struct cfg_key *k, const char *val, char *why, size_t whylen)
{
	if (k->offset == offsetof(struct config, rules_env))
		return config_value_check_names(k, val, why, whylen);
	if (k->offset == offsetof(struct config, outbox)) {
		/* a secret: the message does not repeat the value */
		if (strcmp(val, "sqlite") == 0 || strncmp(val, "postgresql://", 13) == 0 ||
		    strncmp(val, "postgres://", 11) == 0)
			return 0;
		config_set_err(why, whylen, "%s must be sqlite or a postgresql:// URI", k->name);
		return -1;
	}
	if (k->type == CFG_ENUM) {
		char list[128] = "";
		size_t used = 0;

		for (const char *const *c = k->choices; *c; c++) {
			if (strcmp(val, *c) == 0)
				return 0;
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
						 used ? ", " : "", *c);
			if (used >= sizeof list)
				break;
		}
		config_set_err(why, whylen, "%s: '%.64s' is not one of %s", k->name, val, list);
		return -1;
	}
	if (!k->prefix)
		return 0;
	if (strncmp(val, k->prefix, strlen(k->prefix)) != 0) {
		config_set_err(why, whylen, "%s must start with '%s'", k->name, k->prefix);
		return -1;
	}
	if (k->offset == offsetof(struct config, endpoint)) {
		/* The daemon's own routes; a clash would silently replace one. */
		if (strcmp(val, "/healthz") == 0 || strcmp(val, "/metrics") == 0 ||
		    strcmp(val, "/readyz") == 0 ||
		    strlen(val) > 256 || strpbrk(val, " ?#$*")) {
			config_set_err(why, whylen, "endpoint '%.64s' is reserved or not a plain path "
				"(not /healthz, /readyz or /metrics, no spaces, ?, #, $ or *, at most 256 bytes)",
				val);
			return -1;
		}
	}
	if (k->type == CFG_SECRET) {
		/* The HMAC key is the base64-decoded rest (Standard Webhooks). */
		const char *b = val + strlen(k->prefix);

		if (util_base64_decode(NULL, 0, b, strlen(b)) < 0) {
			config_set_err(why, whylen, "%s must be '%s' followed by base64", k->name,
				k->prefix);
			return -1;
		}
	}
	return 0;
}
