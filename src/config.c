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

static void *config_field(struct config *cfg, const struct cfg_key *k)
{
	return (char *)cfg + k->offset;
}

static int config_key_is_string(const struct cfg_key *k)
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

/* log_level and log_format: a word of a fixed list, stored as an int in f. */
static int config_key_set_log(const struct cfg_key *k, const char *val, int *f, char *why,
			      size_t whylen)
{
	int lvl;

	if (k->type == CFG_LOG_FORMAT) {
		if (strcmp(val, "text") != 0 && strcmp(val, "json") != 0) {
			config_set_err(why, whylen, "%s: '%.64s' is not one of text, json", k->name, val);
			return -1;
		}
		*f = strcmp(val, "json") == 0;
		return 0;
	}
	lvl = log_level_parse(val);
	if (lvl < 0) {
		char names[64];

		log_level_list(names, sizeof names);
		config_set_err(why, whylen, "%s: '%.64s' is not one of %s", k->name, val, names);
		return -1;
	}
	*f = lvl;
	return 0;
}

/*
 * Stores val (already env-resolved) into the key's field, replacing any
 * earlier value. from_env: val came from the environment, so the literal
 * `none` of auth_token does not apply.
 */
static int config_key_set(struct config *cfg, const struct cfg_key *k, const char *val, int from_env,
		   char *why, size_t whylen)
{
	void *f = config_field(cfg, k);
	long long num;
	char *s = NULL;

	switch (k->type) {
	case CFG_INT:
	case CFG_COUNT:
	case CFG_DURATION:
	case CFG_SIZE:
		if (config_value_number(k, val, &num, why, whylen) < 0)
			return -1;
		if (k->type == CFG_INT || k->type == CFG_DURATION)
			*(long *)f = (long)num;
		else
			*(size_t *)f = (size_t)num;
		return 0;
	case CFG_LOG_LEVEL:
	case CFG_LOG_FORMAT:
		return config_key_set_log(k, val, f, why, whylen);
	case CFG_CIDRS:
		/* `none` empties the exemption list (loopback is in it by default);
		 * allow_from has no such word: unset means everyone. */
		if (k->offset == offsetof(struct config, rate_limit_exempt) &&
		    strcmp(val, "none") == 0) {
			free(*(char **)f);
			*(char **)f = NULL;
			return 0;
		}
		s = config_value_cidrs(k, val, why, whylen);
		if (!s)
			return -1;
		break;
	case CFG_SECRET:
		if (k->offset == offsetof(struct config, auth_token) &&
		    strcmp(val, "none") == 0) {
			if (from_env) {
				/* Disabling auth must be visible in the file itself. */
				config_set_err(why, whylen, "%s: the environment variable holds 'none'; "
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
		if (config_value_check(k, val, why, whylen) < 0)
			return -1;
		s = strdup(val);
		if (!s) {
			config_set_err(why, whylen, "out of memory");
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
		if (config_key_is_string(&config_keys[i]))
			config_free_string(&config_keys[i], *(char **)config_field(cfg, &config_keys[i]));
	memset(cfg, 0, sizeof *cfg);
}

int config_defaults(struct config *cfg)
{
	char why[256];

	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct cfg_key *k = &config_keys[i];
		if (k->def && config_key_set(cfg, k, k->def, 0, why, sizeof why) < 0) {
			log_msg(LOG_ERROR, NULL, "config: default of %s: %s", k->name, why);
			config_free(cfg);
			return -1;
		}
	}
	return 0;
}

static const struct cfg_key *config_key_find(const char *name)
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
static int config_resolve_env(const char *val, const char **out, int *from_env, char *why,
		       size_t whylen)
{
	const char *name, *v;

	*out = val;
	*from_env = 0;
	if (strncmp(val, "env:", 4) != 0)
		return 0;
	name = val + 4;
	if (!*name) {
		config_set_err(why, whylen, "environment variable name missing after 'env:'");
		return -1;
	}
	v = getenv(name);
	if (!v || !*v) {
		config_set_err(why, whylen, "environment variable %.64s is not set", name);
		return -1;
	}
	*out = v;
	*from_env = 1;
	return 0;
}

/* Applies one line; returns -1 with why set. seen[] holds first line numbers. */
static int config_apply_line(struct config *cfg, char *line, int lineno, int *seen, char *why,
		      size_t whylen)
{
	const struct cfg_key *k;
	const char *val;
	char *eq, *key, *raw;
	int from_env;

	eq = strchr(line, '=');
	if (!eq) {
		config_set_err(why, whylen, "expected 'key = value'");
		return -1;
	}
	*eq = '\0';
	key = config_trim(line);
	raw = config_trim(eq + 1);
	if (!*key) {
		config_set_err(why, whylen, "missing key before '='");
		return -1;
	}
	k = config_key_find(key);
	if (!k) {
		config_set_err(why, whylen, "unknown key '%.64s'", key);
		return -1;
	}
	if (seen[k - config_keys]) {
		config_set_err(why, whylen, "duplicate key '%s' (first set on line %d)", k->name,
			seen[k - config_keys]);
		return -1;
	}
	seen[k - config_keys] = lineno;
	if (!*raw) {
		config_set_err(why, whylen, "empty value for '%s'", k->name);
		return -1;
	}
	if (config_resolve_env(raw, &val, &from_env, why, whylen) < 0)
		return -1;
	return config_key_set(cfg, k, val, from_env, why, whylen);
}

/*
 * Reads one line into buf (CONFIG_LINE_MAX + 1 bytes), without its '\n',
 * NUL-terminated. Returns its length, -1 at the end of the file (or on a
 * read error: see ferror), or -2 when it is longer than CONFIG_LINE_MAX or
 * would take the file past CONFIG_FILE_MAX (*total counts the bytes read so
 * far). Bounded so that `-c /dev/zero` or a huge file fails at once instead
 * of growing a buffer without end.
 */
static long config_read_line(FILE *f, char *buf, size_t *total)
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
		config_set_err(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
		goto out;
	}
	line = malloc(CONFIG_LINE_MAX + 1);
	if (!line || config_defaults(&tmp) < 0) {
		config_set_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while ((n = config_read_line(f, line, &total)) != -1) {
		lineno++;
		if (n == -2 && total > CONFIG_FILE_MAX) {
			config_set_err(err, errlen, "%s:%d: file is larger than %d bytes", path, lineno,
				CONFIG_FILE_MAX);
			goto out;
		}
		if (memchr(line, '\0', n == -2 ? CONFIG_LINE_MAX : (size_t)n)) {
			config_set_err(err, errlen, "%s:%d: line contains a NUL byte", path, lineno);
			goto out;
		}
		if (n == -2) {
			config_set_err(err, errlen, "%s:%d: line is longer than %d bytes", path, lineno,
				CONFIG_LINE_MAX);
			goto out;
		}
		s = line;
		if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3; /* a UTF-8 byte order mark some editors add */
		s = config_trim(s);
		if (*s == '\0' || *s == '#')
			continue;
		if (config_apply_line(&tmp, s, lineno, seen, why, sizeof why) < 0) {
			config_set_err(err, errlen, "%s:%d: %s", path, lineno, why);
			goto out;
		}
	}
	if (ferror(f)) {
		config_set_err(err, errlen, "%s: cannot read (%s)", path, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].required && !seen[i]) {
			config_set_err(err, errlen, "%s: %s is required (%s)", path, config_keys[i].name,
				config_keys[i].required);
			goto out;
		}
	}
	if (tmp.auth_token &&
	    util_sha256(tmp.auth_token, strlen(tmp.auth_token), tmp.auth_token_sha256) < 0) {
		config_set_err(err, errlen, "%s: cannot hash auth_token (OpenSSL)", path);
		goto out;
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

