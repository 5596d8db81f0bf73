/*
 * readiness.h — what GET /readyz answers: is this daemon able to take a
 * batch and keep the promise behind its 200 right now?
 *
 * /healthz is liveness (the process answers HTTP; 503 only while stopping);
 * /readyz is readiness, the sum of these checks, each named in the answer:
 *
 *   rules       a compiled rules generation is published (workers run it)
 *   outbox      the group committer's thread takes batches, no commit has
 *               been running for READINESS_STALE_S, and the outbox is not in
 *               its disk-full state (outbox_space.h: intake answers 503)
 *   output_dir  a file can be created and written in output_dir, as the
 *               user the workers run as
 *   tls         the TLS listeners are open with a certificate loaded (plain
 *               HTTP only: passes, "not configured")
 *   delivery    the delivery loop turned within READINESS_STALE_S (it turns
 *               at least once a second) and has not returned
 *   intake      the intake is not stopping
 *
 * The checks are split in two: readiness_gather reads the facts from the
 * live objects, readiness_judge turns facts into a verdict (pure: the
 * tests give it facts and a clock).
 *
 * Threads: readiness_gather and readiness_probe_dir may run on any thread
 * at once (they only read thread-safe accessors); the rest is pure.
 */
#ifndef EGOI_READINESS_H
#define EGOI_READINESS_H

#include <stddef.h>

struct pipeline_shared;

/* A heartbeat or a commit older than this means the thread is stuck. */
#define READINESS_STALE_S 30.0

enum readiness_check {
	READINESS_RULES,
	READINESS_OUTBOX,
	READINESS_OUTPUT_DIR,
	READINESS_TLS,
	READINESS_DELIVERY,
	READINESS_INTAKE,
	READINESS_CHECKS
};

struct readiness_facts {
	unsigned long rules_generation;  /* 0 = no rules published */
	int writer_started;              /* an outbox writer exists */
	int writer_alive;                /* outbox_writer_health */
	double writer_busy_since;        /* clock_mono of the commit in progress, 0 = idle */
	int outbox_full;                 /* outbox_space_full */
	const char *output_dir;          /* borrowed, for the detail */
	int output_dir_errno;            /* readiness_probe_dir: 0 = writable */
	int tls;                         /* 1 up, 0 not configured, -1 down */
	char tls_why[128];               /* when tls == -1 */
	double delivery_beat;            /* deliver_heartbeat: clock_mono, < 0 = none / exited */
	int stopping;                    /* the intake is stopping */
};

struct readiness_report {
	int ready;                       /* every check ok */
	int ok[READINESS_CHECKS];
	char detail[READINESS_CHECKS][192];
};

/* "rules", "outbox", "output_dir", "tls", "delivery", "intake". */
const char *readiness_name(enum readiness_check c);

/*
 * Fills every fact that sh's objects hold (rules, writer, outbox space,
 * output_dir, delivery). tls and stopping belong to the intake: the caller
 * sets them (tls = 0, stopping = 0 here).
 */
void readiness_gather(struct pipeline_shared *sh, struct readiness_facts *f);

/* The verdict on f at monotonic time now, written to r. */
void readiness_judge(const struct readiness_facts *f, double now, struct readiness_report *r);

/*
 * Creates an unnamed file in dir (O_TMPFILE; a named one, unlinked at once,
 * where the file system has no O_TMPFILE), writes one byte and closes it:
 * nothing is left behind. 0 when that worked, else the errno of the step
 * that failed.
 */
int readiness_probe_dir(const char *dir);

/*
 * The answer's body, JSON: {"ready":B,"failed":[NAMES],"checks":{NAME:
 * {"ok":B,"detail":TEXT},...}} in a new buffer (*out, NUL-terminated, freed
 * by the caller). 0, or -1 when out of memory.
 */
int readiness_json(const struct readiness_report *r, char **out, size_t *len);

#endif
