/*
 * test_example_rules.c — the rule files shipped in rules/ do what their
 * comments and the README say, run through the same routing as the daemon
 * (pipeline_route, dry run) on the 38-action fixture.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pipeline.h"
#include "rules.h"

struct routed {
	struct config cfg;
	struct pipeline_shared sh;
	struct pipeline pipe;
	struct pipeline_result res;
	char *body;
	size_t len;
};

/* Routes the fixture through rules; r->pipe.decisions holds the decisions. */
static void route_fixture(struct routed *r, const char *rules, const char *fixture)
{
	memset(r, 0, sizeof *r);
	assert_int_equal(config_defaults(&r->cfg), 0);
	free(r->cfg.rules_path);
	r->cfg.rules_path = strdup(rules);
	/* as deployed: rules_env lists what the shipped rules read */
	r->cfg.rules_env = strdup("CRM_URL, SLACK_URL, CRM_SECRET");
	r->sh.cfg = &r->cfg;
	rules_current_init(&r->sh.published);
	pipeline_init(&r->pipe, &r->sh);
	r->body = tu_read_file(fixture, &r->len);
	assert_non_null(r->body);
	assert_int_equal(pipeline_route(&r->pipe, r->body, r->len, 1.0, "127.0.0.1", "t",
					&r->res), 0);
}

static void routed_free(struct routed *r)
{
	pipeline_end(&r->pipe);
	pipeline_free(&r->pipe);
	rules_current_free(&r->sh.published);
	config_free(&r->cfg);
	free(r->body);
}

/* The decision for the event whose action is `action` (the fixture has one each). */
static const struct decision *decision_for(struct routed *r, const char *action, size_t *n)
{
	const struct decision *first = NULL;

	*n = 0;
	for (size_t i = 0; i < r->pipe.decisions.count; i++) {
		const struct decision *it = &r->pipe.decisions.items[i];
		const char *a = pipeline_event_action(&r->pipe, it->event);

		if (a && strcmp(a, action) == 0) {
			if (!first)
				first = it;
			(*n)++;
		}
	}
	return first;
}

static void example_without_urls_writes_files(void **state)
{
	struct routed r;
	const struct decision *it;
	size_t n;

	(void)state;
	unsetenv("CRM_URL");
	unsetenv("SLACK_URL");
	route_fixture(&r, "rules/example.lua", "tests/fixtures/batch-all-actions.json");
	assert_int_equal(r.res.accepted, 38);
	assert_int_equal(r.res.rejected, 0);

	it = decision_for(&r, "email_hard_bounce", &n);
	assert_int_equal(n, 1);
	assert_int_equal(it->kind, DECISION_WRITE);
	assert_string_equal(it->target, "crm.jsonl");
	assert_null(it->line); /* the event's own JSON */

	it = decision_for(&r, "new_order", &n);
	assert_int_equal(it->kind, DECISION_WRITE);
	assert_string_equal(it->target, "slack.jsonl");
	assert_non_null(strstr(it->line, "\"text\":\"New order 1004844 from isabel.vieira@example.com"));

	it = decision_for(&r, "email_open", &n);
	assert_int_equal(it->kind, DECISION_WRITE);
	assert_string_equal(it->target, "engagement.jsonl");

	it = decision_for(&r, "product_view", &n);
	assert_int_equal(it->kind, DECISION_DROP);
	assert_string_equal(it->reason, "not routed: product_view");
	routed_free(&r);
}

static void example_with_urls_forwards(void **state)
{
	struct routed r;
	const struct decision *it;
	size_t n, forwards = 0;

	(void)state;
	setenv("CRM_URL", "https://crm.example.com/hook", 1);
	setenv("SLACK_URL", "https://hooks.slack.example.com/x", 1);
	route_fixture(&r, "rules/example.lua", "tests/fixtures/batch-all-actions.json");

	for (const char *const *a = (const char *const[]){ "email_hard_bounce",
		"email_spam_complaint", "unsubscribe", NULL }; *a; a++) {
		it = decision_for(&r, *a, &n);
		assert_int_equal(n, 1);
		assert_int_equal(it->kind, DECISION_FORWARD);
		assert_string_equal(it->target, "https://crm.example.com/hook");
		assert_null(it->body); /* default: original bytes, merged per batch */
		assert_string_equal(it->name, "crm");
	}
	it = decision_for(&r, "new_order", &n);
	assert_int_equal(it->kind, DECISION_FORWARD);
	assert_string_equal(it->target, "https://hooks.slack.example.com/x");
	assert_true(it->is_json);
	assert_string_equal(it->body,
			    "{\"text\":\"New order 1004844 from isabel.vieira@example.com (list 3)\"}");
	for (size_t i = 0; i < r.pipe.decisions.count; i++)
		forwards += r.pipe.decisions.items[i].kind == DECISION_FORWARD;
	assert_int_equal(forwards, 4);
	routed_free(&r);
	unsetenv("CRM_URL");
	unsetenv("SLACK_URL");
}

static void slack_rules_post_text(void **state)
{
	struct routed r;
	const struct decision *it;
	size_t n;

	(void)state;
	setenv("SLACK_URL", "https://hooks.slack.example.com/x", 1);
	route_fixture(&r, "rules/slack.lua", "tests/fixtures/batch-all-actions.json");
	it = decision_for(&r, "new_order", &n);
	assert_int_equal(it->kind, DECISION_FORWARD);
	assert_string_equal(it->body,
			    "{\"text\":\"New order 1004844 from isabel.vieira@example.com\"}");
	it = decision_for(&r, "cart_update", &n);
	assert_int_equal(it->kind, DECISION_FORWARD);
	assert_non_null(strstr(it->body, "\"text\":\"Cart "));
	it = decision_for(&r, "email_open", &n);
	assert_int_equal(it->kind, DECISION_DROP);
	routed_free(&r);
	unsetenv("SLACK_URL");
}

static void slack_rules_refuse_to_start_without_url(void **state)
{
	struct rules_options opt = { .path = "rules/slack.lua" };
	struct rules *r;
	char err[512];

	(void)state;
	unsetenv("SLACK_URL");
	r = rules_new(&opt, err, sizeof err);
	assert_null(r);
	assert_non_null(strstr(err, "SLACK_URL"));
}

static void crm_rules_sign_status_updates(void **state)
{
	struct routed r;
	const struct decision *it;
	size_t n;

	(void)state;
	setenv("CRM_URL", "https://crm.example.com/hook", 1);
	setenv("CRM_SECRET", "s3cret", 1);
	route_fixture(&r, "rules/crm.lua", "tests/fixtures/batch-all-actions.json");
	it = decision_for(&r, "email_hard_bounce", &n);
	assert_int_equal(n, 1);
	assert_int_equal(it->kind, DECISION_FORWARD);
	assert_string_equal(it->content_type, "application/json");
	/* action_date stays an integer through json.encode */
	assert_non_null(strstr(it->body, "\"status\":\"bounced\""));
	assert_non_null(strstr(it->body, "\"at\":1778577537"));
	assert_non_null(strstr(it->body, "\"contact_ids\":[\"8d639eb2d1\"]"));
	assert_non_null(strstr(it->headers, "X-Signature: sha256="));
	it = decision_for(&r, "email_open", &n);
	assert_int_equal(it->kind, DECISION_DROP);
	routed_free(&r);
	unsetenv("CRM_URL");
	unsetenv("CRM_SECRET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(example_without_urls_writes_files),
		cmocka_unit_test(example_with_urls_forwards),
		cmocka_unit_test(slack_rules_post_text),
		cmocka_unit_test(slack_rules_refuse_to_start_without_url),
		cmocka_unit_test(crm_rules_sign_status_updates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
