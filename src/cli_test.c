/*
 * cli_test.c — see cli_test.h: the command line and the run. The output
 * of one event is cli_test_out.c's, the comparison cli_test_expect.c's.
 */
#include "cli_test.h"
#include "cli_test_internal.h"
#include "clock.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "exit_codes.h"
#include "log.h"
#include "pipeline.h"
#include "util_buf.h"

#define CLI_TEST_MAX_INPUT (256u << 20)

char *cli_test_read_all(const char *path, size_t *len_out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct util_buf b = { .max = CLI_TEST_MAX_INPUT };

	if (!f) {
		fprintf(stderr, "egoi-router: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t room = b.max - b.len < 65536 ? b.max - b.len : 65536, n;

		if (room == 0 || util_buf_reserve(&b, room) != 0) {
			if (room == 0 || b.over)
				fprintf(stderr, "egoi-router: %s: larger than 256M\n", path);
			goto fail;
		}
		n = fread(b.p + b.len, 1, b.cap - 1 - b.len, f);
		b.len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "egoi-router: %s: read error\n", path);
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	b.p[b.len] = '\0';
	*len_out = b.len;
	return b.p;
fail:
	if (f != stdin)
		fclose(f);
	util_buf_free(&b);
	return NULL;
}

#define CLI_TEST_USAGE                                                                      \
	"usage: egoi-router test [--env NAME=VALUE]... [--meta KEY=VALUE]...\n"                  \
	"                        [--expect FILE.jsonl | --format json|text] RULES BATCH\n"

/* --meta KEY=VALUE: what route() reads in meta; index and batch_size come from the batch. */
static int cli_test_meta(struct cli_test_options *o, const char *pair)
{
	const char *eq = strchr(pair, '='), *v = eq ? eq + 1 : NULL;
	size_t klen = eq ? (size_t)(eq - pair) : 0;
	char *end;

	if (!eq || klen == 0) {
		fprintf(stderr, "egoi-router: --meta wants KEY=VALUE, not '%s'\n", pair);
		return -1;
	}
	if (klen == 10 && memcmp(pair, "request_id", klen) == 0) {
		o->request_id = v;
	} else if (klen == 11 && memcmp(pair, "remote_addr", klen) == 0) {
		o->remote_addr = v;
	} else if (klen == 11 && memcmp(pair, "received_at", klen) == 0) {
		errno = 0;
		o->received_at = strtod(v, &end);
		if (!*v || *end || errno || !isfinite(o->received_at) || o->received_at < 0) {
			fprintf(stderr, "egoi-router: --meta received_at wants unix seconds, not '%s'\n",
				v);
			return -1;
		}
		o->received_at_set = 1;
	} else {
		fprintf(stderr, "egoi-router: --meta %.*s: not a settable meta field (request_id, "
				"remote_addr, received_at; index and batch_size come from the batch)\n",
			(int)klen, pair);
		return -1;
	}
	return 0;
}

int cli_test_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "env", required_argument, NULL, 'e' },
		{ "meta", required_argument, NULL, 'm' },
		{ "expect", required_argument, NULL, 'x' },
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_test_options o;
	const char **pairs = calloc((size_t)argc + 1, sizeof *pairs);
	size_t n = 0;
	int c, rc = EXIT_USAGE, format_set = 0;

	memset(&o, 0, sizeof o);
	if (!pairs)
		return EXIT_RUNTIME;
	/* "+": options come before the operands; optind = 0 makes glibc start afresh */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
		const char *eq = c == 'e' ? strchr(optarg, '=') : NULL;

		switch (c) {
		case 'e':
			if (!eq || eq == optarg) {
				fprintf(stderr, "egoi-router: --env wants NAME=VALUE, not '%s'\n", optarg);
				goto out;
			}
			pairs[n++] = optarg;
			break;
		case 'm':
			if (cli_test_meta(&o, optarg) < 0)
				goto out;
			break;
		case 'x':
			o.expect_path = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0) {
				fprintf(stderr, "egoi-router: --format is json or text, not '%s'\n", optarg);
				goto out;
			}
			o.text = strcmp(optarg, "text") == 0;
			format_set = 1;
			break;
		default:
			fputs(CLI_TEST_USAGE, stderr);
			goto out;
		}
	}
	if (o.expect_path && format_set) {
		fputs("egoi-router: --expect prints the differences only: it takes no --format\n",
		      stderr);
		goto out;
	}
	if (argc - optind != 2) {
		fputs(CLI_TEST_USAGE, stderr);
		goto out;
	}
	o.rules_path = argv[optind];
	o.batch_path = argv[optind + 1];
	o.env_pairs = pairs;
	rc = cli_test_run(&o);
out:
	free(pairs);
	return rc;
}

/*
 * Prints (or compares) every event; returns the exit code. Events whose
 * rule failed make it EXIT_INVALID unless an --expect file expected them.
 */
static int cli_test_report(const struct cli_test_options *o, struct pipeline *p,
			   const char *body, char *scratch, struct cli_test_expect *x)
{
	size_t failed = 0;

	if (o->text && !x && cli_test_text_header(stdout) < 0)
		return EXIT_RUNTIME;
	for (size_t i = 0; i < pipeline_event_count(p); i++) {
		size_t len = 0, n;
		const struct decision *d = pipeline_decisions_of(p, i, &n);
		char *line = NULL;
		int bad = 0, rc = 0;

		for (size_t k = 0; k < n; k++)
			bad |= d[k].kind == DECISION_ERROR || d[k].kind == DECISION_REJECT;
		failed += bad;
		if (o->text && !x) {
			rc = cli_test_event_text(stdout, p, i);
		} else {
			line = cli_test_event_json(p, body, i, scratch, &len);
			if (!line)
				return EXIT_RUNTIME;
			if (x)
				rc = cli_test_expect_event(x, stdout, i, pipeline_event_action(p, i),
							   line, len);
			else if (fwrite(line, 1, len, stdout) != len || fputc('\n', stdout) == EOF)
				rc = -1;
			free(line);
		}
		if (rc < 0)
			return EXIT_RUNTIME;
	}
	if (x) {
		if (cli_test_expect_finish(x, stdout, pipeline_event_count(p)) < 0)
			return EXIT_RUNTIME;
		if (x->differ) {
			fprintf(stderr, "egoi-router: %s: %zu event(s) differ from %s\n", o->rules_path,
				x->differ, x->path);
			return EXIT_INVALID;
		}
		printf("ok %zu events match %s\n", pipeline_event_count(p), x->path);
		return EXIT_OK;
	}
	if (failed) {
		fprintf(stderr, "egoi-router: %s: %zu event(s) failed (rule error or malformed)\n",
			o->rules_path, failed);
		return EXIT_INVALID;
	}
	return EXIT_OK;
}

int cli_test_run(const struct cli_test_options *o)
{
	static const char *const no_pairs[] = { NULL };
	struct config cfg;
	struct pipeline_shared sh = { .cfg = &cfg,
				      .env_pairs = o->env_pairs ? o->env_pairs : no_pairs };
	struct pipeline p;
	struct pipeline_result res;
	struct cli_test_expect x;
	char *body = NULL, *scratch = NULL;
	size_t len = 0;
	int rc = EXIT_INVALID;

	memset(&cfg, 0, sizeof cfg);
	memset(&x, 0, sizeof x);
	rules_current_init(&sh.published);   /* nothing published: the worker reads rules_path */
	pipeline_init(&p, &sh);
	if (config_defaults(&cfg) < 0) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	free(cfg.rules_path);
	cfg.rules_path = strdup(o->rules_path);
	if (!cfg.rules_path) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	log_setup(LOG_INFO, 0);
	if (o->expect_path && cli_test_expect_load(&x, o->expect_path, &rc) < 0)
		goto out;
	body = cli_test_read_all(o->batch_path, &len);
	if (!body)
		goto out;
	scratch = malloc(len + 1);
	if (!scratch) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	if (pipeline_route(&p, body, len, o->received_at_set ? o->received_at : clock_wall(),
			   o->remote_addr ? o->remote_addr : "-",
			   o->request_id ? o->request_id : "test", &res) < 0) {
		if (res.stage == PIPELINE_RULES_UNAVAILABLE) /* the message names file and line */
			fprintf(stderr, "egoi-router: %s\n", res.error);
		else
			fprintf(stderr, "egoi-router: %s: %s\n", o->batch_path, res.error);
		goto out;
	}
	rc = cli_test_report(o, &p, body, scratch, o->expect_path ? &x : NULL);
	pipeline_end(&p);
	if (fflush(stdout) != 0)
		rc = EXIT_RUNTIME;
out:
	pipeline_free(&p);
	rules_current_free(&sh.published);
	config_free(&cfg);
	cli_test_expect_free(&x);
	free(body);
	free(scratch);
	return rc;
}
