/*
 * main.c — start-up order, command line, signals.
 *
 *   run:   config → logging → TLS library → rules compile check → outbox
 *          schema → delivery thread → outbox writer → HTTP intake; then
 *          wait for a signal. Shutdown is the reverse: stop intake
 *          (refuse new connections and requests, answer those in flight,
 *          then mg_stop), stop the writer, drain delivery, exit 0.
 *   check: config + rules compile; exit 0 or 1.
 *   test:  dry-run rules on a batch file, one JSON line per event.
 *   dlq:   list, replay or purge dead letters (dlq.c).
 *
 * Signals are blocked in every thread (they inherit the mask) and taken
 * synchronously by the main thread with sigwait, so no handler runs in the
 * middle of a request.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_test.h"
#include "config.h"
#include "deliver.h"
#include "dlq.h"
#include "exit_codes.h"
#include "http.h"
#include "http_guard.h"
#include "log.h"
#include "outbox.h"
#include "outbox_space.h"
#include "outbox_writer.h"
#include "pipeline.h"
#include "rules_source.h"
#include "rules.h"

#define EGOI_ROUTER_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: egoi-router [run] [-c FILE]       run in the foreground (default FILE: router.conf)\n"
		"       egoi-router check [-c FILE]       validate config and compile rules\n"
		"       egoi-router test [--env NAME=VALUE]... RULES BATCH\n"
		"                                         dry-run RULES on a batch file ('-' = stdin);\n"
		"                                         env() sees only the --env values\n"
		"       egoi-router dlq list|replay|purge [-c FILE] [options]\n"
		"                                         inspect / re-run / delete dead letters:\n"
		"         dlq list   [--kind K] [--limit N] [--payload]\n"
		"         dlq replay (--id N ... | --kind K | --all)\n"
		"         dlq purge  (--id N ... | --kind K | --replayed | --all) [--older-than DURATION]\n"
		"       egoi-router --version | --help\n"
		"\nexit codes: 0 ok, 1 invalid input/config/rules, 2 usage, 3 runtime failure\n"
		"\nconfiguration keys (router.conf, `key = value`):\n");
	if (out == stdout)
		config_print_keys(out);
}

/*
 * Reads the rules file once and compiles that text (init() included), as
 * every worker will. Returns the source (one reference, the caller's), or
 * NULL with err set.
 */
static struct rules_source *rules_load_checked(const struct config *cfg, unsigned long generation,
					       char *err, size_t errlen)
{
	struct rules_options ropt;
	struct rules_source *src;
	struct rules *r;

	src = rules_source_read(cfg->rules, generation, err, errlen);
	if (!src)
		return NULL;
	memset(&ropt, 0, sizeof ropt);
	ropt.path = cfg->rules;
	ropt.source = src->text;
	ropt.source_len = src->len;
	ropt.instruction_limit = cfg->lua_instruction_limit;
	ropt.memory_limit = cfg->lua_memory_limit;
	ropt.time_limit_ms = cfg->lua_time_limit_ms;
	ropt.env_names = cfg->rules_env;
	r = rules_new(&ropt, err, errlen);
	if (!r) {
		rules_source_unref(src);
		return NULL;
	}
	rules_free(r);
	return src;
}

/* Loads the config and the rules; errors go to stderr. NULL on failure. */
static struct rules_source *load_and_check(const char *path, struct config *cfg)
{
	char err[1024];
	struct rules_source *src;

	if (config_load(cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "egoi-router: %s\n", err);
		return NULL;
	}
	/* What civetweb and the intake's guard would refuse at start-up. */
	if (http_guard_check(cfg, err, sizeof err) < 0) {
		fprintf(stderr, "egoi-router: %s: %s\n", path, err);
		return NULL;
	}
	src = rules_load_checked(cfg, 1, err, sizeof err);
	if (!src)
		fprintf(stderr, "egoi-router: %s\n", err);
	return src;
}

/*
 * SIGHUP: recompile the rules file and publish it; workers switch at their
 * next batch. Rules that do not compile are refused and the old ones keep
 * serving. Other settings are read at start-up only.
 */
static void reload_rules(struct pipeline_shared *sh)
{
	unsigned long next = atomic_load(&sh->rules.generation) + 1;
	struct rules_source *src;
	char err[1024];

	src = rules_load_checked(sh->cfg, next, err, sizeof err);
	if (!src) {
		log_msg(LOG_ERROR, NULL, "SIGHUP: reload refused, the previous rules keep serving: %s",
			err);
		return;
	}
	rules_current_set(&sh->rules, src);
	log_msg(LOG_INFO, NULL, "SIGHUP: rules %s reloaded (generation %lu); other settings "
				"apply after a restart", sh->cfg->rules, next);
}

static int cmd_check(const char *path)
{
	struct config cfg;
	struct rules_source *src;

	memset(&cfg, 0, sizeof cfg);
	src = load_and_check(path, &cfg);
	if (src)
		printf("%s: ok (rules %s)\n", path, cfg.rules);
	rules_source_unref(src);
	config_free(&cfg);
	return src ? EXIT_OK : EXIT_INVALID;
}

static int cmd_run(const char *path)
{
	struct config cfg;
	struct deliver_options dopt;
	struct deliver *d = NULL;
	struct http_server *http = NULL;
	struct outbox *ob = NULL;
	struct outbox_writer *writer = NULL;
	struct pipeline_shared sh;
	struct rules_source *src;
	sigset_t sigs;
	char err[1024];
	int rc = EXIT_RUNTIME, sig = 0;

	memset(&cfg, 0, sizeof cfg);
	memset(&sh, 0, sizeof sh);
	rules_current_init(&sh.rules);
	/* First of all: a SIGHUP or SIGTERM sent while the rules' init() runs
	 * must wait for sigwait below, not kill the process by default action. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) {
		fprintf(stderr, "egoi-router: cannot block signals\n");
		goto out;
	}
	/* A file-size limit (ulimit -f) must fail the write (EFBIG: the batch
	 * gets 503, the file keeps whole lines), not kill the daemon. */
	signal(SIGXFSZ, SIG_IGN);
	src = load_and_check(path, &cfg);
	if (!src) {
		rc = EXIT_INVALID;
		goto out;
	}
	/* Published before any worker exists; every worker compiles this text,
	 * so an edit on disk reaches none of them until SIGHUP. */
	rules_current_set(&sh.rules, src);
	log_setup((enum log_level)cfg.log_level, cfg.log_json);

	if (http_library_init(err, sizeof err) < 0) {
		log_msg(LOG_ERROR, NULL, "%s", err);
		goto out;
	}
	/* Creates data_dir and the schema before any worker or the delivery
	 * thread races to do it. */
	ob = outbox_open(cfg.data_dir, err, sizeof err);
	if (!ob) {
		log_msg(LOG_ERROR, NULL, "outbox: %s", err);
		goto out;
	}
	if (outbox_space_start(cfg.data_dir, cfg.outbox_reserve, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, NULL, "outbox: %s", err);
		goto out;
	}
	memset(&dopt, 0, sizeof dopt);
	dopt.data_dir = cfg.data_dir;
	dopt.timeout_ms = cfg.forward_timeout_ms;
	dopt.max_attempts = cfg.forward_max_attempts;
	dopt.max_age_ms = cfg.forward_max_age_ms;
	dopt.backoff_max_ms = cfg.forward_backoff_max_ms;
	dopt.concurrency = cfg.forward_concurrency;
	dopt.signing_secret = cfg.forward_signing_secret;
	d = deliver_start(&dopt, err, sizeof err);
	if (!d) {
		log_msg(LOG_ERROR, NULL, "delivery: %s", err);
		goto out;
	}
	writer = outbox_writer_start(cfg.data_dir, err, sizeof err);
	if (!writer) {
		log_msg(LOG_ERROR, NULL, "outbox writer: %s", err);
		goto out;
	}
	sh.cfg = &cfg;
	sh.writer = writer;
	sh.deliver = d;
	http = http_start(&sh, err, sizeof err);
	if (!http) {
		log_msg(LOG_ERROR, NULL, "%s", err);
		goto out;
	}
	log_msg(LOG_INFO, NULL, "egoi-router %s listening on %s, endpoint %s, rules %s, %ld threads",
		EGOI_ROUTER_VERSION, cfg.listen, cfg.endpoint, cfg.rules, cfg.threads);
	log_msg(LOG_INFO, NULL, "outbox: %ld pending, %ld dead letters", outbox_count_pending(ob),
		outbox_count_dead(ob));

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			reload_rules(&sh);
	}
	log_msg(LOG_INFO, NULL, "signal %d: stopping", sig);
	/* Drains the intake: every batch committed gets its answer before
	 * civetweb stops (http.h); only then may the writer stop. */
	http_stop(http);
	http = NULL;
	outbox_writer_stop(writer);
	writer = NULL;
	log_msg(LOG_INFO, NULL, "draining delivery");
	deliver_stop(d, 5000);
	d = NULL;
	log_msg(LOG_INFO, NULL, "stopped");
	rc = EXIT_OK;
out:
	http_stop(http);
	outbox_writer_stop(writer);
	deliver_stop(d, 0);
	outbox_close(ob);
	outbox_space_stop();
	rules_current_free(&sh.rules);
	config_free(&cfg);
	return rc;
}

/* Finds "-c FILE" among argv[from..]; returns the path or NULL on a usage error. */
static const char *config_arg(int argc, char **argv, int from)
{
	const char *path = "router.conf";

	for (int i = from; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else
			return NULL;
	}
	return path;
}

/* egoi-router test [--env NAME=VALUE]... RULES BATCH */
static int main_test(int argc, char **argv)
{
	const char **pairs = calloc((size_t)argc, sizeof *pairs);
	size_t n = 0;
	int i = 2, rc = EXIT_USAGE;

	if (!pairs)
		return EXIT_RUNTIME;
	while (i + 1 < argc && strcmp(argv[i], "--env") == 0) {
		const char *eq = strchr(argv[i + 1], '=');

		if (!eq || eq == argv[i + 1]) {
			fprintf(stderr, "egoi-router: --env wants NAME=VALUE, not '%s'\n", argv[i + 1]);
			goto out;
		}
		pairs[n++] = argv[i + 1];
		i += 2;
	}
	if (argc - i != 2) {
		usage(stderr);
		goto out;
	}
	rc = cli_test_run(argv[i], argv[i + 1], pairs);
out:
	free(pairs);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "run";
	const char *path;
	int from = 2;

	if (strcmp(cmd, "--version") == 0) {
		printf("egoi-router %s\n", EGOI_ROUTER_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "test") == 0)
		return main_test(argc, argv);
	if (strcmp(cmd, "dlq") == 0)
		return dlq_run(argc - 2, argv + 2);
	if (strcmp(cmd, "-c") == 0) {
		cmd = "run";
		from = 1;
	}
	path = config_arg(argc, argv, from);
	if (!path) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "run") == 0)
		return cmd_run(path);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(path);
	fprintf(stderr, "egoi-router: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
