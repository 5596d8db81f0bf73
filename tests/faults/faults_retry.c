/*
 * faults_retry.c — a destination that is unavailable for a long stretch and
 * then recovers: rate-limited (429 with Retry-After in seconds), down for
 * maintenance (503 with Retry-After in seconds, then as an HTTP date), or
 * gone (connections refused). Batches keep coming the whole time.
 *
 * What each proves: retrying has no attempt limit, so when the destination
 * comes back every event answered 200 is delivered and nothing became a
 * dead letter; Retry-After is honoured as a lower bound, for the entry that
 * got it (no attempt of that delivery before the time it names) and for the
 * whole destination (no request starts before it); a delivery keeps its id
 * and body across attempts and X-Router-Attempt counts up.
 */
#include "faults/faults.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request that left the daemon before it read an answer with Retry-After
 * may still arrive after that answer; on loopback it does within
 * milliseconds, this is the slack for a loaded machine. */
#define RETRY_INFLIGHT_S 0.5
/* Clock slack between the destination stamping an answer and the daemon
 * reading it (the daemon's wait can only be longer). */
#define RETRY_SLACK_S 0.05

static const char forward_a_lua[] = "function route(event, meta)\n"
				    "  forward('@A@/in')\n"
				    "end\n";

struct retry_phase {
	enum faulty_mode mode;
	int status;
	const char *retry_after;
	double secs;
};

struct retry_check {
	long max_attempt;
	long early_same;     /* retries sent before their own delivery's Retry-After */
	long early_dest;     /* other requests sent before a Retry-After of the destination */
	long id_changed;     /* attempts whose body or attempt number broke their delivery's */
	size_t requests;
};

/* All records of a destination, in arrival order; *n set. Owned by the caller. */
static struct faulty_request *retry_records(struct faulty *f, size_t *n)
{
	size_t cnt = faulty_count(f), k = 0;
	struct faulty_request *q = calloc(cnt ? cnt : 1, sizeof(*q));

	assert_non_null(q);
	for (size_t i = 0; i < cnt; i++)
		if (faulty_get(f, i, &q[k]) == 0)
			k++;
	/* Appended in the order requests were read whole, by several threads:
	 * sort by the stamp to be exact. */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && q[j].at < q[j - 1].at; j--) {
			struct faulty_request tmp = q[j];
			q[j] = q[j - 1];
			q[j - 1] = tmp;
		}
	*n = k;
	return q;
}

/* Each request is counted at most once per kind of fault found. */
static struct retry_check retry_inspect(struct faulty *f)
{
	struct retry_check c = { 0 };
	size_t n;
	struct faulty_request *q = retry_records(f, &n);

	c.requests = n;
	for (size_t j = 0; j < n; j++) {
		int changed = 0, same_early = 0, dest_early = 0;
		if (q[j].attempt > c.max_attempt)
			c.max_attempt = q[j].attempt;
		for (size_t i = 0; i < j; i++) {
			int same = strcmp(q[i].delivery_id, q[j].delivery_id) == 0;
			if (same && (q[j].attempt <= q[i].attempt || q[j].body_len != q[i].body_len ||
				     memcmp(q[j].body, q[i].body, q[i].body_len) != 0))
				changed = 1;
			if (q[i].not_before <= 0 || q[j].at >= q[i].not_before - RETRY_SLACK_S)
				continue;
			if (same)
				same_early = 1;
			else if (q[j].at > q[i].at + RETRY_INFLIGHT_S)
				dest_early = 1;
		}
		c.id_changed += changed;
		c.early_same += same_early;
		c.early_dest += dest_early;
	}
	free(q);
	return c;
}

static void retry_scenario(struct fault *t, const char *name, const struct retry_phase *ph,
			   size_t nph)
{
	long seq = 1;
	double up, recovery = -1;

	fault_boot(t, forward_a_lua, FAULT_BACKOFF);
	for (size_t i = 0; i < nph; i++) {
		fault_mode(t, 0, ph[i].mode, ph[i].status, ph[i].retry_after);
		fault_load(t, &seq, 5, "a", 500, ph[i].secs);
	}
	fault_mode(t, 0, FAULTY_OK, 0, NULL);
	up = clock_mono();
	fault_load(t, &seq, 5, "a", 500, 2.0);
	int delivered = fault_wait_delivered(t, 60000);
	if (delivered == 0)
		recovery = clock_mono() - up;
	int drained = fault_wait_drained(t, 10000);
	struct retry_check c = retry_inspect(t->dst[0]);
	struct fault_figures fg =
		fault_figures(t, name,
			      "requests=%zu max_attempt=%ld early_same_delivery=%ld "
			      "early_destination=%ld id_changed=%ld recovery_s=%.1f",
			      c.requests, c.max_attempt, c.early_same, c.early_dest, c.id_changed,
			      recovery);
	assert_int_equal(delivered, 0);
	assert_int_equal(drained, 0);
	assert_int_equal(fg.dead_letters, 0);
	assert_int_equal(c.early_same, 0);
	assert_int_equal(c.early_dest, 0);
	assert_int_equal(c.id_changed, 0);
	t->h.passed = 1;
}

/* Rate-limited for 30 s: 429, Retry-After: 1. */
static void retry_after_429_30s(void **state)
{
	const struct retry_phase ph[] = { { FAULTY_STATUS, 429, "1", 30.0 } };

	retry_scenario(*state, "retry_after_429_30s", ph, 1);
}

/* Down for 75 s: 503 with Retry-After: 5 for 40 s, then the same five
 * seconds as an HTTP date for 35 s. */
static void retry_after_503_75s(void **state)
{
	const struct retry_phase ph[] = {
		{ FAULTY_STATUS, 503, "5", 40.0 },
		{ FAULTY_STATUS, 503, "+5", 35.0 },
	};

	retry_scenario(*state, "retry_after_503_75s", ph, 2);
}

/* Gone for 90 s: every connect refused, then up again on the same port. */
static void refused_90s(void **state)
{
	const struct retry_phase ph[] = { { FAULTY_REFUSE, 0, NULL, 90.0 } };

	retry_scenario(*state, "refused_90s", ph, 1);
}

const struct CMUnitTest faults_retry_tests[] = {
	FAULT_TEST(retry_after_429_30s),
	FAULT_TEST(retry_after_503_75s),
	FAULT_TEST(refused_90s),
};
const size_t faults_retry_count = sizeof(faults_retry_tests) / sizeof(faults_retry_tests[0]);
