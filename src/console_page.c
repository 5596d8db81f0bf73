/*
 * console_page.c — the console's HTML (see console_page.h).
 *
 * Built into a struct util_buf; a failed growth marks it failed and the
 * page is refused whole (-1) rather than served cut.
 */
#include "console_page.h"
#include "console_html.h"
#include "util_buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const char console_css[] =
	":root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--mute:#5b6470;"
	"--line:#d8dde3;--ok:#1a7f37;--bad:#c4262e;--warn:#9a6700;--acc:#0b5cad}\n"
	"@media(prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#101317;--card:#1a1e24;"
	"--mute:#9aa4b0;--line:#2e343c;--acc:#6cb6ff}}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
	"color:var(--fg);background:var(--bg)}\n"
	"header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;padding:.7rem 1rem;"
	"background:var(--card);border-bottom:1px solid var(--line)}\n"
	"header h1{font-size:1.1rem;margin:0;flex:1}\n"
	"main{max-width:72rem;margin:0 auto;padding:.8rem}\n"
	"section{background:var(--card);border:1px solid var(--line);border-radius:8px;"
	"padding:.8rem 1rem;margin:0 0 .8rem}\n"
	"h2{font-size:1rem;margin:0 0 .6rem}\n"
	".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5rem,1fr));gap:.6rem}\n"
	".stat{border:1px solid var(--line);border-radius:6px;padding:.45rem .6rem}\n"
	".stat b{display:block;font-size:1.25rem}\n"
	".stat span,.mute{color:var(--mute);font-size:.85rem}\n"
	".scroll{overflow-x:auto}\n"
	"table{border-collapse:collapse;width:100%;font-size:.9rem}\n"
	"th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);"
	"vertical-align:top}\n"
	"th{color:var(--mute);font-weight:600;white-space:nowrap}\n"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
	".ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}\n"
	"table.compact{width:auto}table.compact td,table.compact th{min-width:4rem}\n"
	"form{display:inline;margin:0}form+form{margin-left:.3rem}\n"
	"button{font:inherit;font-size:.85rem;padding:.25rem .6rem;border-radius:5px;"
	"border:1px solid var(--line);background:var(--bg);color:var(--fg);cursor:pointer}\n"
	"button.go{border-color:var(--acc);color:var(--acc)}\n"
	"button.del{border-color:var(--bad);color:var(--bad)}\n"
	".actions{display:flex;flex-wrap:wrap;gap:.4rem;margin:.5rem 0}\n"
	".flash{border-left:4px solid var(--acc);padding:.5rem .8rem;background:var(--card);"
	"margin:0 0 .8rem}\n"
	".error{border-left-color:var(--bad)}\n"
	"pre{white-space:pre-wrap;word-break:break-all;background:var(--bg);padding:.6rem;"
	"border-radius:6px;border:1px solid var(--line);max-height:60vh;overflow:auto}\n"
	"a{color:var(--acc)}\n"
	".login{max-width:24rem;margin:12vh auto}\n"
	".login input{width:100%;font:inherit;padding:.5rem;margin:.4rem 0 .8rem;"
	"border:1px solid var(--line);border-radius:5px;background:var(--bg);color:var(--fg)}\n"
	"@media(max-width:40rem){th,td{padding:.3rem}.hide-s{display:none}}\n";

static void console_page_head(struct util_buf *b, const char *title)
{
	util_buf_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			   "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
			   "<meta name=\"referrer\" content=\"no-referrer\">"
			   "<title>%s</title><link rel=\"stylesheet\" href=\"/console/style.css\">"
			   "</head><body>\n", title);
}

static int console_page_end(struct util_buf *b)
{
	util_buf_printf(b, "</body></html>\n");
	return b->failed ? -1 : 0;
}

/* A POST form of one button: op with one selector field (name=value). */
static void console_page_button(struct util_buf *b, const char *csrf, const char *op,
				const char *name, const char *value, const char *cls,
				const char *label)
{
	util_buf_printf(b, "<form method=\"post\" action=\"/console/action\">"
			   "<input type=\"hidden\" name=\"csrf\" value=\"");
	console_html_text(b, csrf);
	util_buf_printf(b, "\"><input type=\"hidden\" name=\"op\" value=\"%s\">"
			   "<input type=\"hidden\" name=\"%s\" value=\"", op, name);
	console_html_text(b, value);
	util_buf_printf(b, "\"><button type=\"submit\" class=\"%s\" name=\"do\" value=\"%s-%s\">",
			cls, op, name);
	console_html_text(b, label);
	util_buf_printf(b, "</button></form>");
}

static void console_page_stat(struct util_buf *b, const char *id, const char *value,
			      const char *label)
{
	util_buf_printf(b, "<div class=\"stat\"><b id=\"%s\">", id);
	console_html_text(b, value);
	util_buf_printf(b, "</b><span>%s</span></div>", label);
}

static void console_page_header(struct util_buf *b, const struct console_view *v)
{
	util_buf_printf(b, "<header><h1>egoi-router console</h1><span class=\"mute\">version ");
	console_html_text(b, v->version);
	util_buf_printf(b, "</span><form method=\"post\" action=\"/console/logout\">"
			   "<input type=\"hidden\" name=\"csrf\" value=\"");
	console_html_text(b, v->csrf);
	util_buf_printf(b, "\"><button type=\"submit\" id=\"logout\">Log out</button></form>"
			   "</header>\n<main>\n");
	if (v->flash) {
		util_buf_printf(b, "<p class=\"flash\" id=\"flash\">");
		console_html_text(b, v->flash);
		util_buf_printf(b, "</p>\n");
	}
}

static void console_page_router(struct util_buf *b, const struct console_view *v)
{
	char t[64], num[64];

	util_buf_printf(b, "<section><h2>Router</h2><div class=\"grid\">");
	console_page_stat(b, "uptime", console_html_duration(v->now - v->started, t, sizeof t),
			  "uptime");
	snprintf(num, sizeof num, "%lu", v->generation);
	console_page_stat(b, "generation", num, "rules generation");
	snprintf(num, sizeof num, "%lu / %lu", v->m.reloads_ok, v->m.reloads_refused);
	console_page_stat(b, "reloads", num, "reloads ok / refused");
	util_buf_printf(b, "</div><p>Rules file <code>");
	console_html_text(b, v->rules_path);
	util_buf_printf(b, "</code>. Last reload: ");
	if (v->m.reload_at <= 0) {
		util_buf_printf(b, "<span id=\"reload\">none since start</span>");
	} else {
		util_buf_printf(b, "<span id=\"reload\" class=\"%s\">%s</span> at %s",
				v->m.reload_ok ? "ok" : "bad", v->m.reload_ok ? "ok" : "refused",
				console_html_time(v->m.reload_at, t, sizeof t));
		if (!v->m.reload_ok && v->m.reload_why[0]) {
			util_buf_printf(b, ": ");
			console_html_text(b, v->m.reload_why);
		}
	}
	util_buf_printf(b, ".</p></section>\n");
}

static void console_page_intake(struct util_buf *b, const struct console_view *v)
{
	char num[64], over[64];
	unsigned long refused = 0;

	util_buf_printf(b, "<section><h2>Intake</h2><div class=\"grid\">");
	snprintf(num, sizeof num, "%.1f", v->requests_per_min);
	console_page_stat(b, "rpm", num, "requests / min");
	snprintf(num, sizeof num, "%.1f", v->events_per_min);
	console_page_stat(b, "epm", num, "events / min");
	snprintf(num, sizeof num, "%lu", v->m.requests_total);
	console_page_stat(b, "requests", num, "requests");
	snprintf(num, sizeof num, "%lu", v->m.events_total);
	console_page_stat(b, "events", num, "events");
	snprintf(num, sizeof num, "%lu", v->m.rejected);
	console_page_stat(b, "rejected", num, "rejected elements");
	snprintf(num, sizeof num, "%lu", v->m.rule_errors);
	console_page_stat(b, "rule-errors", num, "rule errors");
	for (int i = 0; i < METRICS_REFUSALS; i++)
		refused += v->m.refused[i];
	snprintf(num, sizeof num, "%lu", refused + v->m.loops_refused);
	console_page_stat(b, "refused", num, "clients refused");
	util_buf_printf(b, "</div><p class=\"mute\">Rates over the last %s.</p>",
			console_html_duration(v->rate_window_s, over, sizeof over));
	util_buf_printf(b, "<div class=\"scroll\"><table id=\"answers\" class=\"compact\"><tr><th>Answer</th>");
	for (int i = 0; i <= METRICS_VIEW_CODES; i++)
		if (v->m.requests[i] || (i < METRICS_VIEW_CODES && v->m.code[i] == 200)) {
			if (i < METRICS_VIEW_CODES)
				util_buf_printf(b, "<th>%d</th>", v->m.code[i]);
			else
				util_buf_printf(b, "<th>other</th>");
		}
	util_buf_printf(b, "</tr><tr><td>requests</td>");
	for (int i = 0; i <= METRICS_VIEW_CODES; i++)
		if (v->m.requests[i] || (i < METRICS_VIEW_CODES && v->m.code[i] == 200))
			util_buf_printf(b, "<td class=\"n\">%lu</td>", v->m.requests[i]);
	util_buf_printf(b, "</tr></table></div></section>\n");
}

static const char *const console_page_states[] = { "closed", "open", "half-open" };

static void console_page_dests(struct util_buf *b, const struct console_view *v)
{
	char t[64];

	util_buf_printf(b, "<section><h2>Destinations</h2>");
	if (v->ndests == 0) {
		util_buf_printf(b, "<p class=\"mute\">No delivery attempt yet.</p></section>\n");
		return;
	}
	util_buf_printf(b, "<div class=\"scroll\"><table id=\"dests\"><tr><th>Destination</th>"
			   "<th>Delivered</th><th>Retries</th><th>Dead</th><th>Backlog</th>"
			   "<th>Circuit</th><th>Backoff until</th><th>Last success</th>"
			   "<th>Last error</th><th></th></tr>");
	for (size_t i = 0; i < v->ndests; i++) {
		const struct console_dest *d = &v->dests[i];
		int st = d->st.state >= 0 && d->st.state <= 2 ? d->st.state : 0;
		double until = d->st.blocked_until > v->now ? d->st.blocked_until
			     : d->st.next_due > v->now ? d->st.next_due : 0;

		util_buf_printf(b, "<tr><td>");
		console_html_text(b, d->st.label[0] ? d->st.label : d->st.key);
		util_buf_printf(b, "<br><span class=\"mute\">");
		console_html_text(b, d->st.key);
		util_buf_printf(b, "</span></td><td class=\"n\">%lu</td><td class=\"n\">%lu</td>"
				   "<td class=\"n\">%lu</td><td class=\"n\">%ld</td>"
				   "<td class=\"%s\">%s</td><td>%s</td>",
				d->delivered, d->retried, d->dead, d->st.backlog,
				st == 0 ? "ok" : st == 1 ? "bad" : "warn", console_page_states[st],
				until > 0 ? console_html_time(until, t, sizeof t) : "-");
		util_buf_printf(b, "<td>%s</td><td>",
				console_html_time(d->st.last_success, t, sizeof t));
		if (d->st.last_error_at > 0) {
			/* the detail names the status already ("HTTP 503: ...") */
			util_buf_printf(b, "%s ", console_html_time(d->st.last_error_at, t, sizeof t));
			console_html_text(b, d->st.last_error);
		} else {
			util_buf_printf(b, "-");
		}
		util_buf_printf(b, "</td><td>");
		console_page_button(b, v->csrf, "replay", "dest",
				    d->st.label[0] ? d->st.label : d->st.key, "go",
				    "Replay its dead letters");
		util_buf_printf(b, "</td></tr>");
	}
	util_buf_printf(b, "</table></div></section>\n");
}

static void console_page_dlq(struct util_buf *b, const struct console_view *v)
{
	char num[64], t[64];

	util_buf_printf(b, "<section><h2>Outbox and dead letters</h2><div class=\"grid\">");
	snprintf(num, sizeof num, "%ld", v->m.pending);
	console_page_stat(b, "pending", v->m.pending < 0 ? "-" : num, "outbox pending");
	snprintf(num, sizeof num, "%ld", v->dead_open);
	console_page_stat(b, "dead-open", num, "dead letters open");
	for (int k = 0; k < OUTBOX_DEAD_KINDS; k++) {
		char id[48];

		snprintf(id, sizeof id, "dead-%s", outbox_dead_kind_names[k]);
		snprintf(num, sizeof num, "%ld", v->dead_by_kind[k]);
		console_page_stat(b, id, num, outbox_dead_kind_names[k]);
	}
	util_buf_printf(b, "</div>");
	if (v->dlq_error) {
		util_buf_printf(b, "<p class=\"flash error\">Dead letters cannot be read: ");
		console_html_text(b, v->dlq_error);
		util_buf_printf(b, "</p></section>\n");
		return;
	}
	util_buf_printf(b, "<div class=\"actions\">");
	console_page_button(b, v->csrf, "replay", "all", "1", "go", "Replay all");
	console_page_button(b, v->csrf, "purge", "all", "1", "del", "Purge all");
	for (int k = 0; k < OUTBOX_DEAD_KINDS; k++) {
		char label[64];

		if (v->dead_by_kind[k] == 0)
			continue;
		if (k != OUTBOX_DEAD_REJECTED) {   /* malformed input cannot be replayed */
			snprintf(label, sizeof label, "Replay %s", outbox_dead_kind_names[k]);
			console_page_button(b, v->csrf, "replay", "kind", outbox_dead_kind_names[k],
					    "go", label);
		}
		snprintf(label, sizeof label, "Purge %s", outbox_dead_kind_names[k]);
		console_page_button(b, v->csrf, "purge", "kind", outbox_dead_kind_names[k], "del",
				    label);
	}
	util_buf_printf(b, "</div>");
	if (v->nnewest == 0) {
		util_buf_printf(b, "<p class=\"mute\" id=\"no-dead\">No open dead letter.</p>"
				   "</section>\n");
		return;
	}
	util_buf_printf(b, "<p class=\"mute\">The newest %zu, newest first.</p>"
			   "<div class=\"scroll\"><table id=\"dead\"><tr><th>Died</th><th>Kind</th>"
			   "<th>Destination</th><th>Reason</th><th>Attempts</th><th></th></tr>",
			v->nnewest);
	for (size_t i = 0; i < v->nnewest; i++) {
		const struct console_dead *d = &v->newest[i];
		const char *kind = d->kind >= 0 && d->kind < OUTBOX_DEAD_KINDS
				   ? outbox_dead_kind_names[d->kind] : "?";

		snprintf(num, sizeof num, "%" PRId64, d->id);
		util_buf_printf(b, "<tr id=\"dead-%s\"><td><a href=\"/console/dead/%s\">%s</a></td>"
				   "<td>%s</td><td>", num, num,
				console_html_time(d->died_at, t, sizeof t), kind);
		console_html_text(b, d->dest[0] ? d->dest : NULL);
		util_buf_printf(b, "</td><td>");
		console_html_text(b, d->reason);
		if (d->attempts >= 0)
			util_buf_printf(b, "</td><td class=\"n\">%ld</td><td>", d->attempts);
		else
			util_buf_printf(b, "</td><td class=\"n\">-</td><td>");
		if (d->kind != OUTBOX_DEAD_REJECTED)
			console_page_button(b, v->csrf, "replay", "id", num, "go", "Replay");
		console_page_button(b, v->csrf, "purge", "id", num, "del", "Purge");
		util_buf_printf(b, "</td></tr>");
	}
	util_buf_printf(b, "</table></div></section>\n");
}

int console_page_render(const struct console_view *v, struct util_buf *b)
{
	console_page_head(b, "egoi-router console");
	console_page_header(b, v);
	console_page_router(b, v);
	console_page_intake(b, v);
	console_page_dests(b, v);
	console_page_dlq(b, v);
	util_buf_printf(b, "</main>");
	return console_page_end(b);
}

int console_page_login(struct util_buf *b, const char *error)
{
	console_page_head(b, "egoi-router console: log in");
	util_buf_printf(b, "<main><section class=\"login\"><h2>egoi-router console</h2>");
	if (error) {
		util_buf_printf(b, "<p class=\"flash error\" id=\"login-error\">");
		console_html_text(b, error);
		util_buf_printf(b, "</p>");
	}
	util_buf_printf(b, "<form method=\"post\" action=\"/console/login\">"
			   "<label for=\"token\">Admin token</label>"
			   "<input type=\"password\" id=\"token\" name=\"token\" "
			   "autocomplete=\"current-password\" required autofocus>"
			   "<button type=\"submit\" class=\"go\" id=\"login\">Log in</button>"
			   "</form></section></main>");
	return console_page_end(b);
}

int console_page_dead(struct util_buf *b, const struct console_dead_detail *e, const char *csrf)
{
	const struct console_dead *d = &e->d;
	const char *kind = d->kind >= 0 && d->kind < OUTBOX_DEAD_KINDS
			   ? outbox_dead_kind_names[d->kind] : "?";
	char num[32], t[64];

	snprintf(num, sizeof num, "%" PRId64, d->id);
	console_page_head(b, "egoi-router console: dead letter");
	util_buf_printf(b, "<header><h1>Dead letter %s</h1><a href=\"/console\">back to the "
			   "console</a></header><main><section><div class=\"scroll\"><table>", num);
	util_buf_printf(b, "<tr><th>Kind</th><td>%s%s</td></tr>", kind,
			e->replayed ? " (replayed)" : "");
	util_buf_printf(b, "<tr><th>Created</th><td>%s</td></tr>",
			console_html_time(e->created_at, t, sizeof t));
	util_buf_printf(b, "<tr><th>Died</th><td>%s</td></tr><tr><th>Destination</th><td>",
			console_html_time(d->died_at, t, sizeof t));
	console_html_text(b, d->dest[0] ? d->dest : NULL);
	util_buf_printf(b, "</td></tr><tr><th>Reason</th><td>");
	console_html_text(b, d->reason);
	util_buf_printf(b, "</td></tr><tr><th>Attempts</th><td>");
	if (d->attempts >= 0)
		util_buf_printf(b, "%ld%s", d->attempts, e->last_status > 0 ? ", last HTTP " : "");
	else
		util_buf_printf(b, "-");
	if (d->attempts >= 0 && e->last_status > 0)
		util_buf_printf(b, "%d", e->last_status);
	util_buf_printf(b, "</td></tr><tr><th>Method</th><td>");
	console_html_text(b, e->method);
	util_buf_printf(b, "</td></tr><tr><th>Delivery id</th><td>");
	console_html_text(b, e->delivery_id);
	util_buf_printf(b, "</td></tr><tr><th>Request id</th><td>");
	console_html_text(b, e->request_id);
	util_buf_printf(b, "</td></tr></table></div><div class=\"actions\">");
	if (!e->replayed && d->kind != OUTBOX_DEAD_REJECTED)
		console_page_button(b, csrf, "replay", "id", num, "go", "Replay");
	console_page_button(b, csrf, "purge", "id", num, "del", "Purge");
	util_buf_printf(b, "</div><h2>Payload <span class=\"mute\">(e-mail addresses masked)"
			   "</span></h2><pre id=\"payload\">");
	if (e->payload)
		console_html_escape(b, e->payload, e->payload_len);
	else
		util_buf_printf(b, "(none)");
	util_buf_printf(b, "</pre></section></main>");
	return console_page_end(b);
}

int console_page_message(struct util_buf *b, const char *title, const char *text)
{
	console_page_head(b, "egoi-router console");
	util_buf_printf(b, "<main><section><h2>");
	console_html_text(b, title);
	util_buf_printf(b, "</h2><p id=\"message\">");
	console_html_text(b, text);
	util_buf_printf(b, "</p><p><a href=\"/console\">back to the console</a></p>"
			   "</section></main>");
	return console_page_end(b);
}
