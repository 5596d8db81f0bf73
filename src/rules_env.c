/*
 * rules_env.c — what env(NAME) may read.
 *
 * The daemon's environment holds its own secrets (auth_token = env:NAME,
 * the signing secret), so rules see only the variables named in rules_env
 * ("A,B", checked by config.c). `egoi-router test` passes NAME=VALUE pairs
 * instead (--env) and never reads the real environment: a pair's name is
 * allowed by being given.
 *
 * Threads: r belongs to one thread; getenv is safe because the daemon never
 * calls setenv once threads run.
 */
#include "rules_internal.h"
#include "rules.h"

#include <stdlib.h>
#include <string.h>

/* NAME is one of the comma-separated names in list (spaces around names allowed). */
static int rules_env_listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return 0;
	for (const char *p = list; p && *p;) {
		size_t len;

		p += strspn(p, " \t");
		len = strcspn(p, ", \t");
		if (len == n && memcmp(p, name, n) == 0)
			return 1;
		p += len;
		p += strspn(p, " \t");
		if (*p == ',')
			p++;
	}
	return 0;
}

int rules_env_copy(struct rules *r, const struct rules_options *opt)
{
	size_t n = 0;

	if (opt->env_names) {
		r->env_names = strdup(opt->env_names);
		if (!r->env_names)
			return -1;
	}
	if (!opt->env_pairs)
		return 0;
	while (opt->env_pairs[n])
		n++;
	r->env_pairs = calloc(n + 1, sizeof *r->env_pairs);
	if (!r->env_pairs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		r->env_pairs[i] = strdup(opt->env_pairs[i]);
		if (!r->env_pairs[i])
			return -1;  /* rules_free → rules_env_free frees what was copied */
	}
	return 0;
}

void rules_env_free(struct rules *r)
{
	if (r->env_pairs) {
		for (char **p = r->env_pairs; *p; p++) {
			explicit_bzero(*p, strlen(*p));
			free(*p);
		}
		free(r->env_pairs);
		r->env_pairs = NULL;
	}
	free(r->env_names);
	r->env_names = NULL;
}

const char *rules_env_get(const struct rules *r, const char *name)
{
	size_t n = strlen(name);

	if (strchr(name, '='))
		return NULL;
	if (r->env_pairs) {
		for (char **p = r->env_pairs; *p; p++)
			if (n > 0 && strncmp(*p, name, n) == 0 && (*p)[n] == '=')
				return *p + n + 1;
		return NULL;
	}
	return rules_env_listed(r->env_names, name) ? getenv(name) : NULL;
}
