/*
 * faults.h — fixture of the fault suite (cmocka): the real daemon (through
 * the e2e harness) delivering to fault destinations (tests/e2e/faulty.h)
 * that misbehave on cue, while the scenario posts batches and keeps a
 * ledger of what was answered 200.
 *
 * Events: every test event is {"action":"fault_test","seq":N,"dest":"a"},
 * seq unique within the scenario, dest choosing the destination in the
 * rules. The default forward body {"events":[...]} carries the events'
 * original bytes, so a destination learns exactly which seqs it received.
 *
 * What every scenario proves at its end (fault_figures): every event
 * answered 200 was delivered (answered 2xx by a destination) at least once,
 * i.e. lost = 0, and how many dead letters and duplicate deliveries the
 * fault left. Each prints one line
 *   FIGURES <name>: sent=N answered200=N delivered=N duplicates=N
 *                   dead_letters=N lost=N <scenario figures>
 * (counts of events, except duplicates: delivery ids answered 2xx twice).
 *
 * Configuration: the harness's forward_max_attempts default is omitted so
 * the daemon's own applies (no attempt limit: retrying ends at
 * forward_max_age or a permanent 4xx). FAULT_BACKOFF sets
 * forward_backoff_max = 2s: that only caps the exponential full-jitter
 * schedule (1 s doubling) and a destination's circuit open time sooner than
 * the 10 min default, so a recovery shows within seconds; the logic under
 * test is the same.
 *
 * Threads: cmocka asserts only on the test thread. fault_post and the
 * ledger functions take no lock and call no assert, so client threads may
 * use them, each with its own ledger (merged afterwards).
 */
#ifndef FAULTS_FAULTS_H
#define FAULTS_FAULTS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "e2e/e2e.h"
#include "e2e/faulty.h"

#define FAULT_DESTS 2

#define FAULT_BACKOFF "forward_backoff_max = 2s\n"

/* Events answered 200 (their seq and when the answer arrived), and counts. */
struct fault_ledger {
	long *seq;
	double *at;              /* CLOCK_REALTIME when the 200 arrived */
	size_t n, cap;
	long sent;               /* events posted */
	long batches, ok, unavailable, other, unanswered; /* by answer: 200, 503, else, none */
	long bad_counts;         /* 200s whose counts were not {"accepted":n,"rejected":0} */
};

struct fault {
	struct harness h;
	struct faulty *dst[FAULT_DESTS];
	char url[FAULT_DESTS][64];  /* "http://127.0.0.1:PORT", the destination's name too */
	char mnt[HARNESS_PATH];     /* a filesystem mounted by the scenario, "" when none */
	struct fault_ledger led;
};

/* Figures every scenario prints (see the top of this file). */
struct fault_figures {
	long sent, answered, delivered, duplicates, dead_letters, lost;
};

/* The cmocka group set-up and teardown are e2e_suite_setup / e2e_suite_teardown
 * (tests/e2e/e2e.h): one generated certificate per process. */

/* Harness, two fault destinations (FAULTY_OK), empty ledger. */
int fault_setup(void **state);
/* Stops the daemon, unmounts t->mnt, cleans up the harness (log tail when the
 * scenario did not pass), stops the destinations. */
int fault_teardown(void **state);

#define FAULT_TEST(fn) cmocka_unit_test_setup_teardown(fn, fault_setup, fault_teardown)

/* Writes rules (@A@, @B@ = the destinations' URLs), the extra config, and
 * starts the daemon; fails the test when it does not come up. */
void fault_boot(struct fault *t, const char *lua, const char *extra_conf);

/* SIGTERM, and asserts a clean exit (status 0) within 15 s. */
void fault_stop_ok(struct fault *t);

/* Sets a destination's mode; fails the test when it does not take effect. */
void fault_mode(struct fault *t, int dst, enum faulty_mode mode, int status,
		const char *retry_after);

/* {"events":[...]} of n events seq first.. with dest letters from dests,
 * used in turn ("a", "ab"); malloc'd, NULL on no memory. */
char *fault_batch(long first, size_t n, const char *dests);

/*
 * Posts n events (seq first..first+n-1) and books the answer in led; a 200
 * books every seq with the answer time. Returns the HTTP status, 0 when no
 * answer came. No cmocka calls: safe on client threads.
 */
long fault_post(const struct harness *h, struct fault_ledger *led, long first, size_t n,
		const char *dests);

/* Appends src's bookings to dst; 0 or -1 (no memory). */
int fault_ledger_merge(struct fault_ledger *dst, const struct fault_ledger *src);
void fault_ledger_free(struct fault_ledger *led);

/* Distinct seqs delivered 2xx by any destination (sorted, malloc'd or NULL). */
long *fault_delivered(struct fault *t, size_t *n);
/* Whether seq is in the sorted array. */
int fault_has(const long *sorted, size_t n, long seq);

/* Waits (polling every 250 ms, at most timeout_ms) until every seq of the
 * ledger was delivered; 0 when it was, -1 on timeout. */
int fault_wait_delivered(struct fault *t, long timeout_ms);

/* Polls the outbox until no delivery is pending (at most timeout_ms); 0 or -1. */
int fault_wait_drained(struct fault *t, long timeout_ms);

/*
 * Computes the figures, prints the FIGURES line for name followed by the
 * scenario's own figures (printf-style, may be NULL), and asserts the
 * common end: no batch answered with wrong counts, lost = 0.
 */
struct fault_figures fault_figures(struct fault *t, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Posts one batch of n events every period_ms for secs seconds, starting at
 * *seq (advanced), and asserts each was answered 200. */
void fault_load(struct fault *t, long *seq, size_t n, const char *dests, long period_ms,
		double secs);

/* The common tables: one per file. */
extern const struct CMUnitTest faults_selftest_tests[];
extern const size_t faults_selftest_count;
extern const struct CMUnitTest faults_retry_tests[];
extern const size_t faults_retry_count;
extern const struct CMUnitTest faults_isolation_tests[];
extern const size_t faults_isolation_count;
extern const struct CMUnitTest faults_disk_tests[];
extern const size_t faults_disk_count;
extern const struct CMUnitTest faults_crash_tests[];
extern const size_t faults_crash_count;

#endif
