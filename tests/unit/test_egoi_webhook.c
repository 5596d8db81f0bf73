/*
 * test_egoi_webhook.c — E-goi webhook objects and the token in their URLs:
 * redaction (URLs and free text), stripping and comparing, adding the
 * token, splitting --actions, set comparison, the create body's types and
 * reading E-goi's answer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "egoi_webhook.h"

static void expect_str(char *got, const char *want)
{
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_redact(void **state)
{
	(void)state;
	expect_str(egoi_url_redact("https://h/x?token=s3cret"), "https://h/x?token=REDACTED");
	expect_str(egoi_url_redact("https://h/x?a=1&token=s&b=2"), "https://h/x?a=1&token=REDACTED&b=2");
	expect_str(egoi_url_redact("https://h/x?mytoken=s"), "https://h/x?mytoken=s");
	expect_str(egoi_url_redact("https://h/x"), "https://h/x");
	expect_str(egoi_url_redact(NULL), "");
	expect_str(egoi_text_redact("bad url https://h/?token=abc (errors: url: x)"),
		   "bad url https://h/?token=REDACTED (errors: url: x)");
	expect_str(egoi_text_redact("\"https://h/?a=1&token=abc\", next"),
		   "\"https://h/?a=1&token=REDACTED\", next");
}

static void test_strip_and_compare(void **state)
{
	(void)state;
	expect_str(egoi_url_strip_token("https://h/x?token=s"), "https://h/x");
	expect_str(egoi_url_strip_token("https://h/x?token=s&a=1"), "https://h/x?a=1");
	expect_str(egoi_url_strip_token("https://h/x?a=1&token=s"), "https://h/x?a=1");
	assert_true(egoi_url_is("https://h/x?token=old", "https://h/x"));
	assert_true(egoi_url_is("https://h/x?token=old", "https://h/x?token=new"));
	assert_false(egoi_url_is("https://h/x?token=old&a=1", "https://h/x"));
	assert_false(egoi_url_is("https://h/y?token=old", "https://h/x"));
}

static void test_with_token(void **state)
{
	(void)state;
	expect_str(egoi_url_with_token("https://h/x", "t0k"), "https://h/x?token=t0k");
	expect_str(egoi_url_with_token("https://h/x?a=1", "t0k"), "https://h/x?a=1&token=t0k");
	expect_str(egoi_url_with_token("https://h/x", "a b&c"), "https://h/x?token=a%20b%26c");
	expect_str(egoi_url_with_token("https://h/x?token=mine", "t0k"), "https://h/x?token=mine");
	expect_str(egoi_url_with_token("https://h/x", NULL), "https://h/x");
}

static void test_split(void **state)
{
	char **v;
	size_t n;

	(void)state;
	assert_int_equal(egoi_split_list("email_open, email_click ,sms_delivered", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[1], "email_click");
	egoi_free_list(v, n);
	assert_int_equal(egoi_split_list("a,,b", &v, &n), -1);
	assert_int_equal(egoi_split_list("", &v, &n), -1);
	assert_int_equal(egoi_split_list("a,", &v, &n), -1);
}

static void test_same_and_body(void **state)
{
	char *a1[] = { "email_open", "email_click" }, *a2[] = { "email_click", "email_open" };
	char *f[] = { "email" };
	struct egoi_webhook a = { 0, 4, "https://h/x?token=t", a1, 2, f, 1 };
	struct egoi_webhook b = { 9, 4, "https://h/x?token=t", a2, 2, f, 1 };
	char *body;
	yajl_val root, v;
	const char *lp[] = { "list_id", NULL }, *ap[] = { "actions", NULL };

	(void)state;
	assert_true(egoi_webhook_same(&a, &b));
	b.nfields = 0;
	assert_false(egoi_webhook_same(&a, &b));
	b.nfields = 1;
	b.nactions = 1;
	assert_false(egoi_webhook_same(&a, &b));
	b.nactions = 2;
	b.url = "https://h/x?token=other";
	assert_false(egoi_webhook_same(&a, &b));

	body = egoi_webhook_body(&a);
	assert_non_null(body);
	assert_string_equal(body, "{\"list_id\":4,\"url\":\"https://h/x?token=t\","
				  "\"actions\":[\"email_open\",\"email_click\"],\"fields\":[\"email\"]}");
	root = yajl_tree_parse(body, NULL, 0);
	v = yajl_tree_get(root, lp, yajl_t_any);
	assert_true(v && YAJL_IS_INTEGER(v));
	v = yajl_tree_get(root, ap, yajl_t_array);
	assert_non_null(v);
	yajl_tree_free(root);
	free(body);
	a.nfields = 0;
	body = egoi_webhook_body(&a);
	assert_null(strstr(body, "fields"));
	free(body);
}

static void test_from_json(void **state)
{
	struct egoi_webhook w;
	yajl_val root;

	(void)state;
	memset(&w, 0, sizeof w);
	root = yajl_tree_parse("{\"webhook_id\":12,\"list_id\":3,\"url\":\"https://h/\","
			       "\"actions\":[\"email_open\"],\"fields\":[]}", NULL, 0);
	assert_int_equal(egoi_webhook_from_json(&w, root), 0);
	assert_int_equal(w.id, 12);
	assert_int_equal(w.list_id, 3);
	assert_string_equal(w.url, "https://h/");
	assert_int_equal(w.nactions, 1);
	assert_int_equal(w.nfields, 0);
	egoi_webhook_clear(&w);
	yajl_tree_free(root);
	root = yajl_tree_parse("{\"webhook_id\":\"12\",\"list_id\":3,\"url\":\"u\"}", NULL, 0);
	assert_int_equal(egoi_webhook_from_json(&w, root), -1);
	yajl_tree_free(root);
	root = yajl_tree_parse("{\"webhook_id\":1,\"list_id\":3,\"url\":\"u\",\"actions\":[1]}",
			       NULL, 0);
	assert_int_equal(egoi_webhook_from_json(&w, root), -1);
	yajl_tree_free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_strip_and_compare),
		cmocka_unit_test(test_with_token),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_same_and_body),
		cmocka_unit_test(test_from_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
