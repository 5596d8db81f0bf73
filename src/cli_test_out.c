/*
 * cli_test_out.c — one event of `egoi-router test` as output
 * (cli_test_internal.h). The JSON line:
 *   {"index":1,"action":"email_open","decisions":[...]}
 * where a decision is {"kind":"forward","url":..,"method":..,"body":..},
 * {"kind":"write","path":..,"line":..}, {"kind":"drop","reason":..} or
 * {"kind":"error","message":..}, each with its keys in this fixed order. A
 * default forward's body is the event's own JSON (the real request merges
 * the batch's events per destination). An event no rule decided shows
 * {"kind":"drop","reason":"no_rule"}, as the daemon counts it.
 *
 * The text row: index, action, then the decisions in short form
 * ("forward URL (name)", "write PATH", "drop: REASON", "ERROR: MESSAGE"),
 * joined by "; ". Bodies and lines are left out: the JSON form has them.
 *
 * Threads: main thread only.
 */
#include "cli_test_internal.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "batch.h"
#include "json_out.h"

/* Rule-made text may not be UTF-8: json_out keeps the line valid JSON. */
static void cli_test_gen_str(yajl_gen g, const char *s)
{
	json_out_string(g, s, strlen(s));
}

static void cli_test_gen_kv(yajl_gen g, const char *k, const char *v)
{
	cli_test_gen_str(g, k);
	if (v)
		cli_test_gen_str(g, v);
	else
		yajl_gen_null(g);
}

/*
 * Inserts an already valid JSON text as a value. yajl_gen_number emits its
 * argument verbatim (with the right separators), which is exactly that.
 */
static void cli_test_gen_raw(yajl_gen g, const char *json, size_t len)
{
	yajl_gen_number(g, json, len);
}

/* Headers are stored sorted by name (rules_api.c): the object is too. */
static void cli_test_gen_headers(yajl_gen g, const char *headers)
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

static void cli_test_gen_decision(yajl_gen g, const struct decision *it, const char *event_json,
				  size_t event_len)
{
	yajl_gen_map_open(g);
	switch (it->kind) {
	case DECISION_FORWARD:
		cli_test_gen_kv(g, "kind", "forward");
		cli_test_gen_kv(g, "url", it->target);
		cli_test_gen_kv(g, "method", it->method ? it->method : "POST");
		if (it->name)
			cli_test_gen_kv(g, "name", it->name);
		if (it->content_type)
			cli_test_gen_kv(g, "content_type", it->content_type);
		if (it->headers) {
			cli_test_gen_str(g, "headers");
			cli_test_gen_headers(g, it->headers);
		}
		cli_test_gen_str(g, "body");
		if (!it->body)
			cli_test_gen_raw(g, event_json, event_len);
		else if (it->is_json)
			cli_test_gen_raw(g, it->body, it->len);
		else
			json_out_string(g, it->body, it->len);
		break;
	case DECISION_WRITE:
		cli_test_gen_kv(g, "kind", "write");
		cli_test_gen_kv(g, "path", it->target);
		cli_test_gen_str(g, "line");
		if (it->line)
			json_out_string(g, it->line, it->len);
		else
			json_out_string(g, event_json, event_len);
		break;
	case DECISION_DROP:
		cli_test_gen_kv(g, "kind", "drop");
		cli_test_gen_kv(g, "reason", it->reason ? it->reason : "dropped");
		break;
	case DECISION_ERROR:
	case DECISION_REJECT:
		cli_test_gen_kv(g, "kind", "error");
		cli_test_gen_kv(g, "message", it->error);
		break;
	}
	yajl_gen_map_close(g);
}

char *cli_test_event_json(const struct pipeline *p, const char *body, size_t i, char *scratch,
			  size_t *len_out)
{
	const struct batch_event *ev = pipeline_event(p, i);
	size_t n;
	const struct decision *d = pipeline_decisions_of(p, i, &n);
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	size_t len, event_len;
	char *line = NULL;

	if (!g)
		return NULL;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	event_len = batch_compact(body + ev->start, ev->end - ev->start, scratch);
	yajl_gen_map_open(g);
	cli_test_gen_str(g, "index");
	yajl_gen_integer(g, (long long)i + 1);
	cli_test_gen_kv(g, "action", pipeline_event_action(p, i));
	cli_test_gen_str(g, "decisions");
	yajl_gen_array_open(g);
	for (size_t k = 0; k < n; k++)
		cli_test_gen_decision(g, &d[k], scratch, event_len);
	if (n == 0) {
		yajl_gen_map_open(g);
		cli_test_gen_kv(g, "kind", "drop");
		cli_test_gen_kv(g, "reason", "no_rule");
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &out, &len) == yajl_gen_status_ok && (line = malloc(len + 1))) {
		memcpy(line, out, len);
		line[len] = '\0';
		*len_out = len;
	}
	yajl_gen_free(g);
	return line;
}

int cli_test_text_header(FILE *out)
{
	return fprintf(out, "%-6s %-24s %s\n", "EVENT", "ACTION", "DECISIONS") < 0 ? -1 : 0;
}

/* Rule-made text on a terminal: control characters become '?'. */
static void cli_test_text_put(FILE *out, const char *s, size_t len)
{
	for (size_t k = 0; k < len; k++)
		fputc((unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k], out);
}

int cli_test_event_text(FILE *out, const struct pipeline *p, size_t i)
{
	size_t nd;
	const struct decision *d = pipeline_decisions_of(p, i, &nd);
	const char *action = pipeline_event_action(p, i);

	fprintf(out, "%-6zu ", i + 1);
	if (action) {
		cli_test_text_put(out, action, strlen(action));
		for (size_t n = strlen(action); n < 24; n++)
			fputc(' ', out);
	} else {
		fprintf(out, "%-24s", "-");
	}
	fputc(' ', out);
	if (nd == 0)
		fputs("drop: no_rule", out);
	for (size_t k = 0; k < nd; k++) {
		const struct decision *it = &d[k];

		if (k > 0)
			fputs("; ", out);
		switch (it->kind) {
		case DECISION_FORWARD:
			fputs(it->method && strcmp(it->method, "PUT") == 0 ? "forward PUT " : "forward ",
			      out);
			cli_test_text_put(out, it->target, strlen(it->target));
			if (it->name) {
				fputs(" (", out);
				cli_test_text_put(out, it->name, strlen(it->name));
				fputc(')', out);
			}
			break;
		case DECISION_WRITE:
			fputs("write ", out);
			cli_test_text_put(out, it->target, strlen(it->target));
			break;
		case DECISION_DROP:
			fputs("drop: ", out);
			if (it->reason)
				cli_test_text_put(out, it->reason, strlen(it->reason));
			break;
		case DECISION_ERROR:
		case DECISION_REJECT:
			fputs("ERROR: ", out);
			if (it->error)
				cli_test_text_put(out, it->error, strlen(it->error));
			break;
		}
	}
	return fputc('\n', out) == EOF || ferror(out) ? -1 : 0;
}
