/*
 * deliver_internal.h — shared by the parts of the delivery module, not a
 * public interface: deliver.c runs the loop (claiming, per-destination
 * queues and slots, shutdown), deliver_dest.c keeps each destination's
 * state and scans the outbox for due ones, deliver_outcome.c decides and
 * records what a finished attempt means, deliver_request.c builds one HTTP request and
 * captures what its response says, deliver_policy.c decides what a failure
 * means, deliver_settings.c holds the forward_* settings and their hand-over
 * on reload. Everything here belongs to the delivery thread, but
 * struct deliver's `pending` (an atomic exchange from any thread).
 */
#ifndef EGOI_DELIVER_INTERNAL_H
#define EGOI_DELIVER_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "deliver.h"

struct outbox_delivery;
struct deliver_dest;

#define DELIVER_SNIPPET 200   /* bytes of a failed response kept for the dead letter */

/* One outbox_claim_due result: freed when its last entry is finished with. */
struct deliver_claim {
	struct outbox_delivery *items;
	size_t count;
	size_t live;               /* entries not yet finished with */
};

/* One leased entry: waiting in its destination's queue, then in flight. */
struct deliver_request {
	struct deliver_claim *claim;
	struct outbox_delivery *e;     /* inside claim->items */
	struct deliver_dest *dest;     /* deliver.c's state of its destination; outlives r */
	char *host;                    /* for log lines; never log the URL (may carry a token) */
	CURL *easy;
	struct curl_slist *headers;
	char retry_after[64];          /* raw Retry-After of the final response, or "" */
	int outcome;                   /* enum deliver_outcome, once decided */
	int status;                    /* of the decided attempt, 0 = network error */
	double next_at;                /* DELIVER_RETRY: when (unix seconds) */
	char *error;                   /* the reason kept in the outbox, or NULL */
	char snippet[DELIVER_SNIPPET + 1];
	size_t snippet_len;
	char errbuf[CURL_ERROR_SIZE];
	/* On one list at a time: its destination's waiting queue, deliver's
	 * running list, then deliver's finished list. */
	TAILQ_ENTRY(deliver_request) link;
};

TAILQ_HEAD(deliver_requests, deliver_request);

/*
 * Creates r->easy for r->e: method, body (not copied: r->e must outlive the
 * transfer), headers, timeouts, http(s) only, no redirects, response capture,
 * CURLOPT_PRIVATE = r. Returns 0 or -1; r->easy may then be set and is freed
 * by deliver_request_free.
 */
int deliver_request_setup(struct deliver_request *r, long timeout_ms);

/* The Standard Webhooks key; key_len 0 = requests are not signed. */
struct deliver_signer {
	unsigned char key[256];
	size_t key_len;
};

/* Adds webhook-id, webhook-timestamp and webhook-signature to r->headers. */
int deliver_request_sign(struct deliver_request *r, const struct deliver_signer *s);

/* The captured start of the response body as one printable, NUL-terminated line. */
const char *deliver_request_snippet(struct deliver_request *r);

/* Drops one reference to c, freeing it with its entries after the last; c may be NULL. */
void deliver_claim_release(struct deliver_claim *c);

/* Frees r (already removed from the multi handle and every list); r may be NULL. */
void deliver_request_free(struct deliver_request *r);

#define DELIVER_RECORD_RETRY_S 0.25  /* pause before writing failed outcomes again */
#define DELIVER_RECORD_ROUNDS 40     /* failed rounds (10 s) before one by one */

/* What the delivery thread knows of one destination. */
struct deliver_dest {
	char *key;                     /* scheme://host:port, or "" for URLs without one */
	long inflight;
	struct deliver_requests waiting;  /* leased, waiting for a slot, oldest first */
	long nwaiting;
	double due_at;                 /* earliest unleased entry per the last scan, or INFINITY */
	double paused_until;           /* Retry-After: nothing starts before this */
	struct deliver_circuit circuit;
	long backlog;                  /* entries in the outbox, for metrics */
	int seen;                      /* had unleased entries at the last scan */
};

/* The forward_* settings, checked whole (deliver_settings.c). */
struct deliver_settings {
	long timeout_ms, per_host;
	struct deliver_limits limits;
	struct deliver_signer signer;
};

struct deliver {
	/* A copy of the settings in force (deliver_settings_apply); only the
	 * delivery thread reads or writes them once it runs. */
	long timeout_ms, per_host;
	struct deliver_limits limits;
	struct outbox *ob;
	CURLM *multi;
	pthread_t thread;
	atomic_int stop;
	atomic_int notified;
	atomic_long grace_ms;
	uint64_t rng;                  /* xorshift64* state, delivery thread only */
	struct deliver_signer signer;  /* Standard Webhooks key, key_len 0 = unsigned */
	_Atomic(struct deliver_settings *) pending;  /* from a reload, not yet taken */

	struct deliver_requests running;
	long nrunning;
	struct deliver_dest **dests;   /* every destination with work, state or a past scan */
	size_t ndests, capdests;
	struct deliver_requests finished;  /* decided, not yet written to the outbox */
	long nfinished;
	double record_retry_at;        /* wall clock: when to try writing them again */
	int record_failures;           /* failed rounds in a row */
	long claim_failures;           /* failed claims in a row */
	double released_at;            /* monotonic: last outbox_release_space */
	atomic_llong beat_ns;          /* clock_mono_ns of the loop's last turn (readiness) */
	atomic_int exited;             /* the loop has returned */
};


/* --- deliver_settings.c --- */

/* Copies s into d's fields (and libcurl's per-host limit). Delivery thread,
 * or before it starts. */
void deliver_settings_apply(struct deliver *d, const struct deliver_settings *s);

/* Delivery thread, each iteration: puts a block from deliver_reconfigure in force. */
void deliver_settings_take(struct deliver *d);

/* --- deliver_dest.c --- */

/* Finds or adds the state of destination key; NULL when out of memory. */
struct deliver_dest *deliver_dest_get(struct deliver *d, const char *key);

/* Forgets destinations with nothing in flight, waiting, pending or paused. */
void deliver_dests_forget_idle(struct deliver *d, double now);

/* Requests t may have in flight now (Retry-After pause, then the circuit);
 * may turn an open circuit half-open. */
long deliver_dest_allowance(struct deliver *d, struct deliver_dest *t, double now);

/* When t could next start or lease something (unix seconds); INFINITY when
 * only a finished transfer can change that. */
double deliver_dest_ready_at(const struct deliver *d, const struct deliver_dest *t);

/* Refreshes every destination's due_at from the outbox; 0 or -1 (logged). */
int deliver_dests_scan(struct deliver *d);

/* --- deliver_outcome.c --- */

/* Uniform in [0,1) from d->rng; jitter needs spread, not secrecy. */
double deliver_random(struct deliver *d);

/*
 * Decides what one attempt of x means (status: HTTP status, 0 for a
 * network error; permanent: never worth retrying; seconds: the transfer's
 * duration, < 0 when none was made) and queues x on d->finished for
 * deliver_record_pending. Takes x.
 */
void deliver_finish(struct deliver *d, struct deliver_request *x, int status, const char *detail,
		    int permanent, double seconds);

/* Writes the decisions waiting on d->finished, when their retry time has
 * come (now, unix seconds; INFINITY forces a try). */
void deliver_record_pending(struct deliver *d, double now);

/* Frees every decision waiting on d->finished. */
void deliver_finished_free(struct deliver *d);

#endif
