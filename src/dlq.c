/*
 * dlq.c — `egoi-router dlq list|replay|purge` (see dlq.h).
 *
 * Design: the same router.conf as the daemon (config_load), so data_dir,
 * rules, output_dir and the limits are the daemon's. Database work goes
 * through outbox.h (outbox_dlq.c); nothing here writes SQL. Output is one
 * JSON object per line, built with yajl_gen (UTF-8 checked, so every line is
 * valid JSON whatever bytes a dead letter holds). replay is dlq_replay.c.
 *
 * Threads: the main thread only.
 */
#include "dlq.h"
#include "clock.h"
#include "dlq_internal.h"
#include "json_out.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#include "config.h"
#include "log.h"
#include "outbox.h"
#include "outbox_dlq.h"
#include "util.h"

static const char dlq_usage_text[] =
	"usage: egoi-router dlq list   [-c FILE] [--kind K] [--limit N] [--payload]\n"
	"       egoi-router dlq replay [-c FILE] (--id N ... | --kind K | --all)\n"
	"       egoi-router dlq purge  [-c FILE] (--id N ... | --kind K | --replayed | --all)"
	" [--older-than DURATION]\n";

/* The usage, then what K may be: the kinds of outbox_dead_kind_names. */
static void dlq_print_usage(FILE *out)
{
	fputs(dlq_usage_text, out);
	fputs("K is ", out);
	for (int k = 0; k < OUTBOX_DEAD_KINDS; k++)
		fprintf(out, "%s%s", k == 0 ? "" : k == OUTBOX_DEAD_KINDS - 1 ? " or " : ", ",
			outbox_dead_kind_names[k]);
	fputs("; DURATION like 30m, 24h, 168h\n", out);
}

static __attribute__((format(printf, 1, 2)))
int dlq_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "egoi-router: dlq: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	dlq_print_usage(stderr);
	return EXIT_USAGE;
}

/* A whole positive decimal number. */
static int dlq_parse_pos(const char *s, long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1)
		return -1;
	*out = v;
	return 0;
}

/*
 * Parses argv[1..] for subcommand argv[0], which accepts the options in
 * allowed, with getopt_long: "--kind forward" and "--kind=forward" alike;
 * EXIT_OK, or EXIT_USAGE after printing why.
 * Every argument must be an option ("+": stop at the first other word
 * instead of moving it to the end, so it is refused below).
 */
static int dlq_parse(int argc, char **argv, unsigned allowed, struct dlq_opts *o)
{
	static const struct option longopts[] = {
		{ "kind", required_argument, NULL, OPT_KIND },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "payload", no_argument, NULL, OPT_PAYLOAD },
		{ "id", required_argument, NULL, OPT_ID },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "replayed", no_argument, NULL, OPT_REPLAYED },
		{ "older-than", required_argument, NULL, OPT_OLDER },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof *o);
	o->conf = "router.conf";
	optind = 0;   /* glibc: start afresh (dlq_run may be called more than once) */
	opterr = 0;   /* our own messages, with the usage text */
	while ((c = getopt_long(argc, argv, "+:c:", longopts, NULL)) != -1) {
		const char *a = argv[optind - 1], *v = optarg;
		unsigned bit = c == 'c' ? OPT_CONF : c == '?' || c == ':' ? 0 : (unsigned)c;
		long long n;

		if (c == ':')
			return dlq_usage("%s needs a value", a);
		if (!(bit & allowed))
			return dlq_usage("unexpected argument '%s'", a);
		if ((o->seen & bit) && bit != OPT_ID)
			return dlq_usage("%s given twice", a);
		o->seen |= bit;
		if (bit == OPT_CONF) {
			o->conf = v;
		} else if (bit == OPT_KIND) {
			if (outbox_dead_kind_parse(v) < 0)
				return dlq_usage("unknown kind '%s'", v);
			o->kind = v;
		} else if (bit == OPT_LIMIT) {
			if (dlq_parse_pos(v, &n) != 0 || n > 1000000000LL)
				return dlq_usage("--limit wants a positive number, not '%s'", v);
			o->limit = (long)n;
		} else if (bit == OPT_ID) {
			if (dlq_parse_pos(v, &n) != 0)
				return dlq_usage("--id wants a dead letter id, not '%s'", v);
			if (o->nids == DLQ_MAX_IDS)
				return dlq_usage("more than %d --id options (use --kind or --all)",
						 DLQ_MAX_IDS);
			o->ids[o->nids++] = n;
		} else if (bit == OPT_OLDER) {
			if (config_parse_duration_ms(v, &o->older_ms) != 0)
				return dlq_usage("--older-than wants a duration (30m, 24h), not '%s'", v);
		}
	}
	if (optind < argc)
		return dlq_usage("unexpected argument '%s'", argv[optind]);
	return EXIT_OK;
}

/* Loads the config and opens the outbox; returns an exit code. */
static int dlq_open(const struct dlq_opts *o, struct config *cfg, struct outbox **ob)
{
	char err[1024];

	if (config_load(cfg, o->conf, err, sizeof err) < 0) {
		fprintf(stderr, "egoi-router: %s\n", err);
		return EXIT_INVALID;
	}
	log_setup((enum log_level)cfg->log_level, cfg->log_json);
	if (outbox_use(cfg->outbox, 0, err, sizeof err) == 0)   /* dlq claims nothing */
		*ob = outbox_open(cfg->data_dir, err, sizeof err);
	if (!*ob) {
		fprintf(stderr, "egoi-router: outbox: %s\n", err);
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

/* --- output --- */

static void dlq_gen_key(yajl_gen g, const char *k)
{
	yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

/* A string value, or null; never invalid JSON (json_out.h). */
static void dlq_gen_text(yajl_gen g, const char *s)
{
	json_out_string(g, s, s ? strlen(s) : 0);
}

static void dlq_gen_kv(yajl_gen g, const char *k, const char *v)
{
	dlq_gen_key(g, k);
	dlq_gen_text(g, v);
}

/* A unix time in seconds with millisecond precision. */
static void dlq_gen_time(yajl_gen g, const char *k, double t)
{
	char buf[32];
	int n = snprintf(buf, sizeof buf, "%.3f", t);

	dlq_gen_key(g, k);
	yajl_gen_number(g, buf, (size_t)n);
}

/* An integer, or null when absent. */
static void dlq_gen_int(yajl_gen g, const char *k, long long v, int present)
{
	dlq_gen_key(g, k);
	if (present)
		yajl_gen_integer(g, v);
	else
		yajl_gen_null(g);
}

/* "payload" as a JSON string, or "payload_base64" when it is not UTF-8. */
static int dlq_gen_payload(yajl_gen g, const struct outbox_dlq_entry *e)
{
	char *b64;
	long n;

	dlq_gen_key(g, "payload");
	if (!e->payload) {
		yajl_gen_null(g);
		return 0;
	}
	if (yajl_gen_string(g, (const unsigned char *)e->payload, e->payload_len) !=
	    yajl_gen_invalid_string)
		return 0;
	/* Not UTF-8 (a forward body may be any bytes): yajl emitted nothing
	 * for it, so say null and give the bytes in base64 beside it. */
	yajl_gen_null(g);
	if (e->payload_len > (size_t)INT32_MAX / 2)
		return -1;
	b64 = malloc(UTIL_BASE64_SIZE(e->payload_len));
	if (!b64)
		return -1;
	n = util_base64_encode(b64, e->payload, e->payload_len);
	dlq_gen_key(g, "payload_base64");
	yajl_gen_string(g, (const unsigned char *)b64, (size_t)n);
	free(b64);
	return 0;
}

/* --- list --- */

struct dlq_list_state {
	int with_payload;
	long malformed;        /* rows skipped (reported on stderr) */
};

static int dlq_list_one(const struct outbox_dlq_entry *e, void *arg)
{
	struct dlq_list_state *ls = arg;
	int rc = 1;
	yajl_gen g = NULL;

	if (e->malformed) {
		fprintf(stderr, "egoi-router: dlq list: dead letter %lld skipped: %s\n",
			(long long)e->id, e->malformed);
		ls->malformed++;
		return 0;
	}
	g = yajl_gen_alloc(NULL);
	if (!g)
		return 1;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	yajl_gen_map_open(g);
	dlq_gen_int(g, "id", e->id, 1);
	dlq_gen_kv(g, "kind", e->kind);
	dlq_gen_kv(g, "reason", e->reason);
	dlq_gen_kv(g, "request_id", e->request_id);
	dlq_gen_int(g, "event_index", e->event_index, e->event_index > 0);
	dlq_gen_time(g, "created_at", e->created_at);
	dlq_gen_time(g, "died_at", e->died_at);
	dlq_gen_kv(g, "target", e->target);
	dlq_gen_kv(g, "url", e->url);
	dlq_gen_kv(g, "name", e->name);
	dlq_gen_kv(g, "delivery_id", e->delivery_id);
	dlq_gen_int(g, "attempts", e->attempts, e->attempts >= 0);
	dlq_gen_int(g, "last_status", e->last_status, e->last_status > 0);
	dlq_gen_int(g, "payload_bytes", (long long)e->payload_len, 1);
	if (ls->with_payload && dlq_gen_payload(g, e) != 0)
		goto out;
	yajl_gen_map_close(g);
	if (json_out_line(g, stdout) == 0)
		rc = 0;
out:
	yajl_gen_free(g);
	return rc;
}

/* Lists the open dead letters; a malformed row is reported, skipped, and
 * makes the exit code 1 once the others are listed. */
static int dlq_list(const struct dlq_opts *o, struct outbox *ob)
{
	struct outbox_dlq_filter f = {
		.kind = o->kind,
		.state = OUTBOX_DLQ_OPEN,
		.limit = o->limit,
		.with_payload = (o->seen & OPT_PAYLOAD) != 0,
	};
	struct dlq_list_state ls = { .with_payload = f.with_payload };
	int rc = outbox_dlq_list(ob, &f, dlq_list_one, &ls);

	if (rc < 0) {
		fprintf(stderr, "egoi-router: dlq list: %s\n", outbox_error(ob));
		return EXIT_RUNTIME;
	}
	if (rc > 0 || fflush(stdout) != 0) {
		fprintf(stderr, "egoi-router: dlq list: cannot write the output\n");
		return EXIT_RUNTIME;
	}
	if (ls.malformed > 0) {
		fprintf(stderr, "egoi-router: dlq list: %ld malformed row%s skipped\n", ls.malformed,
			ls.malformed == 1 ? "" : "s");
		return EXIT_INVALID;
	}
	return EXIT_OK;
}

/* --- purge --- */

long dlq_purge_selection(struct outbox *ob, const struct dlq_selection *s, int replayed_only,
			 double died_before)
{
	struct outbox_dlq_filter f = {
		.kind = s->kind,
		.ids = s->nids ? s->ids : NULL,
		.nids = s->nids,
		.state = replayed_only ? OUTBOX_DLQ_REPLAYED : OUTBOX_DLQ_ANY,
		.died_before = died_before,
	};

	if (s->dest)   /* not a purge selector: refuse rather than purge more */
		return -1;
	return outbox_dlq_purge(ob, &f);
}

static int dlq_purge(const struct dlq_opts *o, struct outbox *ob)
{
	struct dlq_selection sel = { .ids = o->ids, .nids = o->nids, .kind = o->kind };
	static const char *const keys[] = { "purged" };
	long n;

	n = dlq_purge_selection(ob, &sel, (o->seen & OPT_REPLAYED) != 0,
				(o->seen & OPT_OLDER) ? clock_wall() - (double)o->older_ms / 1000.0
						      : 0);
	if (n < 0) {
		fprintf(stderr, "egoi-router: dlq purge: %s\n", outbox_error(ob));
		return EXIT_RUNTIME;
	}
	if (json_out_counts(keys, &n, 1) != 0) {
		fprintf(stderr, "egoi-router: dlq purge: cannot write the output\n");
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

int dlq_run(int argc, char **argv)
{
	struct dlq_opts *o = NULL;
	struct config cfg;
	struct outbox *ob = NULL;
	const char *sub = argc > 0 ? argv[0] : "";
	unsigned allowed;
	int rc;

	memset(&cfg, 0, sizeof cfg);
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		dlq_print_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(sub, "list") == 0)
		allowed = OPT_CONF | OPT_KIND | OPT_LIMIT | OPT_PAYLOAD;
	else if (strcmp(sub, "replay") == 0)
		allowed = OPT_CONF | OPT_ID | OPT_KIND | OPT_ALL;
	else if (strcmp(sub, "purge") == 0)
		allowed = OPT_CONF | OPT_ID | OPT_KIND | OPT_REPLAYED | OPT_ALL | OPT_OLDER;
	else
		return dlq_usage("unknown subcommand '%s'", sub);
	o = malloc(sizeof *o);
	if (!o) {
		fprintf(stderr, "egoi-router: out of memory\n");
		return EXIT_RUNTIME;
	}
	rc = dlq_parse(argc, argv, allowed, o);
	if (rc != EXIT_OK)
		goto out;
	/* Replay and purge act on nothing by accident: a selector is required. */
	if (strcmp(sub, "list") != 0 && !(o->seen & (OPT_ID | OPT_KIND | OPT_ALL | OPT_REPLAYED))) {
		rc = dlq_usage("%s needs --id, --kind%s or --all", sub,
			       strcmp(sub, "purge") == 0 ? ", --replayed" : "");
		goto out;
	}
	if (strcmp(sub, "replay") == 0 && outbox_dead_kind_parse(o->kind) == OUTBOX_DEAD_REJECTED) {
		fprintf(stderr, "egoi-router: dlq replay: rejected dead letters cannot be replayed: "
				"they hold malformed input (see dlq list --kind rejected --payload, "
				"then dlq purge --kind rejected)\n");
		rc = EXIT_INVALID;
		goto out;
	}
	rc = dlq_open(o, &cfg, &ob);
	if (rc != EXIT_OK)
		goto out;
	if (strcmp(sub, "list") == 0)
		rc = dlq_list(o, ob);
	else if (strcmp(sub, "replay") == 0)
		rc = dlq_replay(o, &cfg, ob);
	else
		rc = dlq_purge(o, ob);
out:
	outbox_close(ob);
	config_free(&cfg);
	free(o);
	return rc;
}
