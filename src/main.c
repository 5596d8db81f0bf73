/*
 * main.c — start-up order, command line, signals.
 *
 *   run:   named phases (run_phases): signals → config (rules compile
 *          check, run_as_user looked up, logging, TLS library) → storage
 *          (data_dir, output_dir, outbox schema and reserve, handed to
 *          run_as_user) → backend (delivery thread, outbox writer) →
 *          intake (civetweb binds as root, drops to run_as_user, starts
 *          workers) → check user (the drop took, output_dir opens); then
 *          wait for a signal. Shutdown is the reverse: stop intake
 *          (refuse new connections and requests, answer those in flight,
 *          then mg_stop), stop the writer, drain delivery, exit 0.
 *   check: a preflight of all that run needs (cli_check.c); exit 0 or 1.
 *   test:  dry-run rules on a batch file, one JSON line per event.
 *   dlq:   list, replay or purge dead letters (dlq.c).
 *
 * Signals are blocked in every thread (they inherit the mask) and taken
 * synchronously by the main thread with sigwait, so no handler runs in the
 * middle of a request.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_check.h"
#include "cli_egoi.h"
#include "cli_test.h"
#include "config.h"
#include "config_reload.h"
#include "deliver.h"
#include "dlq.h"
#include "exit_codes.h"
#include "http.h"
#include "http_admin.h"
#include "http_guard.h"
#include "log.h"
#include "notify.h"
#include "metrics.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "outbox_space.h"
#include "outbox_writer.h"
#include "pipeline.h"
#include "pipeline_engines.h"
#include "privs.h"
#include "rules_load.h"
#include "rules_source.h"
#include "rules.h"
#include "sink_file.h"
#include "tls_cert.h"
#include "version.h"

static void main_usage(FILE *out)
{
	fprintf(out,
		"usage: egoi-router [run] [-c FILE]       run in the foreground (default FILE: router.conf)\n"
		"       egoi-router check [-c FILE]       preflight: config, listen, TLS, user, dirs, outbox, rules\n"
		"       egoi-router test [--env NAME=VALUE]... [--meta KEY=VALUE]...\n"
		"                        [--expect FILE.jsonl | --format json|text] RULES BATCH\n"
		"                                         dry-run RULES on a batch file ('-' = stdin);\n"
		"                                         env() sees only the --env values, meta the\n"
		"                                         --meta ones (request_id, remote_addr,\n"
		"                                         received_at); --expect compares with a file\n"
		"       egoi-router dlq list|replay|purge [-c FILE] [options]\n"
		"                                         inspect / re-run / delete dead letters:\n"
		"         dlq list   [--kind K] [--limit N] [--payload]\n"
		"         dlq replay (--id N ... | --kind K | --all)\n"
		"         dlq purge  (--id N ... | --kind K | --replayed | --all) [--older-than DURATION]\n"
		"       egoi-router egoi list|register|unregister [-c FILE] [options]\n"
		"                                         the account's webhooks in E-goi:\n"
		"         egoi list       [--json]\n"
		"         egoi register   --list ID [--actions A,B] [--fields F,G] [--url URL]\n"
		"                         [--allow-http] [--replace]\n"
		"         egoi unregister (--id N | --list ID)\n"
		"       egoi-router --version | --help\n"
		"\nexit codes: 0 ok, 1 invalid input/config/rules, 2 usage, 3 runtime failure\n"
		"\nconfiguration keys (router.conf, `key = value`):\n");
	if (out == stdout)
		config_print_keys(out);
}

/* Loads the config and the rules; errors go to stderr. NULL on failure. */
static struct rules_source *main_load_and_check(const char *path, struct config *cfg)
{
	char err[1024];
	struct rules_source *src;

	if (config_load(cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "egoi-router: %s\n", err);
		return NULL;
	}
	/* What civetweb and the intake's guard would refuse at start-up. */
	if (http_guard_check(cfg, err, sizeof err) < 0 ||
	    http_admin_check(cfg, err, sizeof err) < 0) {
		fprintf(stderr, "egoi-router: %s: %s\n", path, err);
		return NULL;
	}
	src = rules_load_checked(cfg, 1, err, sizeof err);
	if (!src)
		fprintf(stderr, "egoi-router: %s\n", err);
	return src;
}

/*
 * The daemon's state from start-up to exit: every phase below fills part
 * of it, main_run_free releases whatever was filled.
 */
struct run {
	const char *path;              /* router.conf */
	struct config cfg;
	struct pipeline_shared sh;
	struct privs_user user;        /* run_as_user */
	sigset_t sigs;                 /* taken by sigwait on the main thread */
	struct outbox *ob;
	struct deliver *deliver;
	struct outbox_writer *writer;
	struct http_server *http;
};

/* Blocks the signals main takes with sigwait: first of all, so that a
 * SIGHUP or SIGTERM sent while the rules' init() runs waits for sigwait
 * instead of killing the process by default action. */
static int main_run_signals(struct run *r)
{
	sigemptyset(&r->sigs);
	sigaddset(&r->sigs, SIGTERM);
	sigaddset(&r->sigs, SIGINT);
	sigaddset(&r->sigs, SIGHUP);
	sigaddset(&r->sigs, SIGUSR1);
	sigaddset(&r->sigs, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &r->sigs, NULL) != 0) {
		fprintf(stderr, "egoi-router: cannot block signals\n");
		return EXIT_RUNTIME;
	}
	/* A file-size limit (ulimit -f) must fail the write (EFBIG: the batch
	 * gets 503, the file keeps whole lines), not kill the daemon. */
	signal(SIGXFSZ, SIG_IGN);
	return EXIT_OK;
}

/* Config and rules (errors on stderr), then logging and the TLS library. */
static int main_run_config(struct run *r)
{
	struct config_snap *snap;
	struct rules_source *src;
	char err[1024];

	src = main_load_and_check(r->path, &r->cfg);
	if (!src)
		return EXIT_INVALID;
	/* Published before any worker exists; every worker compiles this text,
	 * so an edit on disk reaches none of them until SIGHUP. */
	rules_current_set(&r->sh.published, src);
	/* What requests read, replaced whole by each reload (config_reload.h). */
	snap = config_snap_copy(&r->cfg, 1);
	if (!snap) {
		fprintf(stderr, "egoi-router: out of memory\n");
		return EXIT_RUNTIME;
	}
	config_snap_publish(snap);
	if (privs_resolve(r->cfg.run_as_user, &r->user, err, sizeof err) < 0) {
		fprintf(stderr, "egoi-router: %s: %s\n", r->path, err);
		return EXIT_INVALID;
	}
	log_setup((enum log_level)r->cfg.log_level, r->cfg.log_json);
	if (r->cfg.log_file && log_open_file(r->cfg.log_file, r->user.drop, r->user.uid,
					     r->user.gid, err, sizeof err) < 0) {
		fprintf(stderr, "egoi-router: %s\n", err);   /* the system's, not the config's */
		return EXIT_RUNTIME;
	}
	if (http_library_init(err, sizeof err) < 0) {
		log_msg(LOG_ERROR, NULL, "%s", err);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

/* The files the outbox keeps in data_dir (SQLite's two beside the
 * database, the space reserve, the `dlq replay` lock). */
static const char *const run_data_files[] = {
	"outbox.db", "outbox.db-wal", "outbox.db-shm", "outbox.reserve", "dlq-replay.lock",
};

/*
 * data_dir, output_dir, the outbox schema and its space reserve, created
 * here (still root when run_as_user is set) before any worker, the writer
 * or the delivery thread races to do it, then handed to run_as_user so the
 * daemon can use them after the drop and `egoi-router dlq` run as that
 * user can open the outbox.
 */
static int main_run_storage(struct run *r)
{
	char err[1024];

	if (privs_make_dir(&r->user, r->cfg.data_dir, err, sizeof err) < 0 ||
	    privs_make_dir(&r->user, r->cfg.output_dir, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, NULL, "%s", err);
		return EXIT_RUNTIME;
	}
	if (outbox_use(r->cfg.outbox, OUTBOX_LEASE_MS(r->cfg.forward_timeout_ms), err,
		       sizeof err) == 0)
		r->ob = outbox_open(r->cfg.data_dir, err, sizeof err);
	if (!r->ob || outbox_space_start(r->cfg.data_dir, r->cfg.outbox_reserve, err,
					 sizeof err) < 0) {
		log_msg(LOG_ERROR, NULL, "outbox: %s", err);
		return EXIT_RUNTIME;
	}
	for (size_t i = 0; i < sizeof run_data_files / sizeof run_data_files[0]; i++)
		if (privs_hand_file(&r->user, r->cfg.data_dir, run_data_files[i], err,
				    sizeof err) < 0) {
			log_msg(LOG_ERROR, NULL, "%s", err);
			return EXIT_RUNTIME;
		}
	return EXIT_OK;
}

/* The delivery thread's options from cfg (pointers into it). */
static void main_deliver_options_of(const struct config *cfg, struct deliver_options *dopt)
{
	memset(dopt, 0, sizeof *dopt);
	dopt->data_dir = cfg->data_dir;
	dopt->timeout_ms = cfg->forward_timeout_ms;
	dopt->max_attempts = cfg->forward_max_attempts;
	dopt->max_age_ms = cfg->forward_max_age_ms;
	dopt->backoff_max_ms = cfg->forward_backoff_max_ms;
	dopt->concurrency = cfg->forward_concurrency;
	dopt->signing_secret = cfg->forward_signing_secret;
}

/* The pipeline's commit callback: forwards are waiting in the outbox. */
static void main_run_wake_delivery(void *deliver)
{
	deliver_notify(deliver);
}

/* lua_states, with 0 resolved: two per online core, at least 2, at most threads. */
static size_t main_lua_states(const struct config *cfg)
{
	long n = cfg->lua_states;

	if (n == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);

		n = cores > 1 ? 2 * cores : 2;
	}
	return (size_t)(n < cfg->threads ? n : cfg->threads);
}

/*
 * The delivery thread and the group committer. They start before the
 * intake because a worker may take a batch as soon as civetweb starts it;
 * with run_as_user they run as root only until the drop in main_run_intake,
 * which changes every thread of the process.
 */
static int main_run_backend(struct run *r)
{
	struct deliver_options dopt;
	char err[1024];

	main_deliver_options_of(&r->cfg, &dopt);
	r->deliver = deliver_start(&dopt, err, sizeof err);
	if (!r->deliver) {
		log_msg(LOG_ERROR, NULL, "delivery: %s", err);
		return EXIT_RUNTIME;
	}
	r->writer = outbox_writer_start(r->cfg.data_dir, err, sizeof err);
	if (!r->writer) {
		log_msg(LOG_ERROR, NULL, "outbox writer: %s", err);
		return EXIT_RUNTIME;
	}
	r->sh.engines = pipeline_engines_new(main_lua_states(&r->cfg));
	if (!r->sh.engines) {
		log_msg(LOG_ERROR, NULL, "out of memory");
		return EXIT_RUNTIME;
	}
	log_msg(LOG_DEBUG, NULL, "%zu Lua states for %ld worker threads",
		pipeline_engines_max(r->sh.engines), r->cfg.threads);
	r->sh.cfg = &r->cfg;
	r->sh.writer = r->writer;
	r->sh.on_commit = main_run_wake_delivery;
	r->sh.on_commit_arg = r->deliver;
	r->sh.deliver = r->deliver;
	return EXIT_OK;
}

/* civetweb binds the listening ports (as root if need be), drops to
 * run_as_user, then starts its workers, which open their rules and
 * output_dir as that user before serving (http.h). */
static int main_run_intake(struct run *r)
{
	char err[1024];

	r->http = http_start(&r->sh, err, sizeof err);
	if (!r->http) {
		log_msg(LOG_ERROR, NULL, "%s", err);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

/*
 * The drop took (no ID left that could regain root), and output_dir opens
 * as the user every write() runs as: a daemon that could only answer 500
 * to batches with a write() does not start.
 */
static int main_run_check_user(struct run *r)
{
	struct sink_file *sink;
	char err[1024];

	if (privs_check_dropped(&r->user, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, NULL, "%s", err);
		return EXIT_RUNTIME;
	}
	sink = sink_file_open(r->cfg.output_dir, SINK_SYNC_NONE, err, sizeof err);
	if (!sink) {
		log_msg(LOG_ERROR, NULL, "output_dir as %s: %s",
			r->user.drop ? r->user.name : "this user", err);
		return EXIT_RUNTIME;
	}
	sink_file_close(sink);
	log_msg(LOG_INFO, NULL, "egoi-router %s listening on %s, endpoint %s, rules %s, %ld threads%s%s",
		EGOI_ROUTER_VERSION, r->cfg.listen, r->cfg.endpoint, r->cfg.rules_path, r->cfg.threads,
		r->user.drop ? ", running as " : "", r->user.drop ? r->user.name : "");
	log_msg(LOG_INFO, NULL, "outbox: %ld pending, %ld dead letters",
		outbox_count_pending(r->ob), outbox_count_dead(r->ob));
	return EXIT_OK;
}

/* Start-up, in order; each phase needs those before it. */
static const struct {
	const char *name;
	int (*fn)(struct run *r);
} run_phases[] = {
	{ "signals", main_run_signals },
	{ "config", main_run_config },
	{ "storage", main_run_storage },
	{ "backend", main_run_backend },
	{ "intake", main_run_intake },
	{ "check user", main_run_check_user },
};

/* Logs each key a reload changes, and each that needs a restart. */
static void main_reload_log_diff(const char *path, const struct config_reload_diff *d)
{
	for (size_t i = 0; i < d->nrestart; i++)
		log_msg(LOG_WARN, NULL, "SIGHUP: %s changed in %s but needs a restart; the running "
			"value stays until then", d->restart[i], path);
	for (size_t i = 0; i < d->nchanged; i++)
		log_msg(LOG_INFO, NULL, "SIGHUP: %s changed, new requests use it", d->changed[i]);
}

/*
 * SIGHUP, the one place a reload happens: router.conf is read again and
 * checked whole (values, the intake's checks, the rules compiled with
 * its limits, the TLS pair, the guard's and the delivery thread's
 * settings), and only if all of it passes is it put in force: the rules
 * as a new generation, the certificate, the guard (allow_from, rate
 * limit, connection cap), the delivery settings (forward_*), the log
 * settings, and the config snapshot new requests read
 * (config_reload.h). Keys that need a restart keep their running value.
 * Anything refused leaves everything as it was. The outcome is counted
 * in egoi_router_reloads_total.
 */
static void main_run_reload(struct run *r)
{
	unsigned long gen = atomic_load(&r->sh.published.generation) + 1;
	struct config_snap *cur = config_snap_acquire(), *snap = NULL;
	struct rules_source *src = NULL;
	struct http_guard_params *guard = NULL;
	struct deliver_settings *dset = NULL;
	struct deliver_options dopt;
	struct config_reload_diff d;
	struct config next;
	char err[1024];
	int ok = 0;

	memset(&next, 0, sizeof next);
	if (!cur) {
		snprintf(err, sizeof err, "no config in force");
		goto out;
	}
	if (config_load(&next, r->path, err, sizeof err) < 0)
		goto out;
	if (http_guard_check(&next, err, sizeof err) < 0 ||
	    config_reload_diff(&cur->cfg, &next, &d) < 0)
		goto out;
	if (strchr(next.listen, 's') &&
	    tls_cert_check(next.tls_certificate, next.tls_key, NULL, err, sizeof err) < 0)
		goto out;
	src = rules_load_checked(&next, gen, err, sizeof err);
	if (!src)
		goto out;
	main_deliver_options_of(&next, &dopt);
	guard = http_guard_params_new(&next, err, sizeof err);
	if (!guard || !(dset = deliver_settings_new(&dopt, err, sizeof err)))
		goto out;
	snap = config_snap_copy(&next, cur->generation + 1);
	if (!snap) {
		snprintf(err, sizeof err, "out of memory");
		goto out;
	}
	/* What this reload says is logged at the more verbose of the two
	 * levels: an operator going from warn to info sees it too. */
	log_setup((enum log_level)(next.log_level < cur->cfg.log_level ? next.log_level
								   : cur->cfg.log_level),
		  next.log_json);
	main_reload_log_diff(r->path, &d);
	rules_current_set(&r->sh.published, src);
	src = NULL;
	log_msg(LOG_INFO, NULL, "SIGHUP: rules %s reloaded (generation %lu)", next.rules_path, gen);
	/* Checked above; a failure here (the files changed again since) keeps
	 * the old certificate and is logged by tls_cert_reload. */
	tls_cert_reload(next.tls_certificate, next.tls_key);
	http_guard_update(http_server_guard(r->http), guard);
	guard = NULL;
	deliver_reconfigure(r->deliver, dset);
	dset = NULL;
	log_msg(LOG_INFO, NULL, "SIGHUP: %s reloaded (config generation %lu)", r->path,
		snap->generation);
	log_setup((enum log_level)snap->cfg.log_level, snap->cfg.log_json);
	config_snap_publish(snap);
	ok = 1;
out:
	if (!ok)
		log_msg(LOG_ERROR, NULL, "SIGHUP: reload refused, the previous config and rules "
			"keep serving: %s", err);
	metrics_reload(ok, ok ? NULL : err);
	http_guard_params_free(guard);
	deliver_settings_free(dset);
	rules_source_unref(src);
	config_free(&next);
	config_snap_release(cur);
}

/* Shrinks the Lua states that nobody borrowed for a second. */
static void main_run_quiet(struct run *r)
{
	size_t n = pipeline_engines_idle(r->sh.engines, 1.0);

	if (n > 0)
		log_msg(LOG_DEBUG, NULL, "%zu Lua state(s) quiet for 1 s: shrunk to their live data", n);
}

/* Serves until SIGTERM or SIGINT; SIGHUP reloads (main_run_reload). systemd hears
 * READY=1 once every start-up phase is done, RELOADING=1 and READY=1 around
 * a reload, STOPPING=1 when the stop begins (notify.h). Between signals it
 * wakes once a second to shrink the Lua states that went quiet. */
static void main_run_serve(struct run *r)
{
	int sig = 0;

	notify_ready(r->cfg.listen);
	for (;;) {
		const struct timespec tick = { .tv_sec = 1, .tv_nsec = 0 };

		sig = sigtimedwait(&r->sigs, NULL, &tick);
		if (sig < 0) {
			if (errno == EAGAIN)   /* a quiet second: shrink the Lua states nobody used in it */
				main_run_quiet(r);
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP) {
			notify_reloading();
			main_run_reload(r);
			notify_ready(r->cfg.listen);
		}
		if (sig == SIGUSR1)
			log_reopen();
	}
	notify_stopping();
	log_msg(LOG_INFO, NULL, "signal %d: stopping", sig);
}

/*
 * Stops in the reverse order of start-up. After a signal (drain = 1): the
 * intake drains (every batch committed gets its answer before civetweb
 * stops, http.h), only then may the writer stop, then delivery has 5 s.
 * After a failed start-up, the same without the waits.
 */
static void main_run_free(struct run *r, int drain)
{
	http_stop(r->http);
	pipeline_engines_free(r->sh.engines);   /* no worker is left to borrow one */
	outbox_writer_stop(r->writer);
	if (drain)
		log_msg(LOG_INFO, NULL, "draining delivery");
	deliver_stop(r->deliver, drain ? 5000 : 0);
	if (drain)
		log_msg(LOG_INFO, NULL, "stopped");
	outbox_close(r->ob);
	outbox_space_stop();
	rules_current_free(&r->sh.published);
	config_snap_clear();
	config_free(&r->cfg);
}

/*
 * glibc serves a large block (a 300 KB batch body, a Lua state's batch
 * tape) from its heap once a block of that size was freed, raising its
 * mmap threshold up to 32 MiB; freed, such blocks then stay in the heaps
 * of the threads that used them. A fixed threshold keeps every block of
 * 256 KiB or more in its own mapping, returned to the system when freed:
 * peak RSS at batch 1000 fell from 81 to 58 MiB (README, Performance). The
 * price is a mapping and its page faults per large block, a few per cent of
 * a large batch's CPU. GLIBC_TUNABLES=glibc.malloc.mmap_threshold still
 * wins when an operator sets it.
 */
static void main_run_malloc(void)
{
	const char *t = getenv("GLIBC_TUNABLES");

	if (!t || !strstr(t, "mmap_threshold"))
		mallopt(M_MMAP_THRESHOLD, 256 * 1024);
}

static int main_cmd_run(const char *path)
{
	struct run r;
	int rc = EXIT_OK;

	main_run_malloc();
	memset(&r, 0, sizeof r);
	r.path = path;
	rules_current_init(&r.sh.published);
	for (size_t i = 0; rc == EXIT_OK && i < sizeof run_phases / sizeof run_phases[0]; i++) {
		rc = run_phases[i].fn(&r);
		if (rc == EXIT_OK && i > 0)  /* logging is set up in config */
			log_msg(LOG_DEBUG, NULL, "start-up: %s done", run_phases[i].name);
		else if (i > 1)  /* signals and config report on stderr */
			log_msg(LOG_ERROR, NULL, "start-up failed in phase %s", run_phases[i].name);
	}
	if (rc == EXIT_OK)
		main_run_serve(&r);
	main_run_free(&r, rc == EXIT_OK);
	return rc;
}

/*
 * Options are read with getopt_long ("+": every argument after the first
 * word that is not an option is left as an operand), so "-c FILE",
 * "-cFILE", "--env NAME=VALUE" and "--env=NAME=VALUE" all work. optind = 0
 * makes glibc start afresh.
 */

/* Finds "-c FILE" among argv[from..]; returns the path or NULL on a usage error. */
static const char *main_config_arg(int argc, char **argv, int from)
{
	const char *path = "router.conf";
	int c;

	optind = 0;
	opterr = 0;
	/* getopt starts at argv[1]: argv[from - 1] stands for the program name */
	while ((c = getopt(argc - from + 1, argv + from - 1, "+:c:")) != -1) {
		if (c != 'c')
			return NULL;
		path = optarg;
	}
	return optind == argc - from + 1 ? path : NULL;
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
		main_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "test") == 0)
		return cli_test_main(argc - 1, argv + 1);
	if (strcmp(cmd, "dlq") == 0)
		return dlq_run(argc - 2, argv + 2);
	if (strcmp(cmd, "egoi") == 0)
		return cli_egoi_run(argc - 2, argv + 2);
	if (strcmp(cmd, "-c") == 0) {
		cmd = "run";
		from = 1;
	}
	path = main_config_arg(argc, argv, from);
	if (!path) {
		main_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "run") == 0)
		return main_cmd_run(path);
	if (strcmp(cmd, "check") == 0)
		return cli_check_run(path);
	fprintf(stderr, "egoi-router: unknown command '%s'\n", cmd);
	main_usage(stderr);
	return EXIT_USAGE;
}
