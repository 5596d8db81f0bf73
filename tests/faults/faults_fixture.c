/*
 * faults_fixture.c — the fault suite's fixture (see faults.h): set-up and
 * teardown, test batches, the ledger of 200s, waits and the FIGURES line.
 *
 * Threads: fault_post, fault_batch and the ledger functions run on any
 * thread (no cmocka, no shared state); the rest on the test thread.
 */
#include "faults/faults.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>

int fault_setup(void **state)
{
	struct fault *t = calloc(1, sizeof(*t));

	if (t == NULL || harness_init(&t->h) != 0)
		goto fail;
	/* The daemon's own attempt limit applies (see faults.h). */
	snprintf(t->h.omit, sizeof(t->h.omit), "forward_max_attempts");
	for (int i = 0; i < FAULT_DESTS; i++) {
		t->dst[i] = faulty_start();
		if (t->dst[i] == NULL)
			goto fail;
		faulty_url(t->dst[i], t->url[i], sizeof(t->url[i]));
	}
	*state = t;
	return 0;
fail:
	if (t != NULL)
		for (int i = 0; i < FAULT_DESTS; i++)
			faulty_stop(t->dst[i]);
	free(t);
	return -1;
}

int fault_teardown(void **state)
{
	struct fault *t = *state;

	/* The daemon holds files on a mounted filesystem: stop it first. */
	if (t->h.pid > 0) {
		fprintf(stderr, "[faults] daemon still running at teardown; stopping it\n");
		harness_stop(&t->h, 10000, NULL);
	}
	if (t->mnt[0] != '\0' && umount2(t->mnt, MNT_DETACH) != 0)
		perror("[faults] umount");
	harness_cleanup(&t->h);
	for (int i = 0; i < FAULT_DESTS; i++)
		faulty_stop(t->dst[i]);
	fault_ledger_free(&t->led);
	free(t);
	return 0;
}

void fault_boot(struct fault *t, const char *lua, const char *extra_conf)
{
	const char *marks[] = { "@A@", "@B@" };
	const char *values[] = { t->url[0], t->url[1] };

	snprintf(t->h.extra, sizeof(t->h.extra), "%s", extra_conf != NULL ? extra_conf : "");
	assert_int_equal(harness_write_rules_marks(&t->h, lua, marks, values, 2), 0);
	assert_int_equal(harness_start(&t->h), 0);
}

void fault_stop_ok(struct fault *t)
{
	int status = harness_stop(&t->h, 15000, NULL);

	assert_int_not_equal(status, -1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

void fault_mode(struct fault *t, int dst, enum faulty_mode mode, int status,
		const char *retry_after)
{
	assert_int_equal(faulty_set_mode(t->dst[dst], mode, status, retry_after), 0);
}

char *fault_batch(long first, size_t n, const char *dests)
{
	size_t cap = 32 + n * 80, len;
	char *out = malloc(cap);
	size_t nd = strlen(dests);

	if (out == NULL)
		return NULL;
	len = (size_t)snprintf(out, cap, "{\"events\":[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len,
					"%s{\"action\":\"fault_test\",\"seq\":%ld,\"dest\":\"%c\"}",
					i ? "," : "", first + (long)i, dests[i % nd]);
	snprintf(out + len, cap - len, "]}");
	return out;
}

static int fault_ledger_grow(struct fault_ledger *led, size_t more)
{
	if (led->n + more <= led->cap)
		return 0;
	size_t cap = led->cap ? led->cap : 256;
	while (cap < led->n + more)
		cap *= 2;
	long *s = realloc(led->seq, cap * sizeof(*s));
	if (s == NULL)
		return -1;
	led->seq = s;
	double *a = realloc(led->at, cap * sizeof(*a));
	if (a == NULL)
		return -1;
	led->at = a;
	led->cap = cap;
	return 0;
}

long fault_post(const struct harness *h, struct fault_ledger *led, long first, size_t n,
		const char *dests)
{
	char *body = fault_batch(first, n, dests);
	struct harness_response r = { 0 };
	long status = 0, acc = -1, rej = -1;

	if (body == NULL)
		return 0;
	led->batches++;
	led->sent += (long)n;
	if (harness_post(h, body, strlen(body), &r) != 0) {
		led->unanswered++;
		goto out;
	}
	status = r.status;
	if (status != 200) {
		if (status == 503)
			led->unavailable++;
		else
			led->other++;
		goto out;
	}
	double at = clock_wall();
	led->ok++;
	if (harness_counts(&r, &acc, &rej) != 0 || acc != (long)n || rej != 0) {
		fprintf(stderr, "[faults] 200 with counts %s for %zu events\n", r.body, n);
		led->bad_counts++;
	}
	if (fault_ledger_grow(led, n) != 0) {
		fprintf(stderr, "[faults] out of memory in the ledger\n");
		led->bad_counts++;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		led->seq[led->n] = first + (long)i;
		led->at[led->n++] = at;
	}
out:
	harness_response_free(&r);
	free(body);
	return status;
}

int fault_ledger_merge(struct fault_ledger *dst, const struct fault_ledger *src)
{
	if (fault_ledger_grow(dst, src->n) != 0)
		return -1;
	memcpy(dst->seq + dst->n, src->seq, src->n * sizeof(*src->seq));
	memcpy(dst->at + dst->n, src->at, src->n * sizeof(*src->at));
	dst->n += src->n;
	dst->sent += src->sent;
	dst->batches += src->batches;
	dst->ok += src->ok;
	dst->unavailable += src->unavailable;
	dst->other += src->other;
	dst->unanswered += src->unanswered;
	dst->bad_counts += src->bad_counts;
	return 0;
}

void fault_ledger_free(struct fault_ledger *led)
{
	free(led->seq);
	free(led->at);
	memset(led, 0, sizeof(*led));
}

static int fault_cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

long *fault_delivered(struct fault *t, size_t *n)
{
	long *all = NULL;
	size_t total = 0;

	*n = 0;
	for (int i = 0; i < FAULT_DESTS; i++) {
		size_t k = 0;
		long *tags = faulty_tags(t->dst[i], &k);
		long *na = k ? realloc(all, (total + k) * sizeof(*all)) : all;
		if (na == NULL) {
			free(tags);
			free(all);
			return NULL;
		}
		all = na;
		if (k)
			memcpy(all + total, tags, k * sizeof(*tags));
		total += k;
		free(tags);
	}
	if (all == NULL)
		return NULL;
	qsort(all, total, sizeof(*all), fault_cmp_long);
	for (size_t i = 0; i < total; i++)
		if (*n == 0 || all[*n - 1] != all[i])
			all[(*n)++] = all[i];
	return all;
}

int fault_has(const long *sorted, size_t n, long seq)
{
	return sorted != NULL && bsearch(&seq, sorted, n, sizeof(*sorted), fault_cmp_long) != NULL;
}

/* Seqs of the ledger not delivered. */
static long fault_missing(struct fault *t)
{
	size_t n = 0;
	long *got = fault_delivered(t, &n), missing = 0;

	for (size_t i = 0; i < t->led.n; i++)
		if (!fault_has(got, n, t->led.seq[i]))
			missing++;
	free(got);
	return missing;
}

int fault_wait_delivered(struct fault *t, long timeout_ms)
{
	for (long waited = 0;; waited += 250) {
		if (fault_missing(t) == 0)
			return 0;
		if (waited >= timeout_ms)
			return -1;
		harness_sleep_ms(250);
	}
}

int fault_wait_drained(struct fault *t, long timeout_ms)
{
	return harness_sql_wait(&t->h, "SELECT count(*) FROM deliveries", 0, timeout_ms);
}

struct fault_figures fault_figures(struct fault *t, const char *name, const char *fmt, ...)
{
	struct fault_figures fg = { 0 };
	size_t n = 0;
	long *got = fault_delivered(t, &n);
	char extra[512] = "";

	fg.sent = t->led.sent;
	fg.answered = (long)t->led.n;
	fg.delivered = (long)n;
	for (int i = 0; i < FAULT_DESTS; i++) {
		struct faulty_stats s;
		faulty_stats(t->dst[i], &s);
		fg.duplicates += (long)s.duplicates;
	}
	fg.dead_letters = harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters");
	for (size_t i = 0; i < t->led.n; i++)
		if (!fault_has(got, n, t->led.seq[i]))
			fg.lost++;
	if (fmt != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(extra, sizeof(extra), fmt, ap);
		va_end(ap);
	}
	printf("FIGURES %s: sent=%ld answered200=%ld delivered=%ld duplicates=%ld "
	       "dead_letters=%ld lost=%ld%s%s\n",
	       name, fg.sent, fg.answered, fg.delivered, fg.duplicates, fg.dead_letters, fg.lost,
	       extra[0] ? " " : "", extra);
	fflush(stdout);
	free(got);
	assert_int_equal(t->led.bad_counts, 0);
	assert_int_equal(fg.lost, 0);
	return fg;
}

void fault_load(struct fault *t, long *seq, size_t n, const char *dests, long period_ms,
		double secs)
{
	double end = clock_mono() + secs;

	while (clock_mono() < end) {
		double next = clock_mono() + (double)period_ms / 1000.0;
		long status = fault_post(&t->h, &t->led, *seq, n, dests);
		if (status != 200)
			fprintf(stderr, "[faults] batch from seq %ld answered %ld\n", *seq, status);
		assert_int_equal(status, 200);
		*seq += (long)n;
		double left = next - clock_mono();
		if (left > 0)
			harness_sleep_ms((long)(left * 1000.0));
	}
}
