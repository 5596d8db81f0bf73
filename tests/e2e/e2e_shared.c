/*
 * e2e_shared.c — end-to-end scenarios of several routers on one PostgreSQL
 * outbox (outbox = postgresql://...), against a throw-away cluster the
 * suite starts itself (tests/pg_cluster.h; stopped when the suite exits):
 * two routers sharing the database deliver every forward exactly once
 * whichever one took the batch; the server stopped under load turns intake
 * into 503s and back, and nothing answered 200 is lost; a router killed
 * with deliveries in flight leaves leases that expire, and the other
 * router then delivers them (the same delivery ids); an unreachable
 * server at start is named in the error and the daemon exits 3, without
 * showing the password.
 */
#include "e2e/e2e.h"
#include "e2e/faulty.h"
#include "pg_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pg_cluster cluster;
static int cluster_up;

static void shared_cluster_stop(void)
{
	pg_cluster_stop(&cluster);
}

/* The suite's cluster, started on first use, with an empty schema. */
static const char *shared_cluster(void)
{
	if (!cluster_up) {
		assert_int_equal(pg_cluster_start(&cluster), 0);
		cluster_up = 1;
		assert_int_equal(atexit(shared_cluster_stop), 0);
	}
	assert_int_equal(pg_cluster_reset(&cluster), 0);
	return cluster.uri;
}

static const char rules_forward[] = "function route(e, m) forward('@RECV@/in') end\n";

/* A second router beside t's, on the same database. */
static void boot_second(struct e2e *t, struct harness *b, const char *extra)
{
	assert_int_equal(harness_init(b), 0);
	snprintf(b->extra, sizeof b->extra, "%s", extra);
	assert_int_equal(harness_write_rules(b, rules_forward, t->url), 0);
	assert_int_equal(harness_start(b), 0);
}

/* POSTs batch number i to h; returns the status (0: no answer). */
static long post_numbered(const struct harness *h, int i)
{
	struct harness_response resp;
	char body[96];
	long status;
	int n = snprintf(body, sizeof body, "{\"events\":[{\"action\":\"a\",\"n\":%d}]}", i);

	if (harness_post(h, body, (size_t)n, &resp) != 0)
		return 0;
	status = resp.status;
	harness_response_free(&resp);
	return status;
}

/* Every request the receiver got carries "n":i for one i < n at most once,
 * and a distinct delivery id; returns how many of the n arrived. */
static int count_delivered(struct e2e *t, int n, const char *answered)
{
	int *seen = calloc((size_t)n, sizeof *seen), got = 0;
	size_t total = receiver_count(t->r);

	assert_non_null(seen);
	for (size_t k = 0; k < total; k++) {
		const struct recv_request *q = receiver_get(t->r, k);
		const char *p = strstr(q->body, "\"n\":");
		int i = p ? atoi(p + 4) : -1;

		assert_true(i >= 0 && i < n);
		assert_true(answered[i]);      /* only what was answered 200 ... */
		assert_int_equal(seen[i], 0);  /* ... and each of it once */
		seen[i] = 1;
		assert_non_null(recv_header(q, "X-Router-Delivery-Id"));
		for (size_t j = 0; j < k; j++)
			assert_string_not_equal(recv_header(receiver_get(t->r, j),
							    "X-Router-Delivery-Id"),
						recv_header(q, "X-Router-Delivery-Id"));
		got++;
	}
	free(seen);
	return got;
}

static void two_routers_share_one_postgresql_outbox(void **state)
{
	struct e2e *t = *state;
	struct harness b;
	char extra[256], answered[40] = { 0 };
	int n = 40;

	char *out = NULL, *err = NULL;

	snprintf(extra, sizeof extra, "outbox = %s\n", shared_cluster());
	e2e_boot(t, rules_forward, extra);
	boot_second(t, &b, extra);
	const char *check[] = { harness_bin(), "check", "-c", b.conf, NULL };
	assert_int_equal(harness_run(&b, check, NULL, 20000, &out, &err), 0);
	assert_non_null(out);
	assert_non_null(strstr(out, "reachable, schema version 1"));
	free(out);
	free(err);
	/* the load balancer's part: batches alternate between the two */
	for (int i = 0; i < n; i++) {
		assert_int_equal(post_numbered(i % 2 ? &b : &t->h, i), 200);
		answered[i] = 1;
	}
	assert_int_equal(receiver_wait(t->r, (size_t)n, 20000), 0);
	harness_sleep_ms(1500);   /* time for a duplicate to show up */
	assert_int_equal(count_delivered(t, n, answered), n);
	assert_int_equal(receiver_count(t->r), (size_t)n);
	b.passed = 1;
	harness_cleanup(&b);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void postgresql_unreachable_at_start_exits_3(void **state)
{
	struct e2e *t = *state;
	char *out = NULL, *err = NULL;
	int rc;

	snprintf(t->h.extra, sizeof t->h.extra,
		 "outbox = postgresql://egoi:s3cret@/postgres?host=/nonexistent/pg&port=5999\n");
	assert_int_equal(harness_write_rules(&t->h, rules_forward, t->url), 0);
	assert_int_equal(harness_write_config(&t->h), 0);
	const char *argv[] = { harness_bin(), "run", "-c", t->h.conf, NULL };
	rc = harness_run(&t->h, argv, NULL, 20000, &out, &err);
	assert_int_equal(rc, 3);
	assert_non_null(err);
	assert_non_null(strstr(err, "postgresql at /nonexistent/pg:5999/postgres"));
	assert_null(strstr(err, "s3cret"));
	assert_null(out && strstr(out, "s3cret") ? out : NULL);
	free(out);
	free(err);
	/* `check` reaches the outbox too, and fails the same way */
	const char *check[] = { harness_bin(), "check", "-c", t->h.conf, NULL };
	rc = harness_run(&t->h, check, NULL, 20000, &out, &err);
	assert_int_equal(rc, 3);
	assert_non_null(err);
	assert_non_null(strstr(err, "postgresql at /nonexistent/pg:5999/postgres"));
	assert_null(strstr(err, "s3cret"));
	free(out);
	free(err);
	e2e_pass(t);
}

/* Writes rules forwarding to url and starts h on the shared database. */
static void boot_forwarding_to(struct harness *h, const char *url, const char *extra)
{
	const char *marks[] = { "@F@" }, *values[] = { url };

	snprintf(h->extra, sizeof h->extra, "%s", extra);
	assert_int_equal(harness_write_rules_marks(h, "function route(e, m) forward('@F@/in') end\n",
						   marks, values, 1), 0);
	assert_int_equal(harness_start(h), 0);
}

/*
 * Router A claims five forwards and sends them to a destination that never
 * answers; A is killed (-9) with their leases held. Router B, started on
 * the same database, cannot take them before the lease (2 x forward_timeout
 * + 30 s) expires, then delivers each, with the delivery id A had sent.
 */
static void killed_router_leases_expire_and_other_delivers(void **state)
{
	struct e2e *t = *state;
	struct faulty *f = faulty_start();
	struct faulty_stats st;
	struct faulty_request q;
	struct harness b;
	char extra[320], url[64], ids[5][128];
	size_t in_flight;
	int n = 5;

	assert_non_null(f);
	faulty_url(f, url, sizeof url);
	snprintf(extra, sizeof extra, "outbox = %s\nforward_timeout = 3s\n", shared_cluster());
	assert_int_equal(faulty_set_mode(f, FAULTY_BLACKHOLE, 0, NULL), 0);
	boot_forwarding_to(&t->h, url, extra);
	for (int i = 0; i < n; i++)
		assert_int_equal(post_numbered(&t->h, i), 200);
	for (int k = 0; k < 100 && faulty_count(f) < (size_t)n; k++)
		harness_sleep_ms(20);
	in_flight = faulty_count(f);
	assert_int_equal(in_flight, (size_t)n);   /* all claimed, none answered */
	harness_kill(&t->h);
	for (int i = 0; i < n; i++) {
		assert_int_equal(faulty_get(f, (size_t)i, &q), 0);
		snprintf(ids[i], sizeof ids[i], "%s", q.delivery_id);
	}
	assert_int_equal(faulty_set_mode(f, FAULTY_OK, 0, NULL), 0);

	assert_int_equal(harness_init(&b), 0);
	boot_forwarding_to(&b, url, extra);
	harness_sleep_ms(3000);
	faulty_stats(f, &st);
	assert_int_equal(st.answered_2xx, 0);   /* still leased by the dead node */
	for (int k = 0; k < 600; k++) {
		faulty_stats(f, &st);
		if (st.distinct_ok >= (size_t)n)
			break;
		harness_sleep_ms(100);
	}
	harness_sleep_ms(1000);
	faulty_stats(f, &st);
	assert_int_equal(st.distinct_ok, (size_t)n);
	assert_int_equal(st.duplicates, 0);
	/* the ids B sent are the ones A had sent */
	for (size_t i = in_flight; i < faulty_count(f); i++) {
		int same = 0;

		assert_int_equal(faulty_get(f, i, &q), 0);
		for (int j = 0; j < n; j++)
			same |= strcmp(q.delivery_id, ids[j]) == 0;
		assert_true(same);
	}
	fprintf(stderr, "[e2e] router killed with leases held: sent %d, answered 200 %d, "
			"delivered %zu, duplicates (in flight at the kill) %zu, lost 0\n",
		n, n, st.distinct_ok, in_flight);
	b.passed = 1;
	harness_cleanup(&b);
	faulty_stop(f);
	e2e_pass(t);
}

/* Runs last: a failure may leave the cluster stopped. */
static void postgresql_stopped_under_load_then_recovers(void **state)
{
	struct e2e *t = *state;
	char extra[256], answered[200] = { 0 };
	int i = 0, ok = 0, refused = 0;

	snprintf(extra, sizeof extra, "outbox = %s\n", shared_cluster());
	e2e_boot(t, rules_forward, extra);
	for (; i < 10; i++) {
		assert_int_equal(post_numbered(&t->h, i), 200);
		answered[i] = 1;
		ok++;
	}
	assert_int_equal(pg_cluster_halt(&cluster), 0);
	for (int k = 0; k < 10; k++, i++) {
		long st = post_numbered(&t->h, i);

		assert_int_equal(st, 503);   /* never 200 while nothing can commit */
		refused++;
	}
	assert_int_equal(pg_cluster_resume(&cluster), 0);
	/* back by itself: the first batches after may still meet the old session */
	for (int k = 0; k < 100 && i < 200; k++, i++) {
		long st = post_numbered(&t->h, i);

		assert_true(st == 200 || st == 503);
		if (st == 200) {
			answered[i] = 1;
			if (++ok >= 20)
				break;
		} else {
			refused++;
			harness_sleep_ms(100);
		}
	}
	assert_int_equal(ok, 20);
	assert_int_equal(receiver_wait(t->r, (size_t)ok, 20000), 0);
	harness_sleep_ms(1000);
	assert_int_equal(count_delivered(t, i + 1, answered), ok);
	fprintf(stderr, "[e2e] postgresql stopped under load: sent %d, answered 200 %d, "
			"503 %d, delivered %zu, duplicates 0, lost 0\n",
		i + 1, ok, refused, receiver_count(t->r));
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_shared_tests[] = {
	cmocka_unit_test_setup_teardown(two_routers_share_one_postgresql_outbox, e2e_setup,
					e2e_teardown),
	cmocka_unit_test_setup_teardown(postgresql_unreachable_at_start_exits_3, e2e_setup,
					e2e_teardown),
	cmocka_unit_test_setup_teardown(killed_router_leases_expire_and_other_delivers, e2e_setup,
					e2e_teardown),
	cmocka_unit_test_setup_teardown(postgresql_stopped_under_load_then_recovers, e2e_setup,
					e2e_teardown),
};
const size_t e2e_shared_count = sizeof e2e_shared_tests / sizeof e2e_shared_tests[0];
