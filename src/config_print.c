/*
 * config_print.c — router.conf.example and the key list of --help, both
 * written from the key table (config_keys.c), so they always show the keys,
 * defaults and help the parser uses.
 *
 * Threads: no shared state; each call writes only to its FILE.
 */
#include "config_internal.h"

#include <stdio.h>
#include <string.h>

/* Writes text as `# ` comment lines of at most ~76 columns. */
static void config_print_wrapped(FILE *out, const char *text)
{
	const char *p = text;
	int col = 0;

	while (*p) {
		size_t w;

		while (*p == ' ')
			p++;
		w = strcspn(p, " ");
		if (w == 0)
			break;
		if (col > 0 && col + 1 + (int)w > 76) {
			fputc('\n', out);
			col = 0;
		}
		col += fprintf(out, col ? " %.*s" : "# %.*s", (int)w, p);
		p += w;
	}
	if (col > 0)
		fputc('\n', out);
}

void config_print_example(FILE *out)
{
	fputs("# router.conf: egoi-router configuration.\n"
	      "#\n"
	      "# One `key = value` per line; blanks around '=' are ignored. A line whose\n"
	      "# first non-blank character is '#' is a comment; anywhere else '#' is part\n"
	      "# of the value. Unknown keys, repeated keys and bad values are errors that\n"
	      "# name the file and line.\n"
	      "#\n"
	      "# Durations: 250ms, 10s, 5m, 24h (a bare number means seconds).\n"
	      "# Sizes: 512, 64k, 10M, 1G (powers of 1024).\n"
	      "# A value written as env:NAME is read from the environment variable NAME;\n"
	      "# use it for secrets. Relative paths are taken from the working directory.\n"
	      "# Keys commented out below show their default, or an example when they\n"
	      "# have none.\n", out);
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct cfg_key *k = &config_keys[i];

		fputc('\n', out);
		config_print_wrapped(out, k->help);
		if (k->example)
			fprintf(out, "%s = %s\n", k->name, k->example);
		else
			fprintf(out, "# %s = %s\n", k->name, k->def ? k->def : k->sample);
	}
}

void config_print_keys(FILE *out)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct cfg_key *k = &config_keys[i];
		char def[64];

		if (k->required)
			snprintf(def, sizeof def, "(required)");
		else if (k->def)
			snprintf(def, sizeof def, "(default %s)", k->def);
		else
			snprintf(def, sizeof def, "(not set)");
		fprintf(out, "  %-23s %s  %s\n", k->name, def, k->help);
	}
}
