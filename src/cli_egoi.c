/*
 * cli_egoi.c — `egoi-router egoi list|register|unregister` (see
 * cli_egoi.h). The API calls are egoi_api.c, the webhook objects and the
 * token in their URLs egoi_webhook.c; this file is the command line, the
 * decisions (identical, differing, ours) and what is printed.
 *
 * Nothing printed holds a secret: URLs go through egoi_url_redact
 * (?token=REDACTED) and the API key is only in egoi_api's header list.
 *
 * Threads: the main thread only.
 */
#include "cli_egoi.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <yajl/yajl_gen.h>

#include "config.h"
#include "egoi_actions.h"
#include "egoi_api.h"
#include "egoi_webhook.h"
#include "exit_codes.h"
#include "json_out.h"

static const char cli_egoi_usage_text[] =
	"usage: egoi-router egoi list       [-c FILE] [--json]\n"
	"       egoi-router egoi register   [-c FILE] --list ID [--actions A,B,...] [--fields F,...]\n"
	"                                   [--url URL] [--allow-http] [--replace]\n"
	"       egoi-router egoi unregister [-c FILE] (--id N | --list ID)\n";

/* What the options of every subcommand fill. */
struct cli_egoi_opts {
	const char *conf;
	long long list_id, id;
	char **actions, **fields;
	size_t nactions, nfields;
	const char *url;
	int json, allow_http, replace;
};

/* The loaded config and the API client every subcommand works with. */
struct cli_egoi {
	struct config cfg;
	struct egoi_api *api;
	struct egoi_webhook_set set;
	const char *cmd;
};

static __attribute__((format(printf, 2, 3)))
void cli_egoi_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "egoi-router: egoi %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Prints msg with every token in it redacted (an API error may echo a URL). */
static void cli_egoi_err_redacted(const char *cmd, const char *msg)
{
	char *r = egoi_text_redact(msg);

	cli_egoi_err(cmd, "E-goi: %s", r ? r : "(out of memory)");
	free(r);
}

static __attribute__((format(printf, 1, 2)))
int cli_egoi_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("egoi-router: egoi: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(cli_egoi_usage_text, stderr);
	return EXIT_USAGE;
}

static int cli_egoi_exit(int api_rc)
{
	return api_rc == EGOI_API_OK ? EXIT_OK : api_rc == EGOI_API_REFUSED ? EXIT_INVALID
									     : EXIT_RUNTIME;
}

/* A whole decimal number >= 1. */
static int cli_egoi_pos(const char *s, long long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' && *out >= 1 ? 0 : -1;
}

/* Refuses an option the subcommand does not take (it would be ignored). */
static int cli_egoi_fits(const char *cmd, const struct cli_egoi_opts *o)
{
	int reg = strcmp(cmd, "register") == 0, unreg = strcmp(cmd, "unregister") == 0;
	const char *bad = NULL;

	if (o->json && strcmp(cmd, "list") != 0)
		bad = "--json";
	else if (o->id && !unreg)
		bad = "--id";
	else if (o->list_id && !reg && !unreg)
		bad = "--list";
	else if (!reg && (o->actions || o->fields || o->url || o->allow_http || o->replace))
		bad = o->actions ? "--actions" : o->fields ? "--fields" : o->url ? "--url"
		    : o->allow_http ? "--allow-http" : "--replace";
	if (bad)
		return cli_egoi_usage("%s does not take %s", cmd, bad);
	return EXIT_OK;
}

static int cli_egoi_parse(int argc, char **argv, struct cli_egoi_opts *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "list", required_argument, NULL, 'l' },
		{ "id", required_argument, NULL, 'i' },
		{ "actions", required_argument, NULL, 'a' },
		{ "fields", required_argument, NULL, 'f' },
		{ "url", required_argument, NULL, 'u' },
		{ "allow-http", no_argument, NULL, 'H' },
		{ "replace", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->conf = "router.conf";
	optind = 0;
	opterr = 0;
	/* argv[0] is the subcommand: it stands for the program name */
	while ((c = getopt_long(argc, argv, "+:c:", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->conf = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'l':
			if (cli_egoi_pos(optarg, &o->list_id) < 0)
				return cli_egoi_usage("--list wants a list id (a number >= 1), not '%s'",
						      optarg);
			break;
		case 'i':
			if (cli_egoi_pos(optarg, &o->id) < 0)
				return cli_egoi_usage("--id wants a webhook id (a number >= 1), not '%s'",
						      optarg);
			break;
		case 'a':
			egoi_free_list(o->actions, o->nactions);
			if (egoi_split_list(optarg, &o->actions, &o->nactions) < 0)
				return cli_egoi_usage("--actions wants names separated by commas, not "
						      "'%s'", optarg);
			for (size_t i = 0; i < o->nactions; i++)
				if (egoi_action_index(o->actions[i]) < 0)
					return cli_egoi_usage("--actions: '%s' is not an E-goi webhook "
							      "action", o->actions[i]);
			break;
		case 'f':
			egoi_free_list(o->fields, o->nfields);
			if (egoi_split_list(optarg, &o->fields, &o->nfields) < 0)
				return cli_egoi_usage("--fields wants field ids separated by commas, "
						      "not '%s'", optarg);
			break;
		case 'u':
			o->url = optarg;
			break;
		case 'H':
			o->allow_http = 1;
			break;
		case 'r':
			o->replace = 1;
			break;
		default:
			return cli_egoi_usage("unknown or incomplete option '%s'",
					      argv[optind - 1 > 0 ? optind - 1 : 0]);
		}
	}
	if (optind != argc)
		return cli_egoi_usage("unexpected argument '%s'", argv[optind]);
	return cli_egoi_fits(argv[0], o);
}

/* Config, API key, client. */
static int cli_egoi_open(struct cli_egoi *e, const struct cli_egoi_opts *o)
{
	struct egoi_api_options ao;
	char err[1024];
	const char *key;

	if (config_load(&e->cfg, o->conf, err, sizeof err) < 0) {
		cli_egoi_err(e->cmd, "%s", err);
		return EXIT_INVALID;
	}
	key = e->cfg.egoi_api_key ? e->cfg.egoi_api_key : getenv("EGOI_API_KEY");
	if (!key || !*key) {
		cli_egoi_err(e->cmd, "no E-goi API key: set egoi_api_key in %s or the environment "
			     "variable EGOI_API_KEY", o->conf);
		return EXIT_INVALID;
	}
	memset(&ao, 0, sizeof ao);
	ao.base = e->cfg.egoi_api_base;
	ao.key = key;
	ao.timeout_ms = e->cfg.egoi_api_timeout_ms;
	e->api = egoi_api_new(&ao, err, sizeof err);
	if (!e->api) {
		cli_egoi_err(e->cmd, "%s: %s", o->conf, err);
		return EXIT_INVALID;
	}
	return EXIT_OK;
}

/* Every webhook of the account into e->set. */
static int cli_egoi_fetch(struct cli_egoi *e)
{
	char err[2048];
	int rc = egoi_api_list(e->api, &e->set, err, sizeof err);

	if (rc != EGOI_API_OK)
		cli_egoi_err_redacted(e->cmd, err);
	return cli_egoi_exit(rc);
}

/* 1 when w points at this router: public_url, whatever its token. */
static int cli_egoi_ours(const struct cli_egoi *e, const struct egoi_webhook *w)
{
	return e->cfg.public_url && egoi_url_is(w->url, e->cfg.public_url);
}

static int cli_egoi_list(struct cli_egoi *e, const struct cli_egoi_opts *o)
{
	size_t ours = 0;
	yajl_gen g = NULL;
	yajl_gen_status st = yajl_gen_status_ok;
	int rc = cli_egoi_fetch(e);

	if (rc != EXIT_OK)
		goto out;
	for (size_t i = 0; i < e->set.n; i++)
		ours += (size_t)cli_egoi_ours(e, &e->set.v[i]);
	if (o->json) {
		g = yajl_gen_alloc(NULL);
		if (!g) {
			rc = EXIT_RUNTIME;
			goto out;
		}
		yajl_gen_config(g, yajl_gen_validate_utf8, 1);
		st = yajl_gen_map_open(g);
		if (st == yajl_gen_status_ok)
			st = yajl_gen_string(g, (const unsigned char *)"total", 5);
		if (st == yajl_gen_status_ok)
			st = yajl_gen_integer(g, (long long)e->set.n);
		if (st == yajl_gen_status_ok)
			st = yajl_gen_string(g, (const unsigned char *)"ours", 4);
		if (st == yajl_gen_status_ok)
			st = yajl_gen_integer(g, (long long)ours);
		if (st == yajl_gen_status_ok)
			st = yajl_gen_string(g, (const unsigned char *)"webhooks", 8);
		if (st == yajl_gen_status_ok)
			st = yajl_gen_array_open(g);
		for (size_t i = 0; i < e->set.n && st == yajl_gen_status_ok; i++)
			st = egoi_webhook_gen(g, &e->set.v[i], cli_egoi_ours(e, &e->set.v[i]));
		if (st == yajl_gen_status_ok)
			st = yajl_gen_array_close(g);
		if (st == yajl_gen_status_ok)
			st = yajl_gen_map_close(g);
		rc = st == yajl_gen_status_ok && json_out_line(g, stdout) == 0 ? EXIT_OK
									       : EXIT_RUNTIME;
		goto out;
	}
	for (size_t i = 0; i < e->set.n; i++) {
		const struct egoi_webhook *w = &e->set.v[i];
		char *url = egoi_url_redact(w->url);

		printf("%s %lld list=%lld actions=%zu fields=%zu %s\n",
		       cli_egoi_ours(e, w) ? "*" : "-", w->id, w->list_id, w->nactions, w->nfields,
		       url ? url : "?");
		free(url);
	}
	printf("%zu webhooks, %zu pointing at this router%s\n", e->set.n, ours,
	       e->cfg.public_url ? " (marked *)" : " (public_url is not set)");
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
out:
	if (g)
		yajl_gen_free(g);
	return rc;
}

/* The URL to register: --url or public_url, https unless --allow-http,
 * with ?token= from auth_token. NULL (message printed) on refusal. */
static char *cli_egoi_target(struct cli_egoi *e, const struct cli_egoi_opts *o)
{
	const char *base = o->url ? o->url : e->cfg.public_url;
	CURLU *u = NULL;
	char *scheme = NULL, *out = NULL, *shown = NULL;

	if (!base) {
		cli_egoi_err(e->cmd, "%s: public_url is not set (or give --url URL)", o->conf);
		goto out;
	}
	shown = egoi_url_redact(base);
	u = curl_url();
	if (!u || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		cli_egoi_err(e->cmd, "'%s' is not a URL", shown ? shown : "?");
		goto out;
	}
	if (strcasecmp(scheme, "https") != 0 &&
	    !(o->allow_http && strcasecmp(scheme, "http") == 0)) {
		cli_egoi_err(e->cmd, "'%s' is not https: E-goi would send the token and every "
			     "contact in clear text (--allow-http allows http)", shown ? shown : "?");
		goto out;
	}
	out = egoi_url_with_token(base, e->cfg.auth_disabled ? NULL : e->cfg.auth_token);
	if (!out)
		cli_egoi_err(e->cmd, "out of memory");
out:
	curl_free(scheme);
	curl_url_cleanup(u);
	free(shown);
	return out;
}

/* Deletes webhook w, printing what happened. An exit code. */
static int cli_egoi_delete(struct cli_egoi *e, const struct egoi_webhook *w)
{
	char err[2048];
	int rc = egoi_api_delete(e->api, w->id, err, sizeof err);

	if (rc != EGOI_API_OK) {
		cli_egoi_err_redacted(e->cmd, err);
	} else {
		char *url = egoi_url_redact(w->url);

		printf("deleted webhook %lld (list %lld, %s)\n", w->id, w->list_id, url ? url : "?");
		free(url);
	}
	return cli_egoi_exit(rc);
}

/* The webhook register asks for, into *want (want->url is the caller's to
 * free; actions and fields are borrowed). An exit code. */
static int cli_egoi_want(struct cli_egoi *e, const struct cli_egoi_opts *o, struct egoi_webhook *want)
{
	if (!o->list_id)
		return cli_egoi_usage("register needs --list ID");
	want->list_id = o->list_id;
	want->url = cli_egoi_target(e, o);
	if (!want->url)
		return EXIT_INVALID;
	/* Borrowed: the catalogue's names, or the parsed --actions. */
	want->actions = o->nactions ? o->actions : (char **)egoi_actions;
	want->nactions = o->nactions ? o->nactions : EGOI_ACTIONS;
	want->fields = o->fields;
	want->nfields = o->nfields;
	return EXIT_OK;
}

/* The fetched webhooks of want's list and URL: *same is the first identical
 * one (or NULL); returns how many others there are. */
static size_t cli_egoi_matching(const struct cli_egoi *e, const struct egoi_webhook *want,
				const struct egoi_webhook **same)
{
	size_t differ = 0;

	*same = NULL;
	for (size_t i = 0; i < e->set.n; i++) {
		const struct egoi_webhook *w = &e->set.v[i];

		if (w->list_id != want->list_id || !egoi_url_is(w->url, want->url))
			continue;
		if (!*same && egoi_webhook_same(w, want))
			*same = w;
		else
			differ++;
	}
	return differ;
}

/*
 * Deletes the differing webhooks of want's list and URL (differ of them),
 * then creates want. No update call exists, so between the two E-goi sends
 * this list's events nowhere. An exit code.
 */
static int cli_egoi_replace(struct cli_egoi *e, const struct egoi_webhook *want, size_t differ,
			    const char *shown)
{
	char err[2048];
	long long id = 0;
	int rc;

	for (size_t i = 0; i < e->set.n && differ; i++) {
		const struct egoi_webhook *w = &e->set.v[i];

		if (w->list_id == want->list_id && egoi_url_is(w->url, want->url)) {
			rc = cli_egoi_delete(e, w);
			if (rc != EXIT_OK)
				return rc;
		}
	}
	rc = cli_egoi_exit(egoi_api_create(e->api, want, &id, err, sizeof err));
	if (rc != EXIT_OK) {
		cli_egoi_err_redacted(e->cmd, err);
		if (differ)
			cli_egoi_err(e->cmd, "the replaced webhook(s) are deleted already: run register "
				     "again once E-goi accepts it");
		return rc;
	}
	printf("registered webhook %lld for list %lld: %s, %zu actions, %zu fields\n", id,
	       want->list_id, shown, want->nactions, want->nfields);
	return EXIT_OK;
}

static int cli_egoi_register(struct cli_egoi *e, struct cli_egoi_opts *o)
{
	struct egoi_webhook want;
	char *shown = NULL;
	const struct egoi_webhook *same;
	size_t differ;
	int rc;

	memset(&want, 0, sizeof want);
	rc = cli_egoi_want(e, o, &want);
	if (rc != EXIT_OK)
		goto out;
	shown = egoi_url_redact(want.url);
	if (!shown) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	rc = cli_egoi_fetch(e);
	if (rc != EXIT_OK)
		goto out;
	differ = cli_egoi_matching(e, &want, &same);
	if (same) {
		printf("webhook %lld for list %lld and %s is already registered with these "
		       "actions and fields: nothing to do\n", same->id, want.list_id, shown);
		rc = EXIT_OK;
		goto out;
	}
	if (differ && !o->replace) {
		cli_egoi_err(e->cmd, "list %lld already has %zu webhook(s) to %s with other actions, "
			     "fields or token: --replace swaps them", want.list_id, differ, shown);
		rc = EXIT_INVALID;
		goto out;
	}
	rc = cli_egoi_replace(e, &want, differ, shown);
out:
	free(want.url);
	free(shown);
	return rc;
}

static int cli_egoi_unregister(struct cli_egoi *e, const struct cli_egoi_opts *o)
{
	size_t done = 0;
	int rc;

	if (!o->id == !o->list_id)
		return cli_egoi_usage("unregister needs --id N or --list ID (one of them)");
	if (o->id) {
		struct egoi_webhook w;

		memset(&w, 0, sizeof w);
		w.id = o->id;
		return cli_egoi_delete(e, &w);
	}
	if (!e->cfg.public_url) {
		cli_egoi_err(e->cmd, "%s: public_url is not set, so no webhook is known to point "
			     "at this router (use --id N)", o->conf);
		return EXIT_INVALID;
	}
	rc = cli_egoi_fetch(e);
	for (size_t i = 0; rc == EXIT_OK && i < e->set.n; i++) {
		const struct egoi_webhook *w = &e->set.v[i];

		if (w->list_id == o->list_id && cli_egoi_ours(e, w)) {
			rc = cli_egoi_delete(e, w);
			done += rc == EXIT_OK;
		}
	}
	if (rc == EXIT_OK && !done)
		printf("no webhook of list %lld points at this router: nothing to do\n", o->list_id);
	return rc;
}

int cli_egoi_run(int argc, char **argv)
{
	struct cli_egoi_opts o;
	struct cli_egoi e;
	const char *cmd = argc > 0 ? argv[0] : "";
	int rc;

	memset(&o, 0, sizeof o);
	memset(&e, 0, sizeof e);
	e.cmd = cmd;
	if (strcmp(cmd, "list") != 0 && strcmp(cmd, "register") != 0 &&
	    strcmp(cmd, "unregister") != 0) {
		rc = cli_egoi_usage("unknown subcommand '%s'", cmd);
		goto out;
	}
	rc = cli_egoi_parse(argc, argv, &o);
	if (rc != EXIT_OK)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		cli_egoi_err(cmd, "libcurl did not initialise");
		rc = EXIT_RUNTIME;
		goto out;
	}
	rc = cli_egoi_open(&e, &o);
	if (rc == EXIT_OK && strcmp(cmd, "list") == 0)
		rc = cli_egoi_list(&e, &o);
	else if (rc == EXIT_OK && strcmp(cmd, "register") == 0)
		rc = cli_egoi_register(&e, &o);
	else if (rc == EXIT_OK)
		rc = cli_egoi_unregister(&e, &o);
	egoi_api_free(e.api);
	egoi_api_set_free(&e.set);
	config_free(&e.cfg);
	curl_global_cleanup();
out:
	egoi_free_list(o.actions, o.nactions);
	egoi_free_list(o.fields, o.nfields);
	return rc;
}
