/*
 * e2e_loops.c — end-to-end scenarios of forward loop protection: every
 * forward carries X-Router-Hop (incoming + 1), intake answers 508 to a
 * batch whose hop count reached max_hops and counts it, and forward() to
 * the router's own endpoint is a rule error, not a delivery.
 */
#include "e2e/e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char batch[] = "{\"events\":[{\"action\":\"a\"}]}";

/* POSTs the batch with the token and an X-Router-Hop header (NULL = none). */
static struct harness_response post_hop(struct e2e *t, const char *hop)
{
	struct harness_response resp;
	char line[64];
	const char *headers[2] = { NULL, NULL };

	if (hop) {
		snprintf(line, sizeof line, "X-Router-Hop: %s", hop);
		headers[0] = line;
	}
	assert_int_equal(harness_request(&t->h, "POST", "/hooks/egoi", "application/json",
					 headers, batch, sizeof batch - 1, 1, &resp), 0);
	return resp;
}

static void forwards_carry_the_hop_count(void **state)
{
	struct e2e *t = *state;
	struct harness_response resp;
	char *reason;

	e2e_boot(t, "function route(e, m)\n"
		    "  if e.action == 'spoof' then\n"
		    "    forward('@RECV@/spoof', { headers = { ['X-Router-Hop'] = '0' } })\n"
		    "  else forward('@RECV@/hop') end\n"
		    "end\n", NULL);
	resp = post_hop(t, NULL);                     /* from E-goi: no header */
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	assert_non_null(recv_header(receiver_get(t->r, 0), "X-Router-Hop"));
	assert_string_equal(recv_header(receiver_get(t->r, 0), "X-Router-Hop"), "1");

	resp = post_hop(t, "1");                      /* from another router */
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	assert_string_equal(recv_header(receiver_get(t->r, 1), "X-Router-Hop"), "2");

	/* a rule cannot set (or reset) the count: its event is a rule error */
	resp = e2e_post_expect(t, "{\"events\":[{\"action\":\"spoof\"}]}", 31, 200);
	e2e_assert_counts(&resp, 1, 0);
	harness_response_free(&resp);
	reason = harness_sql_text(&t->h, "SELECT reason FROM dead_letters WHERE kind = 'rule_error'");
	assert_non_null(reason);
	assert_non_null(strstr(reason, "header 'X-Router-Hop' is set by the router"));
	free(reason);
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 2);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void batch_at_max_hops_gets_508_and_is_counted(void **state)
{
	struct e2e *t = *state;
	struct harness_response resp;
	double refused = -1;

	e2e_boot(t, "function route(e, m) forward('@RECV@/hop') end\n", "max_hops = 2\n");
	resp = post_hop(t, "2");
	assert_int_equal(resp.status, 508);
	assert_non_null(strstr(resp.body, "forward loop"));
	harness_response_free(&resp);
	resp = post_hop(t, "7");
	assert_int_equal(resp.status, 508);
	harness_response_free(&resp);
	resp = post_hop(t, "two");
	assert_int_equal(resp.status, 400);
	harness_response_free(&resp);
	assert_int_equal(harness_metric(&t->h, "egoi_router_loops_refused_total", &refused), 0);
	assert_true(refused == 2);
	assert_int_equal(harness_metric(&t->h, "egoi_router_requests_total{code=\"508\"}",
					&refused), 0);
	assert_true(refused == 2);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM deliveries"), 0);

	/* under the limit the batch goes on, one hop further */
	resp = post_hop(t, "1");
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	assert_string_equal(recv_header(receiver_get(t->r, 0), "X-Router-Hop"), "2");
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 1);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void forward_to_own_endpoint_is_a_rule_error(void **state)
{
	struct e2e *t = *state;
	struct harness_response resp;
	char body[256], *reason;

	/* the port is known once the daemon runs: the event carries the url */
	e2e_boot(t, "function route(e, m) forward(e.to) end\n", NULL);
	snprintf(body, sizeof body,
		 "{\"events\":[{\"action\":\"a\",\"to\":\"https://localhost:%d/hooks/egoi?token=x\"}]}",
		 t->h.port);
	resp = e2e_post_expect(t, body, strlen(body), 200);
	e2e_assert_counts(&resp, 1, 0);
	harness_response_free(&resp);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM deliveries"), 0);
	reason = harness_sql_text(&t->h, "SELECT reason FROM dead_letters WHERE kind = 'rule_error'");
	assert_non_null(reason);
	assert_non_null(strstr(reason, "own endpoint"));
	free(reason);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_loops_tests[] = {
	E2E_TEST(forwards_carry_the_hop_count),
	E2E_TEST(batch_at_max_hops_gets_508_and_is_counted),
	E2E_TEST(forward_to_own_endpoint_is_a_rule_error),
};
const size_t e2e_loops_count = sizeof(e2e_loops_tests) / sizeof(e2e_loops_tests[0]);
