/*
 * e2e_egoi.c — `egoi-router egoi list|register|unregister` against the
 * stand-in E-goi API (egoi_standin.h), the real binary on a harness
 * router.conf: what register sends (types included), idempotence and
 * --replace, the refusals made before any call (non-https URL, unknown
 * action), paging through 2500+ webhooks, unregister, and one line with
 * the right exit code for every error E-goi may answer. Every scenario
 * also checks that neither the token nor the API key is ever printed.
 */
#include "e2e/e2e.h"
#include "e2e/egoi_standin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EGOI_KEY "standin-key-5f2b9c0d7e"
#define EGOI_PUBLIC "https://hooks.example.com/hooks/egoi"

/* The stand-in of the running scenario, stopped by the teardown even when
 * an assertion ends the scenario early. */
static struct standin *egoi_s;

static int egoi_setup(void **state)
{
	if (e2e_setup(state) != 0)
		return -1;
	egoi_s = standin_start(EGOI_KEY);
	return egoi_s ? 0 : -1;
}

static int egoi_teardown(void **state)
{
	standin_stop(egoi_s);
	egoi_s = NULL;
	return e2e_teardown(state);
}

/* router.conf with the stand-in as the API; public_url / key line may be
 * NULL (left out); more: further lines or NULL. */
static void egoi_conf(struct e2e *t, const char *public_url, const char *key_line,
		      const char *more)
{
	char api[64];

	standin_url(egoi_s, api, sizeof api);
	snprintf(t->h.extra, sizeof t->h.extra, "egoi_api_base = %s\negoi_api_timeout = 1s\n%s%s%s%s%s",
		 api, public_url ? "public_url = " : "", public_url ? public_url : "",
		 public_url ? "\n" : "", key_line ? key_line : "", more ? more : "");
	assert_int_equal(harness_write_config(&t->h), 0);
}

/* Runs `egoi-router egoi ARGS... -c router.conf`, asserts the exit code
 * and that no secret was printed; *out / *err (may be NULL) get the texts. */
static void egoi_run_at(struct e2e *t, const char *const *args, int want, char **out, char **err,
			const char *file, int line)
{
	const char *argv[24];
	char *o = NULL, *e = NULL;
	size_t n = 0;
	int rc;

	argv[n++] = harness_bin();
	argv[n++] = "egoi";
	for (; *args && n < 20; args++)
		argv[n++] = *args;
	argv[n++] = "-c";
	argv[n++] = t->h.conf;
	argv[n] = NULL;
	rc = harness_run(&t->h, argv, NULL, 30000, &o, &e);
	if (rc != want)
		fprintf(stderr, "[e2e] egoi %s: exit %d (want %d), stdout: %s, stderr: %s\n", argv[2],
			rc, want, o ? o : "", e ? e : "");
	_assert_int_equal(cast_to_largest_integral_type(rc), cast_to_largest_integral_type(want),
			  file, line);
	_assert_true(o != NULL && e != NULL, "output", file, line);
	_assert_true(strstr(o, t->h.token) == NULL && strstr(e, t->h.token) == NULL,
		     "the token is not printed", file, line);
	_assert_true(strstr(o, EGOI_KEY) == NULL && strstr(e, EGOI_KEY) == NULL,
		     "the API key is not printed", file, line);
	if (out)
		*out = o;
	else
		free(o);
	if (err)
		*err = e;
	else
		free(e);
}
#define egoi_run(t, args, want, out, err) \
	egoi_run_at((t), (args), (want), (out), (err), __FILE__, __LINE__)

/* The stand-in saw no request that breaks the API's rules. */
static void egoi_no_violations(void)
{
	char *v = standin_violations(egoi_s);

	if (v)
		fprintf(stderr, "[e2e] stand-in violations:\n%s", v);
	assert_null(v);
}

/* public_url?token=TOKEN, what register sends by default. */
static void egoi_our_url(const struct e2e *t, char *buf, size_t len)
{
	snprintf(buf, len, "%s?token=%s", EGOI_PUBLIC, t->h.token);
}

static size_t egoi_lines(const char *text)
{
	size_t n = 0;

	for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	return n;
}

/* register --list 1: one GET (is it there?), one POST whose body has
 * E-goi's types: list_id an integer, url a string with the token, actions
 * the 38 names as strings, no fields member when none were asked. */
static void egoi_register_creates_with_right_body(void **state)
{
	struct e2e *t = *state;
	const char *args[] = { "register", "--list", "1", NULL };
	char url[256], *out = NULL;
	const struct standin_req *post;
	yajl_val body, v;

	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	egoi_run(t, args, 0, &out, NULL);
	assert_non_null(strstr(out, "registered webhook 1 for list 1"));
	assert_non_null(strstr(out, "?token=REDACTED"));
	assert_int_equal(standin_count(egoi_s), 2);
	assert_string_equal(standin_get(egoi_s, 0)->method, "GET");
	assert_string_equal(standin_get(egoi_s, 0)->uri, "/webhooks?offset=0&limit=1000");
	post = standin_get(egoi_s, 1);
	assert_string_equal(post->method, "POST");
	assert_string_equal(post->uri, "/webhooks");
	assert_string_equal(post->apikey, EGOI_KEY);
	body = e2e_json(post->body);
	v = e2e_get(body, "list_id");
	assert_true(v && YAJL_IS_INTEGER(v) && YAJL_GET_INTEGER(v) == 1);
	egoi_our_url(t, url, sizeof url);
	assert_string_equal(e2e_str(body, "url"), url);
	v = e2e_get(body, "actions");
	assert_true(v && YAJL_IS_ARRAY(v));
	assert_int_equal(YAJL_GET_ARRAY(v)->len, 38);
	for (size_t i = 0; i < 38; i++)
		assert_true(YAJL_IS_STRING(YAJL_GET_ARRAY(v)->values[i]));
	assert_null(e2e_get(body, "fields"));
	assert_int_equal(YAJL_GET_OBJECT(body)->len, 3);
	yajl_tree_free(body);
	assert_int_not_equal(standin_find(egoi_s, 1, url), 0);
	egoi_no_violations();
	free(out);
	e2e_pass(t);
}

/* The same register twice: the second finds the identical webhook (actions
 * in another order too), says so, and creates nothing. */
static void egoi_register_twice_is_a_noop(void **state)
{
	struct e2e *t = *state;
	const char *a1[] = { "register", "--list", "7", "--actions", "email_open,email_click",
			     "--fields", "email,first_name", NULL };
	const char *a2[] = { "register", "--list", "7", "--actions", "email_click, email_open",
			     "--fields", "first_name,email", NULL };
	char *out = NULL;

	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	egoi_run(t, a1, 0, NULL, NULL);
	assert_int_equal(standin_webhooks(egoi_s), 1);
	egoi_run(t, a2, 0, &out, NULL);
	assert_non_null(strstr(out, "already registered"));
	assert_non_null(strstr(out, "nothing to do"));
	assert_int_equal(standin_webhooks(egoi_s), 1);
	assert_int_equal(standin_count(egoi_s), 3);  /* GET, POST, GET */
	assert_string_equal(standin_get(egoi_s, 2)->method, "GET");
	egoi_no_violations();
	free(out);
	e2e_pass(t);
}

/* A differing webhook for the same list and URL (other actions, or an old
 * token) is refused without --replace and swapped with it. */
static void egoi_register_replace_swaps_a_differing_one(void **state)
{
	struct e2e *t = *state;
	const char *plain[] = { "register", "--list", "3", NULL };
	const char *repl[] = { "register", "--list", "3", "--replace", NULL };
	char url[256], *err = NULL, *out = NULL;
	long long old, other, now;

	egoi_our_url(t, url, sizeof url);
	old = standin_add(egoi_s, 3, EGOI_PUBLIC "?token=an-old-token", "email_open", NULL);
	other = standin_add(egoi_s, 4, EGOI_PUBLIC "?token=an-old-token", "email_open", NULL);
	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	egoi_run(t, plain, 1, NULL, &err);
	assert_non_null(strstr(err, "--replace"));
	assert_int_equal(egoi_lines(err), 1);
	assert_null(strstr(err, "an-old-token"));
	assert_int_equal(standin_webhooks(egoi_s), 2);
	egoi_run(t, repl, 0, &out, NULL);
	assert_non_null(strstr(out, "deleted webhook"));
	assert_non_null(strstr(out, "registered webhook"));
	assert_null(strstr(out, "an-old-token"));
	assert_null(standin_webhook_json(egoi_s, old));
	assert_non_null(standin_webhook_json(egoi_s, other));  /* another list: kept */
	now = standin_find(egoi_s, 3, url);
	assert_true(now > other);
	assert_non_null(strstr(standin_webhook_json(egoi_s, now), "\"sms_delivered\""));
	egoi_no_violations();
	free(err);
	free(out);
	e2e_pass(t);
}

/* Refusals made before any request: a non-https URL (public_url or
 * --url) unless --allow-http, an unknown action name, a bad --list, an
 * option of another subcommand. */
static void egoi_register_refusals_before_any_call(void **state)
{
	struct e2e *t = *state;
	const char *plain[] = { "register", "--list", "1", NULL };
	const char *flag[] = { "register", "--list", "1", "--allow-http", NULL };
	const char *url[] = { "register", "--list", "2", "--url", "http://x.example/h", NULL };
	const char *bad[] = { "register", "--list", "1", "--actions", "email_open,no_such_action",
			      NULL };
	const char *list[] = { "register", "--list", "\"1\"", NULL };
	const char *wrong[] = { "list", "--replace", NULL };
	char *err = NULL;

	egoi_conf(t, "http://hooks.example.com/hooks/egoi", "egoi_api_key = " EGOI_KEY "\n", NULL);
	egoi_run(t, plain, 1, NULL, &err);
	assert_non_null(strstr(err, "not https"));
	assert_int_equal(egoi_lines(err), 1);
	free(err);
	egoi_run(t, url, 1, NULL, NULL);
	egoi_run(t, bad, 2, NULL, &err);
	assert_non_null(strstr(err, "'no_such_action' is not an E-goi webhook action"));
	free(err);
	egoi_run(t, list, 2, NULL, NULL);
	egoi_run(t, wrong, 2, NULL, &err);
	assert_non_null(strstr(err, "list does not take --replace"));
	free(err);
	assert_int_equal(standin_count(egoi_s), 0);
	egoi_run(t, flag, 0, NULL, NULL);
	assert_int_equal(standin_webhooks(egoi_s), 1);
	egoi_no_violations();
	e2e_pass(t);
}

/* 2500 webhooks of others and two of ours (list 9, any token): list reads
 * the three pages, marks ours, redacts every token. */
static void egoi_list_pages_and_marks_ours(void **state)
{
	struct e2e *t = *state;
	const char *args[] = { "list", NULL };
	char *out = NULL, *last;
	size_t marked = 0;

	for (int i = 0; i < 2500; i++) {
		char u[128];

		snprintf(u, sizeof u, "https://other-%d.example/hook?token=theirs-%d", i, i);
		standin_add(egoi_s, 1 + i % 5, u, "email_open,email_click", NULL);
	}
	standin_add(egoi_s, 9, EGOI_PUBLIC "?token=an-old-token", "email_open", "email");
	standin_add(egoi_s, 9, EGOI_PUBLIC, "subscription", NULL);
	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	egoi_run(t, args, 0, &out, NULL);
	assert_int_equal(standin_count(egoi_s), 3);
	assert_string_equal(standin_get(egoi_s, 0)->uri, "/webhooks?offset=0&limit=1000");
	assert_string_equal(standin_get(egoi_s, 1)->uri, "/webhooks?offset=1000&limit=1000");
	assert_string_equal(standin_get(egoi_s, 2)->uri, "/webhooks?offset=2000&limit=1000");
	assert_int_equal(egoi_lines(out), 2503);
	for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		marked += *p == '*';
	assert_int_equal(marked, 2);
	assert_null(strstr(out, "theirs-"));
	assert_null(strstr(out, "an-old-token"));
	assert_non_null(strstr(out, "https://other-7.example/hook?token=REDACTED"));
	last = strstr(out, "2502 webhooks, 2 pointing at this router");
	assert_non_null(last);
	egoi_no_violations();
	free(out);
	e2e_pass(t);
}

/* list --json is one JSON document with E-goi's types and `ours`. */
static void egoi_list_json_parses(void **state)
{
	struct e2e *t = *state;
	const char *args[] = { "list", "--json", NULL };
	char *out = NULL;
	yajl_val doc, hooks, first;

	for (int i = 0; i < 1200; i++)
		standin_add(egoi_s, 2, "https://elsewhere.example/h", "email_open", NULL);
	standin_add(egoi_s, 5, EGOI_PUBLIC "?token=an-old-token", "email_open,sms_delivered", "email");
	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	egoi_run(t, args, 0, &out, NULL);
	doc = e2e_json(out);
	assert_int_equal(YAJL_GET_INTEGER(e2e_get(doc, "total")), 1201);
	assert_int_equal(YAJL_GET_INTEGER(e2e_get(doc, "ours")), 1);
	hooks = e2e_get(doc, "webhooks");
	assert_true(hooks && YAJL_IS_ARRAY(hooks));
	assert_int_equal(YAJL_GET_ARRAY(hooks)->len, 1201);
	first = YAJL_GET_ARRAY(hooks)->values[1200];
	assert_true(YAJL_IS_INTEGER(e2e_get(first, "webhook_id")));
	assert_true(YAJL_IS_INTEGER(e2e_get(first, "list_id")));
	assert_true(YAJL_IS_TRUE(e2e_get(first, "ours")));
	assert_string_equal(e2e_str(first, "url"), EGOI_PUBLIC "?token=REDACTED");
	assert_int_equal(YAJL_GET_ARRAY(e2e_get(first, "actions"))->len, 2);
	assert_true(YAJL_IS_FALSE(e2e_get(YAJL_GET_ARRAY(hooks)->values[0], "ours")));
	yajl_tree_free(doc);
	egoi_no_violations();
	free(out);
	e2e_pass(t);
}

/* unregister --list removes the list's webhooks pointing here (whatever
 * their token) and no other; --id removes one; an unknown id is E-goi's
 * 404 (exit 1). */
static void egoi_unregister_by_list_and_id(void **state)
{
	struct e2e *t = *state;
	const char *bylist[] = { "unregister", "--list", "5", NULL };
	const char *again[] = { "unregister", "--list", "5", NULL };
	const char *unknown[] = { "unregister", "--id", "999", NULL };
	char idarg[32], *out = NULL, *err = NULL;
	long long a, b, c, d;

	a = standin_add(egoi_s, 5, EGOI_PUBLIC "?token=one", "email_open", NULL);
	b = standin_add(egoi_s, 5, EGOI_PUBLIC "?token=two", "email_click", NULL);
	c = standin_add(egoi_s, 5, "https://elsewhere.example/h", "email_open", NULL);
	d = standin_add(egoi_s, 6, EGOI_PUBLIC "?token=one", "email_open", NULL);
	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	egoi_run(t, bylist, 0, &out, NULL);
	assert_int_equal(egoi_lines(out), 2);
	assert_null(standin_webhook_json(egoi_s, a));
	assert_null(standin_webhook_json(egoi_s, b));
	assert_non_null(standin_webhook_json(egoi_s, c));
	assert_non_null(standin_webhook_json(egoi_s, d));
	free(out);
	egoi_run(t, again, 0, &out, NULL);
	assert_non_null(strstr(out, "nothing to do"));
	free(out);
	snprintf(idarg, sizeof idarg, "%lld", c);
	const char *byid[] = { "unregister", "--id", idarg, NULL };
	egoi_run(t, byid, 0, &out, NULL);
	assert_null(standin_webhook_json(egoi_s, c));
	assert_string_equal(standin_get(egoi_s, standin_count(egoi_s) - 1)->method, "DELETE");
	egoi_run(t, unknown, 1, NULL, &err);
	assert_non_null(strstr(err, "404"));
	assert_int_equal(egoi_lines(err), 1);
	assert_int_equal(standin_webhooks(egoi_s), 1);
	egoi_no_violations();
	free(out);
	free(err);
	e2e_pass(t);
}

/* Each error E-goi may give: one line on stderr, nothing on stdout, exit
 * 1 when the request or key was refused, 3 when the service failed. */
static void egoi_errors_one_line_each(void **state)
{
	struct e2e *t = *state;
	const char *list[] = { "list", NULL };
	const char *reg[] = { "register", "--list", "1", NULL };
	static const struct {
		int status;       /* scripted answer of the first (or, post, the second) request */
		int post;         /* 1: the GET passes, the POST gets it */
		long delay_ms;
		const char *body;
		int want;
		const char *says;
	} cases[] = {
		{ 403, 0, 0, NULL, 1, "HTTP 403 Forbidden" },
		{ 409, 1, 0, NULL, 1, "HTTP 409" },
		{ 422, 1, 0, "{\"type\":\"x\",\"title\":\"Unprocessable Entity\",\"status\":422,"
			     "\"detail\":\"bad input: " EGOI_PUBLIC "?token=@T@\",\"errors\":{\"url\":"
			     "[\"invalid_url\"],\"list_id\":\"list_not_found\"}}",
		  1, "?token=REDACTED (errors: url: invalid_url; list_id: list_not_found)" },
		{ 500, 0, 0, NULL, 3, "HTTP 500" },
		{ 503, 1, 0, NULL, 3, "HTTP 503" },
		{ 200, 0, 3000, "{}", 3, "timeout" },
	};

	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *out = NULL, *err = NULL, body[1024];

		/* A detail that quotes the URL with the real token: redacted too. */
		if (cases[i].body) {
			const char *at = strstr(cases[i].body, "@T@");

			if (at)
				snprintf(body, sizeof body, "%.*s%s%s", (int)(at - cases[i].body),
					 cases[i].body, t->h.token, at + 3);
			else
				snprintf(body, sizeof body, "%s", cases[i].body);
		}
		if (cases[i].post)
			standin_script(egoi_s, 0, NULL, NULL, 0);
		standin_script(egoi_s, cases[i].status, NULL, cases[i].body ? body : NULL,
			       cases[i].delay_ms);
		egoi_run(t, cases[i].post ? reg : list, cases[i].want, &out, &err);
		if (!strstr(err, cases[i].says))
			fprintf(stderr, "[e2e] case %zu: stderr %s\n", i, err);
		assert_non_null(strstr(err, cases[i].says));
		assert_int_equal(egoi_lines(err), 1);
		assert_string_equal(out, "");
		free(out);
		free(err);
	}
	egoi_no_violations();
	e2e_pass(t);
}

/* A wrong key: the stand-in's own 401, one line naming the key setting;
 * no key at all: exit 1 before any request. */
static void egoi_bad_or_missing_key(void **state)
{
	struct e2e *t = *state;
	const char *list[] = { "list", NULL };
	char *err = NULL;

	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = not-the-key\n", NULL);
	egoi_run(t, list, 1, NULL, &err);
	assert_non_null(strstr(err, "HTTP 401"));
	assert_non_null(strstr(err, "egoi_api_key"));
	assert_null(strstr(err, "not-the-key"));
	assert_int_equal(egoi_lines(err), 1);
	free(err);
	unsetenv("EGOI_API_KEY");
	egoi_conf(t, EGOI_PUBLIC, NULL, NULL);
	egoi_run(t, list, 1, NULL, &err);
	assert_non_null(strstr(err, "EGOI_API_KEY"));
	assert_int_equal(standin_count(egoi_s), 1);
	free(err);
	e2e_pass(t);
}

/* The key from the environment: egoi_api_key = env:EGOI_API_KEY, and no
 * key line at all (the commands then read EGOI_API_KEY themselves). */
static void egoi_key_from_the_environment(void **state)
{
	struct e2e *t = *state;
	const char *list[] = { "list", NULL };

	setenv("EGOI_API_KEY", EGOI_KEY, 1);
	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = env:EGOI_API_KEY\n", NULL);
	egoi_run(t, list, 0, NULL, NULL);
	egoi_conf(t, EGOI_PUBLIC, NULL, NULL);
	egoi_run(t, list, 0, NULL, NULL);
	unsetenv("EGOI_API_KEY");
	assert_int_equal(standin_count(egoi_s), 2);
	assert_string_equal(standin_get(egoi_s, 0)->apikey, EGOI_KEY);
	assert_string_equal(standin_get(egoi_s, 1)->apikey, EGOI_KEY);
	egoi_no_violations();
	e2e_pass(t);
}

/* 429: Retry-After then success; X-RateLimit-Reset then success; 429
 * every time: 1 + 3 retries, then one line and exit 3. */
static void egoi_rate_limited_then_retried(void **state)
{
	struct e2e *t = *state;
	const char *list[] = { "list", NULL };
	char *err = NULL;

	egoi_conf(t, EGOI_PUBLIC, "egoi_api_key = " EGOI_KEY "\n", NULL);
	standin_script(egoi_s, 429, "Retry-After: 1", NULL, 0);
	egoi_run(t, list, 0, NULL, &err);
	assert_non_null(strstr(err, "retrying in 1 s"));
	assert_int_equal(standin_count(egoi_s), 2);
	free(err);
	standin_script(egoi_s, 429, "X-RateLimit-Reset: 1", NULL, 0);
	egoi_run(t, list, 0, NULL, NULL);
	assert_int_equal(standin_count(egoi_s), 4);
	for (int i = 0; i < 4; i++)
		standin_script(egoi_s, 429, "Retry-After: 1", NULL, 0);
	egoi_run(t, list, 3, NULL, &err);
	assert_int_equal(standin_count(egoi_s), 8);
	/* three "retrying" notes, then the one error line */
	assert_int_equal(egoi_lines(err), 4);
	assert_non_null(strstr(err, "HTTP 429"));
	free(err);
	egoi_no_violations();
	e2e_pass(t);
}

#define EGOI_TEST(fn) cmocka_unit_test_setup_teardown(fn, egoi_setup, egoi_teardown)

const struct CMUnitTest e2e_egoi_tests[] = {
	EGOI_TEST(egoi_register_creates_with_right_body),
	EGOI_TEST(egoi_register_twice_is_a_noop),
	EGOI_TEST(egoi_register_replace_swaps_a_differing_one),
	EGOI_TEST(egoi_register_refusals_before_any_call),
	EGOI_TEST(egoi_list_pages_and_marks_ours),
	EGOI_TEST(egoi_list_json_parses),
	EGOI_TEST(egoi_unregister_by_list_and_id),
	EGOI_TEST(egoi_errors_one_line_each),
	EGOI_TEST(egoi_bad_or_missing_key),
	EGOI_TEST(egoi_key_from_the_environment),
	EGOI_TEST(egoi_rate_limited_then_retried),
};
const size_t e2e_egoi_count = sizeof e2e_egoi_tests / sizeof e2e_egoi_tests[0];
