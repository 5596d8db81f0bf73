/*
 * cli_test.c — see cli_test.h. Output per event:
 *   {"index":1,"action":"email_open","decisions":[...]}
 * where a decision is {"kind":"forward","url":..,"method":..,"body":..},
 * {"kind":"write","path":..,"line":..}, {"kind":"drop","reason":..} or
 * {"kind":"error","message":..}. A default forward's body is the event's own
 * JSON (the real request merges the batch's events per destination).
 */
#include "cli_test.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#include "config.h"
#include "exit_codes.h"
#include "json_out.h"
#include "log.h"
#include "pipeline.h"
#include "rules.h"
#include "util_buf.h"

#define CLI_TEST_MAX_INPUT (256u << 20)

/* Reads a whole file ('-' = stdin) into a new buffer. */
static char *read_all(const char *path, size_t *len_out)
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

/* Rule-made text may not be UTF-8: json_out keeps the line valid JSON. */
static void gen_str(yajl_gen g, const char *s)
{
	json_out_string(g, s, strlen(s));
}

static void gen_kv(yajl_gen g, const char *k, const char *v)
{
	gen_str(g, k);
	if (v)
		gen_str(g, v);
	else
		yajl_gen_null(g);
}

/*
 * Inserts an already valid JSON text as a value. yajl_gen_number emits its
 * argument verbatim (with the right separators), which is exactly that.
 */
static void gen_raw(yajl_gen g, const char *json, size_t len)
{
	yajl_gen_number(g, json, len);
}

static void gen_headers(yajl_gen g, const char *headers)
{
	yajl_gen_map_open(g);
	for (const char *p = headers; p && *p;) {
		const char *nl = strchr(p, '\n'), *colon = strchr(p, ':');
		size_t end = nl ? (size_t)(nl - p) : strlen(p);

		if (colon && (size_t)(colon - p) < end) {
			const char *v = colon + 1;

			while (*v == ' ')
				v++;
			json_out_string(g, p, (size_t)(colon - p));
			json_out_string(g, v, (size_t)(p + end - v));
		}
		p += end + (nl ? 1 : 0);
	}
	yajl_gen_map_close(g);
}

static void gen_decision(yajl_gen g, const struct decision *it, const char *event_json,
			 size_t event_len)
{
	yajl_gen_map_open(g);
	switch (it->kind) {
	case DECISION_FORWARD:
		gen_kv(g, "kind", "forward");
		gen_kv(g, "url", it->target);
		gen_kv(g, "method", it->method ? it->method : "POST");
		if (it->name)
			gen_kv(g, "name", it->name);
		if (it->content_type)
			gen_kv(g, "content_type", it->content_type);
		if (it->headers) {
			gen_str(g, "headers");
			gen_headers(g, it->headers);
		}
		gen_str(g, "body");
		if (!it->text)
			gen_raw(g, event_json, event_len);
		else if (it->text_is_json)
			gen_raw(g, it->text, it->text_len);
		else
			json_out_string(g, it->text, it->text_len);
		break;
	case DECISION_WRITE:
		gen_kv(g, "kind", "write");
		gen_kv(g, "path", it->target);
		gen_str(g, "line");
		if (it->text)
			json_out_string(g, it->text, it->text_len);
		else
			json_out_string(g, event_json, event_len);
		break;
	case DECISION_DROP:
		gen_kv(g, "kind", "drop");
		gen_kv(g, "reason", it->text ? it->text : "dropped");
		break;
	case DECISION_ERROR:
	case DECISION_REJECT:
		gen_kv(g, "kind", "error");
		gen_kv(g, "message", it->text);
		break;
	}
	yajl_gen_map_close(g);
}

/* Prints the decisions for event i (items[*pos..] with .event == i). */
static int print_event(struct pipeline *p, const char *body, size_t i, size_t *pos,
		       char *scratch)
{
	const struct batch_event *ev = &p->batch.events[i];
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	size_t len, event_len;
	const char *action = ev->reject ? NULL : rules_event_action(p->rules, i);
	int any = 0, rc = -1;

	if (!g)
		return -1;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	event_len = batch_compact(body + ev->start, ev->end - ev->start, scratch);
	yajl_gen_map_open(g);
	gen_str(g, "index");
	yajl_gen_integer(g, (long long)i + 1);
	gen_kv(g, "action", action);
	gen_str(g, "decisions");
	yajl_gen_array_open(g);
	for (; *pos < p->decisions.count && p->decisions.items[*pos].event == i; (*pos)++, any = 1)
		gen_decision(g, &p->decisions.items[*pos], scratch, event_len);
	if (!any) {
		yajl_gen_map_open(g);
		gen_kv(g, "kind", "drop");
		gen_kv(g, "reason", "no_rule");
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &out, &len) == yajl_gen_status_ok &&
	    fwrite(out, 1, len, stdout) == len && fputc('\n', stdout) != EOF)
		rc = 0;
	yajl_gen_free(g);
	return rc;
}

int cli_test_run(const char *rules_path, const char *batch_path,
		 const char *const *env_pairs)
{
	static const char *const no_pairs[] = { NULL };
	struct config cfg;
	struct pipeline_shared sh = { .cfg = &cfg, .env_pairs = env_pairs ? env_pairs : no_pairs };
	struct pipeline p;
	struct pipeline_result res;
	char *body = NULL, *scratch = NULL;
	size_t len = 0, pos = 0;
	int rc = EXIT_INVALID;

	memset(&cfg, 0, sizeof cfg);
	rules_current_init(&sh.rules);   /* nothing published: the worker reads rules_path */
	pipeline_init(&p, &sh);
	if (config_defaults(&cfg) < 0) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	free(cfg.rules);
	cfg.rules = strdup(rules_path);
	if (!cfg.rules) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	log_setup(LOG_INFO, 0);
	body = read_all(batch_path, &len);
	if (!body)
		goto out;
	scratch = malloc(len + 1);
	if (!scratch) {
		rc = EXIT_RUNTIME;
		goto out;
	}
	if (pipeline_route(&p, body, len, clock_wall(), "-",
			   "test", &res) < 0) {
		if (!p.rules) /* the message already names the rules file and line */
			fprintf(stderr, "egoi-router: %s\n", res.error);
		else
			fprintf(stderr, "egoi-router: %s: %s\n", batch_path, res.error);
		goto out;
	}
	rc = EXIT_OK;
	for (size_t i = 0; i < p.batch.count && rc == EXIT_OK; i++)
		if (print_event(&p, body, i, &pos, scratch) < 0)
			rc = EXIT_RUNTIME;
	pipeline_end(&p);
	if (fflush(stdout) != 0)
		rc = EXIT_RUNTIME;
out:
	pipeline_free(&p);
	rules_current_free(&sh.rules);
	config_free(&cfg);
	free(body);
	free(scratch);
	return rc;
}
