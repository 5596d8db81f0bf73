/*
 * e2e_console.c — the status console against the real binary, over plain
 * HTTP on the admin listener: off (404) without admin_token; a missing or
 * wrong token is refused (401, the login form with an error, no cookie);
 * the login form sets an HttpOnly; SameSite=Strict session cookie that
 * opens the page, logout ends it; every answer carries the security
 * headers; a POST without (or with a wrong) CSRF token is refused with 403
 * and changes nothing; a replay through the console re-delivers a dead
 * letter to the real receiver, and the detail page masks e-mail addresses.
 */
#include "e2e/e2e.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char fwd_rules[] =
	"function route(e, m) forward('@RECV@/crm', { name = 'crm' }) end\n";
static const char batch[] =
	"{\"events\":[{\"action\":\"email_open\",\"bid\":\"7\",\"email\":\"ana.silva@example.pt\"}]}";
static const char admin_token[] = "console-s3cret-token";

struct console_resp {
	long status;
	char *body, *headers;
	size_t blen, hlen;
};

static size_t console_collect(char *p, size_t size, size_t n, void *arg)
{
	char **buf = arg;
	size_t old = *buf ? strlen(*buf) : 0, add = size * n;
	char *grown = realloc(*buf, old + add + 1);

	if (!grown)
		return 0;
	memcpy(grown + old, p, add);
	grown[old + add] = '\0';
	*buf = grown;
	return add;
}

/* One request to the admin listener: GET when form is NULL, else a POST
 * of form (application/x-www-form-urlencoded). bearer / cookie may be NULL. */
static struct console_resp console_req(struct e2e *t, const char *path, const char *form,
				       const char *bearer, const char *cookie)
{
	struct console_resp r = { 0 };
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[256], auth[256];

	assert_non_null(c);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", t->h.admin_port, path);
	if (bearer) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
		hl = curl_slist_append(hl, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, console_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, console_collect);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
	if (cookie)
		curl_easy_setopt(c, CURLOPT_COOKIE, cookie);
	if (form)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	if (curl_easy_perform(c) != CURLE_OK)
		fail_msg("%s %s: no answer", form ? "POST" : "GET", path);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	if (!r.body)
		r.body = strdup("");
	if (!r.headers)
		r.headers = strdup("");
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return r;
}

static void console_resp_free(struct console_resp *r)
{
	free(r->body);
	free(r->headers);
}

/* The value of response header name (case-insensitive) into out, or "". */
static const char *header(const struct console_resp *r, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);

	out[0] = '\0';
	for (const char *p = r->headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			size_t len = strcspn(p + n + 1, "\r\n");
			const char *v = p + n + 1;

			while (*v == ' ')
				v++, len--;
			snprintf(out, cap, "%.*s", (int)len, v);
			break;
		}
	return out;
}

static void expect_security_headers(const struct console_resp *r)
{
	char v[256];

	assert_string_equal(header(r, "Content-Security-Policy", v, sizeof v), "default-src 'self'");
	assert_string_equal(header(r, "X-Frame-Options", v, sizeof v), "DENY");
	assert_string_equal(header(r, "Cache-Control", v, sizeof v), "no-store");
}

/* The CSRF token of a page's first form into out. */
static void page_csrf(const char *body, char *out, size_t cap)
{
	const char *p = strstr(body, "name=\"csrf\" value=\"");

	assert_non_null(p);
	p += strlen("name=\"csrf\" value=\"");
	snprintf(out, cap, "%.*s", (int)strcspn(p, "\""), p);
	assert_int_equal(strlen(out), 64);
}

/* Logs in through the form; the cookie ("egoi_console=...") into out. */
static void login(struct e2e *t, char *out, size_t cap)
{
	char form[256], v[512];
	struct console_resp r;

	snprintf(form, sizeof form, "token=%s", admin_token);
	r = console_req(t, "/console/login", form, NULL, NULL);
	assert_int_equal(r.status, 303);
	header(&r, "Set-Cookie", v, sizeof v);
	assert_int_equal(strncmp(v, "egoi_console=", 13), 0);
	assert_non_null(strstr(v, "; HttpOnly"));
	assert_non_null(strstr(v, "; SameSite=Strict"));
	assert_non_null(strstr(v, "; Path=/console"));
	expect_security_headers(&r);
	snprintf(out, cap, "%.*s", (int)strcspn(v, ";"), v);
	console_resp_free(&r);
}

static void boot_console(struct e2e *t, const char *lua, const char *extra)
{
	char conf[512];

	t->h.admin_port = harness_free_port();
	assert_true(t->h.admin_port > 0);
	snprintf(conf, sizeof conf, "admin_token = %s\n%s", admin_token, extra ? extra : "");
	e2e_boot(t, lua, conf);
}

/* A forward the receiver refuses becomes one dead letter. */
static void make_dead_letter(struct e2e *t)
{
	struct harness_response resp;

	receiver_set_default(t->r, 500);
	resp = e2e_post_expect(t, batch, sizeof batch - 1, 200);
	harness_response_free(&resp);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM dead_letters"
						 " WHERE kind = 'forward'", 1, 15000), 0);
}

static void console_off_without_admin_token(void **state)
{
	struct e2e *t = *state;
	struct console_resp r;

	t->h.admin_port = harness_free_port();
	assert_true(t->h.admin_port > 0);
	e2e_boot(t, fwd_rules, NULL);
	r = console_req(t, "/console", NULL, NULL, NULL);
	assert_int_equal(r.status, 404);
	assert_null(strstr(r.body, "<form"));
	console_resp_free(&r);
	r = console_req(t, "/console/login", "token=x", NULL, NULL);
	assert_int_equal(r.status, 404);
	console_resp_free(&r);
	r = console_req(t, "/metrics", NULL, NULL, NULL);   /* the listener itself serves */
	assert_int_equal(r.status, 200);
	console_resp_free(&r);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void console_refuses_wrong_token(void **state)
{
	struct e2e *t = *state;
	struct console_resp r;
	char v[256];

	boot_console(t, fwd_rules, NULL);
	r = console_req(t, "/console", NULL, NULL, NULL);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "action=\"/console/login\""));
	assert_null(strstr(r.body, "dead-open"));
	expect_security_headers(&r);
	console_resp_free(&r);
	r = console_req(t, "/console", NULL, "wrong-token", NULL);
	assert_int_equal(r.status, 401);
	assert_null(strstr(r.body, "dead-open"));
	console_resp_free(&r);
	r = console_req(t, "/console/login", "token=wrong-token", NULL, NULL);
	assert_int_equal(r.status, 401);
	assert_non_null(strstr(r.body, "id=\"login-error\">wrong token<"));
	assert_string_equal(header(&r, "Set-Cookie", v, sizeof v), "");
	expect_security_headers(&r);
	console_resp_free(&r);
	/* a prefix of the token is wrong too */
	r = console_req(t, "/console/login", "token=console-s3cret", NULL, NULL);
	assert_int_equal(r.status, 401);
	console_resp_free(&r);
	/* a made-up session cookie opens nothing */
	r = console_req(t, "/console", NULL, NULL, "egoi_console=00000000000000000000000000000000"
						   "00000000000000000000000000000000");
	assert_int_equal(r.status, 401);
	console_resp_free(&r);
	r = console_req(t, "/console", NULL, admin_token, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "id=\"dead-open\""));
	console_resp_free(&r);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void console_login_cookie_and_headers(void **state)
{
	struct e2e *t = *state;
	struct console_resp r;
	char cookie[128], csrf[80], form[160], v[256];

	boot_console(t, fwd_rules, NULL);
	login(t, cookie, sizeof cookie);
	r = console_req(t, "/console", NULL, NULL, cookie);
	assert_int_equal(r.status, 200);
	expect_security_headers(&r);
	assert_string_equal(header(&r, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
	assert_non_null(strstr(r.body, "name=\"viewport\""));
	assert_non_null(strstr(r.body, "id=\"uptime\""));
	assert_null(strstr(r.body, "<script"));
	page_csrf(r.body, csrf, sizeof csrf);
	console_resp_free(&r);
	r = console_req(t, "/console/style.css", NULL, NULL, NULL);
	assert_int_equal(r.status, 200);
	expect_security_headers(&r);
	assert_string_equal(header(&r, "Content-Type", v, sizeof v), "text/css; charset=utf-8");
	console_resp_free(&r);
	/* logout wants the CSRF token too, then the cookie is dead */
	r = console_req(t, "/console/logout", "csrf=", NULL, cookie);
	assert_int_equal(r.status, 403);
	console_resp_free(&r);
	snprintf(form, sizeof form, "csrf=%s", csrf);
	r = console_req(t, "/console/logout", form, NULL, cookie);
	assert_int_equal(r.status, 303);
	assert_non_null(strstr(header(&r, "Set-Cookie", v, sizeof v), "Max-Age=0"));
	console_resp_free(&r);
	r = console_req(t, "/console", NULL, NULL, cookie);
	assert_int_equal(r.status, 401);
	console_resp_free(&r);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void console_post_without_csrf_changes_nothing(void **state)
{
	struct e2e *t = *state;
	struct console_resp r;
	char cookie[128], csrf[80], other[128], other_csrf[80], form[256];
	long id;

	boot_console(t, fwd_rules, "forward_max_attempts = 1\n");
	make_dead_letter(t);
	id = harness_sql_long(&t->h, "SELECT id FROM dead_letters");
	assert_true(id > 0);
	receiver_set_default(t->r, 200);
	login(t, cookie, sizeof cookie);
	login(t, other, sizeof other);
	r = console_req(t, "/console", NULL, NULL, other);
	page_csrf(r.body, other_csrf, sizeof other_csrf);
	console_resp_free(&r);
	r = console_req(t, "/console", NULL, NULL, cookie);
	page_csrf(r.body, csrf, sizeof csrf);
	console_resp_free(&r);
	/* no token, an empty one, a wrong one, another session's */
	snprintf(form, sizeof form, "op=replay&id=%ld", id);
	r = console_req(t, "/console/action", form, NULL, cookie);
	assert_int_equal(r.status, 403);
	expect_security_headers(&r);
	console_resp_free(&r);
	snprintf(form, sizeof form, "op=purge&all=1&csrf=");
	r = console_req(t, "/console/action", form, NULL, cookie);
	assert_int_equal(r.status, 403);
	console_resp_free(&r);
	snprintf(form, sizeof form, "op=purge&all=1&csrf=%.63s0", csrf);
	r = console_req(t, "/console/action", form, NULL, cookie);
	assert_int_equal(r.status, 403);
	console_resp_free(&r);
	snprintf(form, sizeof form, "op=replay&all=1&csrf=%s", other_csrf);
	r = console_req(t, "/console/action", form, NULL, cookie);
	assert_int_equal(r.status, 403);
	console_resp_free(&r);
	/* a Bearer client needs its token as well */
	r = console_req(t, "/console/action", "op=purge&all=1", admin_token, NULL);
	assert_int_equal(r.status, 403);
	console_resp_free(&r);
	/* and without a login, the right token of a session is not enough */
	snprintf(form, sizeof form, "op=purge&all=1&csrf=%s", csrf);
	r = console_req(t, "/console/action", form, NULL, NULL);
	assert_int_equal(r.status, 401);
	console_resp_free(&r);
	/* nothing changed: the dead letter is there, open, nothing re-sent */
	harness_sleep_ms(1500);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"
						  " WHERE replayed_at IS NULL"), 1);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM deliveries"), 0);
	assert_int_equal(receiver_count(t->r), 1);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void console_replay_redelivers(void **state)
{
	struct e2e *t = *state;
	struct console_resp r;
	char cookie[128], csrf[80], form[256], path[64], did[64];
	const struct recv_request *first, *again;
	long id;

	boot_console(t, fwd_rules, "forward_max_attempts = 1\n");
	make_dead_letter(t);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	first = receiver_get(t->r, 0);
	assert_non_null(recv_header(first, "X-Router-Delivery-Id"));
	snprintf(did, sizeof did, "%s", recv_header(first, "X-Router-Delivery-Id"));
	id = harness_sql_long(&t->h, "SELECT id FROM dead_letters");
	login(t, cookie, sizeof cookie);
	r = console_req(t, "/console", NULL, NULL, cookie);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "<b id=\"dead-open\">1</b>"));
	snprintf(path, sizeof path, "<tr id=\"dead-%ld\">", id);
	assert_non_null(strstr(r.body, path));
	assert_non_null(strstr(r.body, "HTTP 500"));
	page_csrf(r.body, csrf, sizeof csrf);
	console_resp_free(&r);
	/* the payload behind the click, with the address masked */
	snprintf(path, sizeof path, "/console/dead/%ld", id);
	r = console_req(t, path, NULL, NULL, cookie);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "&quot;a***@e***.pt&quot;"));
	assert_null(strstr(r.body, "ana.silva"));
	console_resp_free(&r);
	receiver_set_default(t->r, 200);
	snprintf(form, sizeof form, "csrf=%s&op=replay&id=%ld", csrf, id);
	r = console_req(t, "/console/action", form, NULL, cookie);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "id=\"flash\">replayed 1, skipped 0, failed 0<"));
	assert_non_null(strstr(r.body, "<b id=\"dead-open\">0</b>"));
	console_resp_free(&r);
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	again = receiver_get(t->r, 1);
	assert_int_equal(again->status, 200);
	assert_string_equal(again->uri, "/crm");
	assert_int_equal(again->body_len, first->body_len);
	assert_memory_equal(again->body, first->body, first->body_len);
	assert_string_equal(recv_header(again, "X-Router-Delivery-Id"), did);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM deliveries", 0, 10000), 0);
	/* the same counters as /metrics: crm's row shows what the scrape says
	 * was delivered (one, the replay) and dead-lettered (one) */
	{
		char want[160];
		const char *series = "egoi_router_deliveries_total{name=\"crm\",outcome=\"done\"} ";
		const char *at;
		long done;

		r = console_req(t, "/metrics", NULL, admin_token, NULL);
		assert_int_equal(r.status, 200);
		at = strstr(r.body, series);
		assert_non_null(at);
		done = strtol(at + strlen(series), NULL, 10);
		assert_int_equal(done, 1);
		console_resp_free(&r);
		r = console_req(t, "/console", NULL, admin_token, NULL);
		assert_int_equal(r.status, 200);
		snprintf(want, sizeof want, "</span></td><td class=\"n\">%ld</td>"
			 "<td class=\"n\">0</td><td class=\"n\">1</td>", done);
		if (!strstr(r.body, "crm<br>") || !strstr(strstr(r.body, "crm<br>"), want))
			fail_msg("crm's row lacks %s:\n%s", want, r.body);
		console_resp_free(&r);
	}
	/* replaying it again only skips it */
	snprintf(form, sizeof form, "csrf=%s&op=replay&id=%ld", csrf, id);
	r = console_req(t, "/console/action", form, NULL, cookie);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "replayed 0, skipped 1, failed 0"));
	console_resp_free(&r);
	/* purge through the console: the row is gone */
	snprintf(form, sizeof form, "csrf=%s&op=purge&id=%ld", csrf, id);
	r = console_req(t, "/console/action", form, NULL, cookie);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "purged 1"));
	console_resp_free(&r);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	assert_int_equal(receiver_count(t->r), 2);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_console_tests[] = {
	E2E_TEST(console_off_without_admin_token),
	E2E_TEST(console_refuses_wrong_token),
	E2E_TEST(console_login_cookie_and_headers),
	E2E_TEST(console_post_without_csrf_changes_nothing),
	E2E_TEST(console_replay_redelivers),
};
const size_t e2e_console_count = sizeof e2e_console_tests / sizeof e2e_console_tests[0];
