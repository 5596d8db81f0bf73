/*
 * cli_check.c — `egoi-router check` (cli_check.h): the order of the
 * checks, and those that need no file of their own: the config, the
 * certificate, run_as_user, the outbox and the rules. A config that does
 * not load stops there (nothing else is known); every other check runs
 * even after one failed, so one run names every problem.
 */
#include "cli_check.h"
#include "cli_check_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "exit_codes.h"
#include "http_admin.h"
#include "http_guard.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "rules_load.h"
#include "rules_source.h"
#include "tls_cert.h"

/* A certificate this close to its end still passes, with a warning in the line. */
#define CLI_CHECK_RENEW_DAYS 14

/*
 * ok lines on stdout, FAIL lines on stderr (where every command puts its
 * errors); stdout is flushed first so that a terminal or the journal,
 * which get both, see the lines in order.
 */
void cli_check_line(int ok, const char *what, const char *fmt, ...)
{
	FILE *out = ok ? stdout : stderr;
	va_list ap;

	fflush(stdout);
	fprintf(out, "%s%s ", ok ? "ok  " : "FAIL ", what);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	fflush(out);
}

/* The chain and key as the listener loads them, and how long they last. */
static int cli_check_certificate(const struct config *cfg, int tls_ports)
{
	long not_after = 0;
	char err[1024], date[16];
	time_t now = time(NULL);
	struct tm tm;
	long days;

	if (!cfg->tls_certificate) {
		if (tls_ports) {
			cli_check_line(0, "certificate", "tls_certificate is not set, and listen has "
				       "TLS ports");
			return -1;
		}
		return 0;
	}
	if (tls_cert_check(cfg->tls_certificate, cfg->tls_key, &not_after, err, sizeof err) < 0) {
		cli_check_line(0, "certificate", "%s", err);
		return -1;
	}
	gmtime_r(&(time_t){ (time_t)not_after }, &tm);
	strftime(date, sizeof date, "%Y-%m-%d", &tm);
	days = (long)((not_after - (long)now) / 86400);
	cli_check_line(1, "certificate", "%s (expires %s, %ld day%s%s)", cfg->tls_certificate, date,
		       days, days == 1 ? "" : "s", days < CLI_CHECK_RENEW_DAYS ? ": renew it soon" : "");
	return 0;
}

/* tls_client_ca, when set: a PEM file OpenSSL reads as the listener will. */
static int cli_check_client_ca(const struct config *cfg)
{
	FILE *f;

	if (!cfg->tls_client_ca)
		return 0;
	f = fopen(cfg->tls_client_ca, "r");
	if (!f) {
		cli_check_line(0, "tls_client_ca", "%s: %s", cfg->tls_client_ca, strerror(errno));
		return -1;
	}
	fclose(f);
	cli_check_line(1, "tls_client_ca", "%s (readable)", cfg->tls_client_ca);
	return 0;
}

static int cli_check_user(const struct config *cfg, struct privs_user *u)
{
	char err[512];

	if (privs_resolve(cfg->run_as_user, u, err, sizeof err) < 0) {
		/* privs' message starts with the key the line already names */
		cli_check_line(0, "run_as_user", "%s",
			       strncmp(err, "run_as_user ", 12) == 0 ? err + 12 : err);
		return -1;
	}
	if (u->drop)
		cli_check_line(1, "run_as_user", "%s (uid %d, gid %d)", u->name, (int)u->uid,
			       (int)u->gid);
	else if (cfg->run_as_user)
		cli_check_line(1, "run_as_user", "%s (the current user: nothing to change)",
			       cfg->run_as_user);
	return 0;
}

/*
 * The outbox as start-up opens it (as root before a drop, schema included),
 * when it exists: a missing one is created by `run`, and check creates
 * nothing.
 */
static int cli_check_outbox(const struct config *cfg)
{
	char path[4096], err[1024];
	struct outbox *ob;
	struct stat st;

	if (outbox_use(cfg->outbox, 0, err, sizeof err) < 0) {
		cli_check_line(0, "outbox", "%s", err);
		return -1;
	}
	if (strcmp(outbox_backend_name(), "sqlite") != 0) {
		/* a server: reached and its schema read, nothing changed; not
		 * reaching it is the machine's problem, not the config's (-2) */
		if (outbox_check(err, sizeof err) < 0) {
			cli_check_line(0, "outbox", "%s", err);
			return -2;
		}
		cli_check_line(1, "outbox", "%s", err);
		return 0;
	}
	snprintf(path, sizeof path, "%s/outbox.db", cfg->data_dir);
	if (stat(path, &st) != 0 && errno == ENOENT) {
		cli_check_line(1, "outbox", "%s (created at start-up)", path);
		return 0;
	}
	ob = outbox_open(cfg->data_dir, err, sizeof err);
	if (!ob) {
		cli_check_line(0, "outbox", "%s", err);
		return -1;
	}
	cli_check_line(1, "outbox", "%s (%ld pending, %ld dead letters)", path,
		       outbox_count_pending(ob), outbox_count_dead(ob));
	outbox_close(ob);
	return 0;
}

/* Read once and compiled with init(), as start-up compiles them (rules_load.h). */
static int cli_check_rules(const struct config *cfg)
{
	char err[1024];
	struct rules_source *src = rules_load_checked(cfg, 1, err, sizeof err);

	if (!src) {
		cli_check_line(0, "rules", "%s", err);
		return -1;
	}
	cli_check_line(1, "rules", "%s (compiled, init() ran)", cfg->rules_path);
	rules_source_unref(src);
	return 0;
}

int cli_check_run(const char *path)
{
	struct config cfg;
	struct privs_user u;
	char err[1024];
	int failed = 0, unreachable = 0, tls_ports = 0, dirs, rc;

	memset(&cfg, 0, sizeof cfg);
	if (config_load(&cfg, path, err, sizeof err) < 0) {
		cli_check_line(0, "config", "%s", err);
		rc = EXIT_INVALID;
		goto out;
	}
	cli_check_line(1, "config", "%s", path);
	/* what civetweb and the intake's guard would refuse at start-up */
	if (http_guard_check(&cfg, err, sizeof err) < 0) {
		cli_check_line(0, "config", "%s: %s", path, err);
		failed = 1;
	}
	if (http_admin_check(&cfg, err, sizeof err) < 0) {
		cli_check_line(0, "admin_listen", "%s: %s", path, err);
		failed = 1;
	} else if (cfg.admin_listen) {
		cli_check_line(1, "admin_listen", "%s (plain HTTP)", cfg.admin_listen);
	}
	failed |= cli_check_listen(cfg.listen, &tls_ports) < 0;
	failed |= cli_check_certificate(&cfg, tls_ports) < 0;
	failed |= cli_check_client_ca(&cfg) < 0;
	if (cli_check_user(&cfg, &u) < 0) {
		failed = 1;
	} else {
		dirs = cli_check_dirs(&cfg, &u);
		if (dirs == -2) {
			rc = EXIT_RUNTIME;
			goto out;
		}
		failed |= dirs < 0;
		/* an unreachable data_dir has been named: opening it would only repeat that */
		if (dirs == 0 || (cfg.outbox && strcmp(cfg.outbox, "sqlite") != 0)) {
			int ob = cli_check_outbox(&cfg);

			failed |= ob == -1;
			unreachable = ob == -2;
		}
	}
	failed |= cli_check_rules(&cfg) < 0;
	rc = failed ? EXIT_INVALID : unreachable ? EXIT_RUNTIME : EXIT_OK;
	fprintf(rc != EXIT_OK ? stderr : stdout, "%s: %s\n", path, rc != EXIT_OK ? "check failed" : "ok");
out:
	fflush(stdout);
	config_free(&cfg);
	return rc;
}
