/*
 * test_console.c — the status console's parts without a daemon: HTML
 * escaping, e-mail masking, sessions and CSRF tokens, the overview and
 * detail pages of a known state, the delivery snapshot, and the metrics
 * view the page reads (the same counters /metrics exports).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_auth.h"
#include "console_html.h"
#include "console_page.h"
#include "deliver_status.h"
#include "metrics.h"
#include "util_buf.h"

static char *escaped(const char *s, size_t n)
{
	struct util_buf b = { 0 };

	console_html_escape(&b, s, n);
	assert_false(b.failed);
	return b.p ? b.p : strdup("");
}

static void test_escape(void **state)
{
	static const char ctl[] = "a\0b\x01" "c\td\ne";
	char *s;

	(void)state;
	s = escaped("<script>alert('x')</script> & \"q\"",
		    strlen("<script>alert('x')</script> & \"q\""));
	assert_string_equal(s, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
	free(s);
	s = escaped(ctl, sizeof ctl - 1);
	assert_string_equal(s, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\td\ne");
	free(s);
	s = escaped("plain ção", strlen("plain ção"));
	assert_string_equal(s, "plain ção");
	free(s);
}

static void expect_mask(const char *in, const char *want)
{
	size_t len = 0;
	char *out = console_mask_emails(in, strlen(in), &len);

	assert_non_null(out);
	if (strcmp(out, want) != 0)
		fail_msg("mask('%s') = '%s', want '%s'", in, out, want);
	assert_int_equal(len, strlen(want));
	free(out);
}

static void test_mask_emails(void **state)
{
	(void)state;
	expect_mask("ana.silva@example.pt", "a***@e***.pt");
	expect_mask("{\"email\":\"joao+x@mail.example.com\",\"n\":1}",
		    "{\"email\":\"j***@m***.com\",\"n\":1}");
	expect_mask("x@y.z", "x***@y***.z");
	expect_mask("write to a@b.pt.", "write to a***@b***.pt.");
	expect_mask("two: a1@x.io, b2@y.org", "two: a***@x***.io, b***@y***.org");
	expect_mask("no address here", "no address here");
	expect_mask("user@localhost and @handle and a@.pt", "user@localhost and @handle and a@.pt");
	expect_mask("", "");
}

static void test_time_and_duration(void **state)
{
	char b[64];

	(void)state;
	assert_string_equal(console_html_time(0, b, sizeof b), "-");
	assert_string_equal(console_html_time(1764700000, b, sizeof b), "2025-12-02 18:26:40Z");
	assert_string_equal(console_html_duration(12.7, b, sizeof b), "12s");
	assert_string_equal(console_html_duration(250, b, sizeof b), "4m 10s");
	assert_string_equal(console_html_duration(7500, b, sizeof b), "2h 5m");
	assert_string_equal(console_html_duration(273600, b, sizeof b), "3d 4h");
}

static void test_sessions(void **state)
{
	struct console_auth a;
	char id[CONSOLE_ID_HEX + 1], first[CONSOLE_ID_HEX + 1], other[CONSOLE_ID_HEX + 1];
	char cut[CONSOLE_ID_HEX + 1];

	(void)state;
	assert_int_equal(console_auth_init(&a), 0);
	assert_int_equal(console_auth_login(&a, 1000, id), 0);
	assert_int_equal(strlen(id), CONSOLE_ID_HEX);
	assert_int_equal(strspn(id, "0123456789abcdef"), CONSOLE_ID_HEX);
	assert_int_equal(console_auth_valid(&a, id, 1001), 1);
	assert_int_equal(console_auth_login(&a, 1000, other), 0);
	assert_string_not_equal(id, other);   /* random, not a counter */
	memcpy(cut, id, sizeof cut);
	cut[CONSOLE_ID_HEX - 1] = '\0';       /* a prefix is not the id */
	assert_int_equal(console_auth_valid(&a, cut, 1001), 0);
	cut[CONSOLE_ID_HEX - 1] = id[CONSOLE_ID_HEX - 1] == 'a' ? 'b' : 'a';
	assert_int_equal(console_auth_valid(&a, cut, 1001), 0);
	assert_int_equal(console_auth_valid(&a, "", 1001), 0);
	assert_int_equal(console_auth_valid(&a, NULL, 1001), 0);
	/* expiry */
	assert_int_equal(console_auth_valid(&a, id, 1000 + CONSOLE_SESSION_TTL_S + 1), 0);
	assert_int_equal(console_auth_valid(&a, id, 1001), 0);   /* and it is gone */
	/* logout */
	assert_int_equal(console_auth_valid(&a, other, 1001), 1);
	console_auth_logout(&a, other);
	assert_int_equal(console_auth_valid(&a, other, 1001), 0);
	/* bounded: the oldest of CONSOLE_SESSIONS + 1 logins is evicted */
	assert_int_equal(console_auth_login(&a, 2000, first), 0);
	for (int i = 1; i <= CONSOLE_SESSIONS; i++)
		assert_int_equal(console_auth_login(&a, 2000 + i, id), 0);
	assert_int_equal(console_auth_valid(&a, first, 2100), 0);
	assert_int_equal(console_auth_valid(&a, id, 2100), 1);
	console_auth_free(&a);
}

static void test_csrf(void **state)
{
	struct console_auth a, b;
	char s1[CONSOLE_ID_HEX + 1], s2[CONSOLE_ID_HEX + 1];
	char t1[CONSOLE_ID_HEX + 1], t2[CONSOLE_ID_HEX + 1], tb[CONSOLE_ID_HEX + 1];

	(void)state;
	assert_int_equal(console_auth_init(&a), 0);
	assert_int_equal(console_auth_init(&b), 0);
	assert_int_equal(console_auth_login(&a, 1, s1), 0);
	assert_int_equal(console_auth_login(&a, 1, s2), 0);
	console_auth_csrf(&a, s1, t1);
	console_auth_csrf(&a, s2, t2);
	assert_int_equal(strlen(t1), CONSOLE_ID_HEX);
	assert_string_not_equal(t1, t2);
	assert_string_not_equal(t1, s1);      /* not the session id itself */
	assert_int_equal(console_auth_csrf_ok(&a, s1, t1), 1);
	assert_int_equal(console_auth_csrf_ok(&a, s1, t2), 0);   /* another session's */
	assert_int_equal(console_auth_csrf_ok(&a, s1, NULL), 0);
	assert_int_equal(console_auth_csrf_ok(&a, s1, ""), 0);
	console_auth_csrf(&b, s1, tb);        /* another process's key */
	assert_int_equal(console_auth_csrf_ok(&a, s1, tb), 0);
	console_auth_csrf(&a, CONSOLE_BEARER_ID, tb);
	assert_int_equal(console_auth_csrf_ok(&a, CONSOLE_BEARER_ID, tb), 1);
	assert_int_equal(console_auth_csrf_ok(&a, s1, tb), 0);
	t1[10] = t1[10] == '0' ? '1' : '0';
	assert_int_equal(console_auth_csrf_ok(&a, s1, t1), 0);
	console_auth_free(&a);
	console_auth_free(&b);
}

/* A known state: one failing destination with a hostile label, two dead letters. */
static void known_view(struct console_view *v, struct console_dest *d, struct console_dead *dead)
{
	memset(v, 0, sizeof *v);
	memset(d, 0, sizeof *d);
	v->version = "9.9.9";
	v->now = 1764700000;
	v->started = v->now - 7500;
	v->rules_path = "/etc/egoi-router/<rules>.lua";
	v->generation = 3;
	v->m.code[0] = 200;
	v->m.code[1] = 401;
	v->m.requests[0] = 41;
	v->m.requests[1] = 2;
	v->m.requests_total = 43;
	v->m.events_total = 120;
	v->m.rejected = 5;
	v->m.pending = 7;
	v->m.reload_at = v->now - 60;
	v->m.reload_ok = 0;
	snprintf(v->m.reload_why, sizeof v->m.reload_why, "rules.lua:3: <syntax> error");
	v->requests_per_min = 12.5;
	v->events_per_min = 30;
	v->rate_window_s = 60;
	snprintf(d->st.key, sizeof d->st.key, "https://crm.example:443");
	snprintf(d->st.label, sizeof d->st.label, "crm<b>");
	d->st.state = METRICS_DEST_OPEN;
	d->st.blocked_until = v->now + 30;
	d->st.last_error_at = v->now - 5;
	d->st.last_status = 503;
	snprintf(d->st.last_error, sizeof d->st.last_error, "HTTP 503: <html>down</html>");
	d->delivered = 17;
	d->retried = 4;
	d->dead = 2;
	v->dests = d;
	v->ndests = 1;
	memset(dead, 0, 2 * sizeof *dead);
	dead[0].id = 8;
	dead[0].kind = OUTBOX_DEAD_FORWARD;
	dead[0].died_at = v->now - 10;
	dead[0].attempts = 5;
	snprintf(dead[0].dest, sizeof dead[0].dest, "crm<b>");
	snprintf(dead[0].reason, sizeof dead[0].reason, "HTTP 503 \"x\"");
	dead[1].id = 7;
	dead[1].kind = OUTBOX_DEAD_REJECTED;
	dead[1].attempts = -1;
	snprintf(dead[1].reason, sizeof dead[1].reason, "not an object");
	v->newest = dead;
	v->nnewest = 2;
	v->dead_by_kind[OUTBOX_DEAD_FORWARD] = 1;
	v->dead_by_kind[OUTBOX_DEAD_REJECTED] = 1;
	v->dead_open = 2;
	v->csrf = "c5rf";
	v->flash = "replayed 1 <ok>";
}

static void expect_in(const char *page, const char *want)
{
	if (!strstr(page, want))
		fail_msg("the page lacks: %s", want);
}

static void test_overview(void **state)
{
	struct console_view v;
	struct console_dest d;
	struct console_dead dead[2];
	struct util_buf b = { 0 };
	const char *p;
	size_t forms = 0;

	(void)state;
	known_view(&v, &d, dead);
	assert_int_equal(console_page_render(&v, &b), 0);
	p = b.p;
	expect_in(p, "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
	expect_in(p, "<link rel=\"stylesheet\" href=\"/console/style.css\">");
	expect_in(p, "version 9.9.9");
	expect_in(p, "<b id=\"uptime\">2h 5m</b>");
	expect_in(p, "<b id=\"generation\">3</b>");
	expect_in(p, "/etc/egoi-router/&lt;rules&gt;.lua");
	expect_in(p, "refused</span> at 2025-12-02 18:25:40Z: rules.lua:3: &lt;syntax&gt; error");
	expect_in(p, "<b id=\"rpm\">12.5</b>");
	expect_in(p, "<b id=\"epm\">30.0</b>");
	expect_in(p, "<b id=\"rejected\">5</b>");
	expect_in(p, "<th>200</th><th>401</th></tr>");
	expect_in(p, "<td class=\"n\">41</td><td class=\"n\">2</td>");
	expect_in(p, "crm&lt;b&gt;<br><span class=\"mute\">https://crm.example:443</span>");
	expect_in(p, "<td class=\"n\">17</td><td class=\"n\">4</td><td class=\"n\">2</td>");
	expect_in(p, "<td class=\"bad\">open</td><td>2025-12-02 18:27:10Z</td>");
	expect_in(p, "18:26:35Z HTTP 503: &lt;html&gt;down&lt;/html&gt;");
	expect_in(p, "<b id=\"pending\">7</b>");
	expect_in(p, "<b id=\"dead-open\">2</b>");
	expect_in(p, "<b id=\"dead-forward\">1</b>");
	expect_in(p, "<tr id=\"dead-8\"><td><a href=\"/console/dead/8\">");
	expect_in(p, "HTTP 503 &quot;x&quot;");
	expect_in(p, "<p class=\"flash\" id=\"flash\">replayed 1 &lt;ok&gt;</p>");
	expect_in(p, "name=\"dest\" value=\"crm&lt;b&gt;\"");
	/* no script, no inline style: nothing default-src 'self' would block */
	assert_null(strstr(p, "<script"));
	assert_null(strstr(p, "style="));
	assert_null(strstr(p, "<style"));
	assert_null(strstr(p, "crm<b>"));
	/* every form is a POST carrying the CSRF token */
	for (const char *f = strstr(p, "<form"); f; f = strstr(f + 1, "<form")) {
		const char *end = strstr(f, "</form>");

		assert_non_null(end);
		assert_int_equal(strncmp(f, "<form method=\"post\"", 19), 0);
		assert_non_null(strstr(f, "name=\"csrf\" value=\"c5rf\""));
		assert_true(strstr(f, "name=\"csrf\" value=\"c5rf\"") < end);
		forms++;
	}
	/* logout, replay/purge all, replay+purge forward, purge rejected, the
	 * destination's replay, replay+purge of 8, purge of 7 (rejected: no replay) */
	assert_int_equal(forms, 1 + 2 + 2 + 1 + 1 + 2 + 1);
	assert_null(strstr(p, "name=\"kind\" value=\"rejected\"><button type=\"submit\" "
			      "class=\"go\""));
	util_buf_free(&b);
}

static void test_detail_login_message(void **state)
{
	struct console_dead_detail e;
	struct util_buf b = { 0 };
	static const char payload[] = "{\"email\":\"a***@e***.pt\",\"x\":\"</pre><script>\"}";

	(void)state;
	memset(&e, 0, sizeof e);
	e.d.id = 12;
	e.d.kind = OUTBOX_DEAD_FORWARD;
	e.d.attempts = 3;
	e.last_status = 500;
	e.method = "POST";
	e.payload = payload;
	e.payload_len = sizeof payload - 1;
	assert_int_equal(console_page_dead(&b, &e, "tok"), 0);
	expect_in(b.p, "<h1>Dead letter 12</h1>");
	expect_in(b.p, "3, last HTTP 500");
	expect_in(b.p, "&quot;a***@e***.pt&quot;,&quot;x&quot;:&quot;&lt;/pre&gt;&lt;script&gt;");
	expect_in(b.p, "name=\"id\" value=\"12\"><button type=\"submit\" class=\"go\"");
	assert_null(strstr(b.p, "<script>"));
	util_buf_free(&b);
	assert_int_equal(console_page_login(&b, "wrong <token>"), 0);
	expect_in(b.p, "<p class=\"flash error\" id=\"login-error\">wrong &lt;token&gt;</p>");
	expect_in(b.p, "<form method=\"post\" action=\"/console/login\">");
	expect_in(b.p, "type=\"password\" id=\"token\" name=\"token\"");
	util_buf_free(&b);
	assert_int_equal(console_page_message(&b, "Forbidden", "no <csrf>"), 0);
	expect_in(b.p, "<p id=\"message\">no &lt;csrf&gt;</p>");
	util_buf_free(&b);
}

static void test_deliver_status(void **state)
{
	struct deliver_status_row rows[DELIVER_STATUS_MAX];
	char key[64];
	size_t n;

	(void)state;
	deliver_status_reset();
	deliver_status_attempt("http://a:80", "crm", 0, 503, "HTTP 503", 100);
	deliver_status_attempt("http://a:80", "crm", 1, 200, NULL, 110);
	deliver_status_dest("http://a:80", METRICS_DEST_OPEN, 4, 120, 150, INFINITY);
	deliver_status_dest("http://b:80", METRICS_DEST_CLOSED, 0, 130, 150, 140);
	deliver_status_attempt("", "x", 1, 200, NULL, 1);   /* no key: ignored */
	n = deliver_status_snapshot(rows, DELIVER_STATUS_MAX);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].key, "http://a:80");
	assert_string_equal(rows[0].label, "crm");
	assert_true(rows[0].last_success == 110);
	assert_true(rows[0].last_error_at == 100);
	assert_int_equal(rows[0].last_status, 503);
	assert_string_equal(rows[0].last_error, "HTTP 503");
	assert_int_equal(rows[0].state, METRICS_DEST_OPEN);
	assert_int_equal(rows[0].backlog, 4);
	assert_true(rows[0].blocked_until == 150);   /* open: its circuit's time */
	assert_true(rows[0].next_due == 0);          /* INFINITY: nothing due */
	assert_true(rows[1].blocked_until == 130);   /* closed: the Retry-After pause */
	assert_true(rows[1].next_due == 140);
	for (int i = 0; i < DELIVER_STATUS_MAX + 5; i++) {
		snprintf(key, sizeof key, "http://h%d:80", i);
		deliver_status_dest(key, 0, 0, 0, 0, 0);
	}
	assert_int_equal(deliver_status_snapshot(rows, DELIVER_STATUS_MAX), DELIVER_STATUS_MAX);
	assert_int_equal(deliver_status_snapshot(rows, 3), 3);
	deliver_status_reset();
	assert_int_equal(deliver_status_snapshot(rows, DELIVER_STATUS_MAX), 0);
}

static void test_metrics_view(void **state)
{
	struct metrics_view v;
	struct metrics_tally t;
	char *text = NULL;
	size_t len = 0;

	(void)state;
	metrics_reset();
	metrics_request(200, 0.01);
	metrics_request(200, 0.01);
	metrics_request(401, 0.01);
	metrics_request(299, 0.01);   /* other */
	metrics_tally_init(&t);
	metrics_tally_event(&t, "email_open");
	metrics_tally_event(&t, NULL);
	metrics_tally_decision(&t, METRICS_ERROR, "rejected");
	metrics_tally_flush(&t);
	metrics_delivery("crm", METRICS_DONE, 0.1);
	metrics_delivery("crm", METRICS_DONE, 0.1);
	metrics_delivery("crm", METRICS_RETRY, 0.1);
	metrics_set_outbox(3, 1);
	metrics_reload(0, "bad rules");
	metrics_read(&v);
	assert_int_equal(v.code[0], 200);
	assert_int_equal(v.requests[0], 2);
	assert_int_equal(v.requests[METRICS_VIEW_CODES], 1);
	assert_int_equal(v.requests_total, 4);
	assert_int_equal(v.events_total, 2);
	assert_int_equal(v.rejected, 1);
	assert_int_equal(v.pending, 3);
	assert_int_equal(v.dead, 1);
	assert_int_equal(v.reloads_refused, 1);
	assert_int_equal(v.reload_ok, 0);
	assert_string_equal(v.reload_why, "bad rules");
	assert_true(v.reload_at > 0);
	assert_int_equal(metrics_delivery_count("crm", METRICS_DONE), 2);
	assert_int_equal(metrics_delivery_count("crm", METRICS_RETRY), 1);
	assert_int_equal(metrics_delivery_count("crm", METRICS_DEAD), 0);
	assert_int_equal(metrics_delivery_count("nobody", METRICS_DONE), 0);
	/* the same numbers /metrics exports */
	assert_int_equal(metrics_render(&text, &len), 0);
	assert_non_null(strstr(text, "egoi_router_deliveries_total{name=\"crm\",outcome=\"done\"} 2\n"));
	assert_non_null(strstr(text, "egoi_router_requests_total{code=\"200\"} 2\n"));
	free(text);
	metrics_reload(1, "ignored when ok");
	metrics_read(&v);
	assert_int_equal(v.reload_ok, 1);
	assert_string_equal(v.reload_why, "");
	metrics_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_mask_emails),
		cmocka_unit_test(test_time_and_duration),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_csrf),
		cmocka_unit_test(test_overview),
		cmocka_unit_test(test_detail_login_message),
		cmocka_unit_test(test_deliver_status),
		cmocka_unit_test(test_metrics_view),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
