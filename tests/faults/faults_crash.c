/*
 * faults_crash.c — the daemon is SIGKILLed in the middle of a load of
 * concurrent clients, then started again on the same data_dir.
 *
 * What it proves: a 200 means durable. Every event answered 200 before the
 * kill is delivered at least once after the restart (the destination is
 * healthy all along); what was in flight at the kill may be delivered twice
 * (at-least-once), which the figures show as duplicates.
 */
#include "faults/faults.h"
#include "clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRASH_CLIENTS 4
#define CRASH_EVENTS 20000         /* per client, in batches of 10..50 */
#define CRASH_KILL_AFTER_S 1.0     /* or once half of all events were answered */
#define CRASH_SEQ_STRIDE 1000000L  /* client c uses seqs c * stride + 1 .. */

static const char forward_a_lua[] = "function route(event, meta)\n"
				    "  forward('@A@/in')\n"
				    "end\n";

struct crash_client {
	const struct harness *h;
	atomic_int *stop;
	atomic_long *answered;         /* events answered 200, all clients */
	struct fault_ledger led;
	unsigned seed;
	long first;
};

static void *crash_client_main(void *arg)
{
	struct crash_client *c = arg;
	long seq = c->first, end = c->first + CRASH_EVENTS;

	while (seq < end && !atomic_load(c->stop)) {
		size_t n = 10 + (size_t)(rand_r(&c->seed) % 41);
		if (seq + (long)n > end)
			n = (size_t)(end - seq);
		long status = fault_post(c->h, &c->led, seq, n, "a");
		seq += (long)n;
		if (status == 200)
			atomic_fetch_add(c->answered, (long)n);
		else
			break;   /* the daemon is gone: this client is done */
	}
	return NULL;
}

static void kill9_under_load(void **state)
{
	struct fault *t = *state;
	struct crash_client cl[CRASH_CLIENTS];
	pthread_t th[CRASH_CLIENTS];
	atomic_int stop = 0;
	atomic_long answered = 0;

	/* The destination fails while the load runs, so the kill finds every
	 * answered event still in the outbox (some of them mid-attempt): only
	 * the restarted daemon can deliver them. */
	fault_mode(t, 0, FAULTY_STATUS, 503, NULL);
	fault_boot(t, forward_a_lua, FAULT_BACKOFF);
	memset(cl, 0, sizeof(cl));
	for (int i = 0; i < CRASH_CLIENTS; i++) {
		cl[i].h = &t->h;
		cl[i].stop = &stop;
		cl[i].answered = &answered;
		cl[i].seed = (unsigned)(i * 7919 + 17);
		cl[i].first = (long)(i + 1) * CRASH_SEQ_STRIDE + 1;
		assert_int_equal(pthread_create(&th[i], NULL, crash_client_main, &cl[i]), 0);
	}
	double t0 = clock_mono();
	while (clock_mono() - t0 < CRASH_KILL_AFTER_S &&
	       atomic_load(&answered) < CRASH_CLIENTS * CRASH_EVENTS / 2)
		harness_sleep_ms(10);
	double killed_at = clock_mono() - t0;
	long answered_at_kill = atomic_load(&answered);
	harness_kill(&t->h);
	atomic_store(&stop, 1);
	for (int i = 0; i < CRASH_CLIENTS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < CRASH_CLIENTS; i++) {
		assert_int_equal(fault_ledger_merge(&t->led, &cl[i].led), 0);
		fault_ledger_free(&cl[i].led);
	}
	size_t before_restart = 0;
	long *got = fault_delivered(t, &before_restart);
	free(got);

	fault_mode(t, 0, FAULTY_OK, 0, NULL);
	assert_int_equal(harness_start(&t->h), 0);
	int delivered = fault_wait_delivered(t, 60000);
	int drained = fault_wait_drained(t, 10000);
	struct faulty_stats st;
	faulty_stats(t->dst[0], &st);
	struct fault_figures fg =
		fault_figures(t, "kill9_under_load",
			      "clients=%d killed_after_s=%.2f answered_at_kill=%ld batches=%ld "
			      "batches200=%ld unanswered=%ld delivered_before_kill=%zu requests=%zu",
			      CRASH_CLIENTS, killed_at, answered_at_kill, t->led.batches, t->led.ok,
			      t->led.unanswered, before_restart, st.requests);
	assert_true(t->led.n > 0);
	assert_int_equal(before_restart, 0);
	assert_int_equal(delivered, 0);
	assert_int_equal(drained, 0);
	assert_int_equal(fg.dead_letters, 0);
	fault_stop_ok(t);
	t->h.passed = 1;
}

const struct CMUnitTest faults_crash_tests[] = {
	FAULT_TEST(kill9_under_load),
};
const size_t faults_crash_count = sizeof(faults_crash_tests) / sizeof(faults_crash_tests[0]);
