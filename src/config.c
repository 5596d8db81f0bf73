/*
 * config.c — router.conf parsing, defaults and validation.
 *
 * Design: one table, config_keys[] (config_keys.c), describes every key
 * (name, type, default as it would be written in the file, range, offset
 * into struct config, help). Defaults are applied by parsing those default
 * strings with the same code that parses the file, so the defaults, the
 * validation, the example file and --help (config_print.c) cannot drift
 * apart.
 *
 * config_load builds into a private struct and hands it over only when the
 * whole file is valid, so a failed load never leaves a half-applied config
 * behind.
 *
 * Secrets (type CFG_SECRET) are never copied into an error message.
 *
 * Threads: no shared state; config_load calls getenv, so do not run it
 * concurrently with setenv.
 */
#include "config_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static __attribute__((format(printf, 3, 4)))
void set_err(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void *field(struct config *cfg, const struct cfg_key *k)
{
	return (char *)cfg + k->offset;
}

static int key_is_string(const struct cfg_key *k)
{
	return k->type == CFG_STRING || k->type == CFG_PATH || k->type == CFG_ENUM ||
	       k->type == CFG_CIDRS || k->type == CFG_SECRET;
}

/* Frees a key's string; a secret is zeroed first, so no freed heap block holds it. */
static void config_free_string(const struct cfg_key *k, char *s)
{
	if (s && k->type == CFG_SECRET)
		explicit_bzero(s, strlen(s));
	free(s);
}

/* Reads the digits at s; *end gets the first non-digit. */
static int parse_digits(const char *s, const char **end, unsigned long long *out)
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

/* Largest first: format_value writes the first unit that divides evenly. */
static const struct cfg_unit duration_units[] = {
	{ "h", CFG_MS_HOUR }, { "m", 60 * 1000 }, { "s", 1000 }, { "ms", 1 }, { "", 1000 },
	{ NULL, 0 },
};
static const struct cfg_unit size_units[] = {
	{ "G", CFG_GIB }, { "M", CFG_MIB }, { "k", 1024 }, { "", 1 },
	{ "g", CFG_GIB }, { "m", CFG_MIB }, { "K", 1024 }, { NULL, 0 },
};

/* Parses digits plus one of units' suffixes; fails above max. */
static int parse_with_unit(const char *s, const struct cfg_unit *units,
			   unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	const char *end;

	if (parse_digits(s, &end, &v) < 0)
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

	if (parse_with_unit(s, duration_units, LONG_MAX, &v) < 0)
		return -1;
	*out_ms = (long)v;
	return 0;
}

int config_parse_size(const char *s, size_t *out)
{
	unsigned long long v;

	if (parse_with_unit(s, size_units, SIZE_MAX, &v) < 0)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* Writes v (>= 0) as a user would write it for key k ("24h", "10M"). */
static void format_value(const struct cfg_key *k, long long v, char *buf, size_t len)
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
static int parse_number(const struct cfg_key *k, const char *val, long long *out,
			char *why, size_t whylen)
{
	char lo[32], hi[32];
	long long v;

	if (k->type == CFG_DURATION) {
		long ms;
		if (config_parse_duration_ms(val, &ms) < 0) {
			set_err(why, whylen, "%s: '%.64s' is not a duration (a whole number "
				"with ms, s, m or h)", k->name, val);
			return -1;
		}
		v = ms;
	} else if (k->type == CFG_SIZE) {
		size_t n;
		if (config_parse_size(val, &n) < 0 || (unsigned long long)n > LLONG_MAX) {
			set_err(why, whylen, "%s: '%.64s' is not a size (a whole number, "
				"optionally with k, M or G)", k->name, val);
			return -1;
		}
		v = (long long)n;
	} else {
		char *end;
		errno = 0;
		v = strtoll(val, &end, 10);
		if (end == val || *end != '\0' || errno == ERANGE) {
			set_err(why, whylen, "%s: '%.64s' is not a whole number", k->name, val);
			return -1;
		}
	}
	if (v < k->min || v > k->max) {
		format_value(k, k->min, lo, sizeof lo);
		format_value(k, k->max, hi, sizeof hi);
		set_err(why, whylen, "%s: %.64s is out of range (%s to %s)", k->name, val, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* Cuts the blanks around s in place. */
static char *trim(char *s)
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
static char *parse_cidrs(const struct cfg_key *k, const char *val, char *why, size_t whylen)
{
	char *copy = NULL, *out = NULL, *save = NULL, *item, *res = NULL;
	size_t used = 0;

	copy = strdup(val);
	out = calloc(1, strlen(val) + 1);
	if (!copy || !out) {
		set_err(why, whylen, "out of memory");
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
		start = trim(item);
		if (*start == '\0') {
			set_err(why, whylen, "%s: empty entry in the list", k->name);
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
			set_err(why, whylen, "%s: '%.64s' is not an IPv4 or IPv6 address",
				k->name, start);
			goto out;
		}
		if (slash && (parse_digits(slash + 1, &rest, &bits) < 0 || *rest != '\0' ||
			      bits > maxbits)) {
			set_err(why, whylen, "%s: bad prefix length '/%.16s' for %.64s",
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
static int check_names(const struct cfg_key *k, const char *val, char *why, size_t whylen)
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
	set_err(why, whylen, "%s: '%.64s' is not a comma-separated list of variable names",
		k->name, val);
	return -1;
}

/* Checks a string value against the key's constraints. */
static int check_string(const struct cfg_key *k, const char *val, char *why, size_t whylen)
{
	if (k->offset == offsetof(struct config, rules_env))
		return check_names(k, val, why, whylen);
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
		set_err(why, whylen, "%s: '%.64s' is not one of %s", k->name, val, list);
		return -1;
	}
	if (!k->prefix)
		return 0;
	if (strncmp(val, k->prefix, strlen(k->prefix)) != 0) {
		set_err(why, whylen, "%s must start with '%s'", k->name, k->prefix);
		return -1;
	}
	if (k->offset == offsetof(struct config, endpoint)) {
		/* The daemon's own routes; a clash would silently replace one. */
		if (strcmp(val, "/healthz") == 0 || strcmp(val, "/metrics") == 0 ||
		    strlen(val) > 256 || strpbrk(val, " ?#$*")) {
			set_err(why, whylen, "endpoint '%.64s' is reserved or not a plain path "
				"(not /healthz or /metrics, no spaces, ?, #, $ or *, at most 256 bytes)",
				val);
			return -1;
		}
	}
	if (k->type == CFG_SECRET) {
		/* The HMAC key is the base64-decoded rest (Standard Webhooks). */
		const char *b = val + strlen(k->prefix);

		if (util_base64_decode(NULL, 0, b, strlen(b)) < 0) {
			set_err(why, whylen, "%s must be '%s' followed by base64", k->name,
				k->prefix);
			return -1;
		}
	}
	return 0;
}

/*
 * Stores val (already env-resolved) into the key's field, replacing any
 * earlier value. from_env: val came from the environment, so the literal
 * `none` of auth_token does not apply.
 */
static int key_set(struct config *cfg, const struct cfg_key *k, const char *val, int from_env,
		   char *why, size_t whylen)
{
	void *f = field(cfg, k);
	long long num;
	char *s = NULL;
	int lvl;

	switch (k->type) {
	case CFG_INT:
	case CFG_COUNT:
	case CFG_DURATION:
	case CFG_SIZE:
		if (parse_number(k, val, &num, why, whylen) < 0)
			return -1;
		if (k->type == CFG_INT || k->type == CFG_DURATION)
			*(long *)f = (long)num;
		else
			*(size_t *)f = (size_t)num;
		return 0;
	case CFG_LOG_LEVEL:
		lvl = log_level_parse(val);
		if (lvl < 0) {
			char names[64];

			log_level_list(names, sizeof names);
			set_err(why, whylen, "%s: '%.64s' is not one of %s", k->name, val, names);
			return -1;
		}
		*(int *)f = lvl;
		return 0;
	case CFG_LOG_FORMAT:
		if (strcmp(val, "text") != 0 && strcmp(val, "json") != 0) {
			set_err(why, whylen, "%s: '%.64s' is not one of text, json", k->name, val);
			return -1;
		}
		*(int *)f = strcmp(val, "json") == 0;
		return 0;
	case CFG_CIDRS:
		s = parse_cidrs(k, val, why, whylen);
		if (!s)
			return -1;
		break;
	case CFG_SECRET:
		if (k->offset == offsetof(struct config, auth_token) &&
		    strcmp(val, "none") == 0) {
			if (from_env) {
				/* Disabling auth must be visible in the file itself. */
				set_err(why, whylen, "%s: the environment variable holds 'none'; "
					"write 'auth_token = none' to disable auth", k->name);
				return -1;
			}
			config_free_string(k, cfg->auth_token);
			cfg->auth_token = NULL;
			cfg->auth_disabled = 1;
			return 0;
		}
		/* fall through */
	case CFG_STRING:
	case CFG_PATH:
	case CFG_ENUM:
		if (check_string(k, val, why, whylen) < 0)
			return -1;
		s = strdup(val);
		if (!s) {
			set_err(why, whylen, "out of memory");
			return -1;
		}
		break;
	}
	config_free_string(k, *(char **)f);
	*(char **)f = s;
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (key_is_string(&config_keys[i]))
			config_free_string(&config_keys[i], *(char **)field(cfg, &config_keys[i]));
	memset(cfg, 0, sizeof *cfg);
}

int config_defaults(struct config *cfg)
{
	char why[256];

	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct cfg_key *k = &config_keys[i];
		if (k->def && key_set(cfg, k, k->def, 0, why, sizeof why) < 0) {
			log_msg(LOG_ERROR, NULL, "config: default of %s: %s", k->name, why);
			config_free(cfg);
			return -1;
		}
	}
	return 0;
}

static const struct cfg_key *key_find(const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/*
 * Replaces an `env:NAME` value by the variable's content. The result points
 * into the environment and must not be kept.
 */
static int resolve_env(const char *val, const char **out, int *from_env, char *why,
		       size_t whylen)
{
	const char *name, *v;

	*out = val;
	*from_env = 0;
	if (strncmp(val, "env:", 4) != 0)
		return 0;
	name = val + 4;
	if (!*name) {
		set_err(why, whylen, "environment variable name missing after 'env:'");
		return -1;
	}
	v = getenv(name);
	if (!v || !*v) {
		set_err(why, whylen, "environment variable %.64s is not set", name);
		return -1;
	}
	*out = v;
	*from_env = 1;
	return 0;
}

/* Applies one line; returns -1 with why set. seen[] holds first line numbers. */
static int apply_line(struct config *cfg, char *line, int lineno, int *seen, char *why,
		      size_t whylen)
{
	const struct cfg_key *k;
	const char *val;
	char *eq, *key, *raw;
	int from_env;

	eq = strchr(line, '=');
	if (!eq) {
		set_err(why, whylen, "expected 'key = value'");
		return -1;
	}
	*eq = '\0';
	key = trim(line);
	raw = trim(eq + 1);
	if (!*key) {
		set_err(why, whylen, "missing key before '='");
		return -1;
	}
	k = key_find(key);
	if (!k) {
		set_err(why, whylen, "unknown key '%.64s'", key);
		return -1;
	}
	if (seen[k - config_keys]) {
		set_err(why, whylen, "duplicate key '%s' (first set on line %d)", k->name,
			seen[k - config_keys]);
		return -1;
	}
	seen[k - config_keys] = lineno;
	if (!*raw) {
		set_err(why, whylen, "empty value for '%s'", k->name);
		return -1;
	}
	if (resolve_env(raw, &val, &from_env, why, whylen) < 0)
		return -1;
	return key_set(cfg, k, val, from_env, why, whylen);
}

/*
 * Reads one line into buf (CONFIG_LINE_MAX + 1 bytes), without its '\n',
 * NUL-terminated. Returns its length, -1 at the end of the file (or on a
 * read error: see ferror), or -2 when it is longer than CONFIG_LINE_MAX or
 * would take the file past CONFIG_FILE_MAX (*total counts the bytes read so
 * far). Bounded so that `-c /dev/zero` or a huge file fails at once instead
 * of growing a buffer without end.
 */
static long read_line(FILE *f, char *buf, size_t *total)
{
	size_t n = 0;
	int c;

	while ((c = getc(f)) != EOF) {
		if (++*total > CONFIG_FILE_MAX || (c != '\n' && n == CONFIG_LINE_MAX))
			return -2;
		if (c == '\n')
			break;
		buf[n++] = (char)c;
	}
	if (c == EOF && n == 0)
		return -1;
	buf[n] = '\0';
	return (long)n;
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct config tmp;
	int seen[CONFIG_NKEYS] = { 0 };
	char why[320], *line = NULL, *s;
	size_t total = 0;
	long n;
	int lineno = 0, rc = -1;
	FILE *f = NULL;

	memset(&tmp, 0, sizeof tmp);
	f = fopen(path, "r");
	if (!f) {
		set_err(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
		goto out;
	}
	line = malloc(CONFIG_LINE_MAX + 1);
	if (!line || config_defaults(&tmp) < 0) {
		set_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while ((n = read_line(f, line, &total)) != -1) {
		lineno++;
		if (n == -2 && total > CONFIG_FILE_MAX) {
			set_err(err, errlen, "%s:%d: file is larger than %d bytes", path, lineno,
				CONFIG_FILE_MAX);
			goto out;
		}
		if (memchr(line, '\0', n == -2 ? CONFIG_LINE_MAX : (size_t)n)) {
			set_err(err, errlen, "%s:%d: line contains a NUL byte", path, lineno);
			goto out;
		}
		if (n == -2) {
			set_err(err, errlen, "%s:%d: line is longer than %d bytes", path, lineno,
				CONFIG_LINE_MAX);
			goto out;
		}
		s = line;
		if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3; /* a UTF-8 byte order mark some editors add */
		s = trim(s);
		if (*s == '\0' || *s == '#')
			continue;
		if (apply_line(&tmp, s, lineno, seen, why, sizeof why) < 0) {
			set_err(err, errlen, "%s:%d: %s", path, lineno, why);
			goto out;
		}
	}
	if (ferror(f)) {
		set_err(err, errlen, "%s: cannot read (%s)", path, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].required && !seen[i]) {
			set_err(err, errlen, "%s: %s is required (%s)", path, config_keys[i].name,
				config_keys[i].required);
			goto out;
		}
	}
	*cfg = tmp;
	memset(&tmp, 0, sizeof tmp);
	rc = 0;
out:
	if (rc < 0)
		memset(cfg, 0, sizeof *cfg);
	config_free(&tmp);
	if (line)
		explicit_bzero(line, CONFIG_LINE_MAX + 1);  /* the last line read may hold a literal secret */
	free(line);
	if (f)
		fclose(f);
	return rc;
}

