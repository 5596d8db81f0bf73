/*
 * faults_isolation.c — one destination turns into a black hole (accepts,
 * reads, never answers) beside a healthy one, under steady load.
 *
 * What it proves: claiming and queueing are per destination, so the black
 * hole never delays the healthy destination's deliveries (its delivery
 * delay, arrival minus the moment the batch was answered 200, stays under
 * a second at p99); the black-holed destination's circuit shows as not
 * closed in /metrics while it lasts; and once it answers again its backlog
 * is delivered, with nothing lost and no dead letters.
 */
#include "faults/faults.h"
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISO_HOLE_S 30.0       /* how long A is a black hole */
#define ISO_AFTER_S 5.0       /* load after A recovers */
#define ISO_PERIOD_MS 250     /* one batch every ... */
#define ISO_BATCH 4           /* events per batch, half to each destination */
#define ISO_P99_BOUND_S 1.0   /* the healthy destination's delivery delay at p99 */

static const char split_lua[] = "function route(event, meta)\n"
				"  if event.dest == 'a' then forward('@A@/in')\n"
				"  else forward('@B@/in') end\n"
				"end\n";

struct iso_metrics {
	int polls, seen;          /* scrapes, scrapes where A's state series was present */
	int nonzero;              /* scrapes where it was not 0 (open or half-open) */
	double backlog_max;       /* largest egoi_router_destination_backlog of A */
};

static void iso_poll(struct fault *t, struct iso_metrics *m)
{
	char series[160];
	double v;

	m->polls++;
	snprintf(series, sizeof(series), "egoi_router_destination_state{name=\"%s\"}", t->url[0]);
	if (harness_metric(&t->h, series, &v) == 0) {
		m->seen++;
		if (v != 0)
			m->nonzero++;
	}
	snprintf(series, sizeof(series), "egoi_router_destination_backlog{name=\"%s\"}", t->url[0]);
	if (harness_metric(&t->h, series, &v) == 0 && v > m->backlog_max)
		m->backlog_max = v;
}

/* Posts the steady load for secs; scrapes /metrics every 2 s after the first
 * 5 s when m is not NULL. */
static void iso_load(struct fault *t, long *seq, double secs, struct iso_metrics *m)
{
	double start = clock_mono(), end = start + secs, last_poll = start;

	while (clock_mono() < end) {
		double next = clock_mono() + ISO_PERIOD_MS / 1000.0;
		long status = fault_post(&t->h, &t->led, *seq, ISO_BATCH, "ab");
		if (status != 200)
			fprintf(stderr, "[faults] batch from seq %ld answered %ld\n", *seq, status);
		assert_int_equal(status, 200);
		*seq += ISO_BATCH;
		if (m != NULL && clock_mono() - start > 5.0 && clock_mono() - last_poll >= 2.0) {
			iso_poll(t, m);
			last_poll = clock_mono();
		}
		double left = next - clock_mono();
		if (left > 0)
			harness_sleep_ms((long)(left * 1000.0));
	}
}

static int iso_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Delivery delays of the events sent to B (odd positions of "ab" batches):
 * the first 2xx arrival of each seq minus its 200's time, sorted; *n set.
 * Undelivered events count as +inf, so they fail any bound. */
static double *iso_delays(struct fault *t, long max_seq, size_t *n)
{
	double *first = calloc((size_t)max_seq + 1, sizeof(*first));
	double *d = calloc(t->led.n ? t->led.n : 1, sizeof(*d));
	size_t cnt = faulty_count(t->dst[1]);

	assert_non_null(first);
	assert_non_null(d);
	for (size_t i = 0; i < cnt; i++) {
		struct faulty_request q;
		if (faulty_get(t->dst[1], i, &q) != 0 || q.status / 100 != 2)
			continue;
		for (size_t j = 0; j < q.ntags; j++)
			if (q.tags[j] >= 1 && q.tags[j] <= max_seq &&
			    (first[q.tags[j]] == 0 || q.at < first[q.tags[j]]))
				first[q.tags[j]] = q.at;
	}
	*n = 0;
	for (size_t i = 0; i < t->led.n; i++) {
		long s = t->led.seq[i];
		if ((s - 1) % ISO_BATCH % 2 != 1)
			continue;   /* an event for A */
		double v = first[s] == 0 ? INFINITY : first[s] - t->led.at[i];
		d[(*n)++] = v < 0 ? 0 : v;   /* it may beat the 200 to the client */
	}
	free(first);
	qsort(d, *n, sizeof(*d), iso_cmp_double);
	return d;
}

static void blackhole_beside_healthy(void **state)
{
	struct fault *t = *state;
	struct iso_metrics m = { 0 };
	long seq = 1;
	size_t n = 0;

	fault_boot(t, split_lua, FAULT_BACKOFF);
	fault_mode(t, 0, FAULTY_BLACKHOLE, 0, NULL);
	iso_load(t, &seq, ISO_HOLE_S, &m);
	fault_mode(t, 0, FAULTY_OK, 0, NULL);
	double up = clock_mono();
	iso_load(t, &seq, ISO_AFTER_S, NULL);
	int delivered = fault_wait_delivered(t, 60000);
	double recovery = delivered == 0 ? clock_mono() - up : -1;
	int drained = fault_wait_drained(t, 10000);

	double *d = iso_delays(t, seq - 1, &n);
	assert_true(n > 0);
	double p50 = d[(n - 1) / 2], p99 = d[(size_t)ceil(0.99 * (double)n) - 1], max = d[n - 1];
	struct faulty_stats sa;
	faulty_stats(t->dst[0], &sa);
	struct fault_figures fg =
		fault_figures(t, "blackhole_beside_healthy",
			      "healthy_events=%zu healthy_delay_p50=%.3f healthy_delay_p99=%.3f "
			      "healthy_delay_max=%.3f blackhole_requests=%zu state_scrapes=%d "
			      "state_seen=%d state_not_closed=%d backlog_max=%.0f recovery_s=%.1f",
			      n, p50, p99, max, sa.requests, m.polls, m.seen, m.nonzero,
			      m.backlog_max, recovery);
	free(d);
	assert_true(p99 < ISO_P99_BOUND_S);
	assert_true(m.nonzero > 0);
	assert_int_equal(delivered, 0);
	assert_int_equal(drained, 0);
	assert_int_equal(fg.dead_letters, 0);
	t->h.passed = 1;
}

const struct CMUnitTest faults_isolation_tests[] = {
	FAULT_TEST(blackhole_beside_healthy),
};
const size_t faults_isolation_count = sizeof(faults_isolation_tests) / sizeof(faults_isolation_tests[0]);
