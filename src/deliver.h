/*
 * deliver.h — the delivery thread: outbox → HTTP(S) with libcurl multi.
 *
 * One background thread owns its own outbox connection and a CURLM. It
 * claims due entries destination by destination (scheme://host:port, see
 * destination.h), sends them with keep-alive, forward_timeout, and the
 * headers X-Router-Delivery-Id (stable across retries) and X-Router-Attempt
 * (1, 2, ...). 2xx completes. 408/429/5xx and network errors retry with
 * exponential backoff and full jitter (1 s doubling, capped at
 * forward_backoff_max); a Retry-After is a floor under that delay (capped
 * at 1 h) and pauses the whole destination. Any other status, or an entry
 * older than forward_max_age (or past forward_max_attempts, when set),
 * makes a dead letter.
 *
 * Isolation: each destination has its own in-flight limit, its own queue
 * and its own circuit: after DELIVER_CIRCUIT_FAILURES consecutive failures
 * it opens (no requests), then lets one probe through; the probe's success
 * closes it and makes that destination's backlog due at once.
 */
#ifndef EGOI_DELIVER_H
#define EGOI_DELIVER_H

#include <stddef.h>

#define DELIVER_BACKOFF_MAX_MS 600000L   /* default forward_backoff_max: 10 min */

struct deliver_options {
	const char *data_dir;
	long timeout_ms;           /* per request */
	long max_attempts;         /* 0 = no limit */
	long max_age_ms;
	long backoff_max_ms;       /* cap of the backoff and of a circuit's open time */
	long concurrency;          /* in-flight requests per destination */
	const char *signing_secret; /* "whsec_<base64>" (Standard Webhooks) or NULL */
};

/*
 * The options' forward_* settings as one checked block (the signing secret
 * decoded): NULL with err when one is invalid. Made on the main thread at
 * a reload's check, before anything changes; freed (zeroed: it holds the
 * key) by deliver_reconfigure or deliver_settings_free.
 */
struct deliver;
struct deliver_settings;
struct deliver_settings *deliver_settings_new(const struct deliver_options *opt, char *err,
					      size_t errlen);
void deliver_settings_free(struct deliver_settings *s);

/*
 * Hands s to the delivery thread, which puts it in force at its next loop
 * iteration (within a wake-up): timeout, attempts, age, backoff cap, per
 * destination concurrency and signing key of the requests it starts from
 * then on. Takes s; cannot fail. Any thread. d NULL: s is freed.
 */
void deliver_reconfigure(struct deliver *d, struct deliver_settings *s);

enum deliver_outcome {
	DELIVER_DONE,
	DELIVER_RETRY,
	DELIVER_DEAD,
};

struct deliver;

/* Opens the outbox, forgets old leases and starts the thread. NULL with err. */
struct deliver *deliver_start(const struct deliver_options *opt, char *err, size_t errlen);

/* Thread-safe: new entries were committed, look now instead of at the next tick. */
void deliver_notify(struct deliver *d);

/*
 * The delivery loop's heartbeat: clock_mono() of its last turn (it turns at
 * least once a second, DELIVER_TICK_MS, unless something blocks it), or -1
 * once the thread has returned. Thread-safe; readiness.h reads it.
 */
double deliver_heartbeat(struct deliver *d);

/*
 * Stops claiming, waits for in-flight requests up to grace_ms (then aborts
 * them), joins the thread and frees d. d may be NULL. Entries still leased
 * are not lost: on SQLite they stay leased until the next deliver_start
 * forgets every lease (outbox_release_leases); on PostgreSQL closing the
 * connection gives this process's leases back at once, for any node.
 */
void deliver_stop(struct deliver *d, long grace_ms);

/* What ends retrying, and how long the backoff may grow. */
struct deliver_limits {
	long max_attempts;         /* 0 = no limit */
	long max_age_ms;           /* 0 = no limit */
	double backoff_max_s;      /* cap of the exponential delay (> 0) */
};

/* 1 for the answers worth retrying: 0 (network error, timeout), 408, 429, 5xx. */
int deliver_retryable(int status);

/*
 * The retry policy, pure for testing. status: HTTP status or 0 for a network
 * error; attempts: attempts made including this one; age_ms: since the entry
 * was created; retry_after_s: parsed Retry-After or -1; rnd: uniform in
 * [0,1). Returns the outcome and, for DELIVER_RETRY, the delay in *delay_s:
 * rnd * min(2^(attempts-1), backoff_max_s), raised to Retry-After (at most
 * 1 h) when the server sent one.
 */
enum deliver_outcome deliver_policy(int status, long attempts, double age_ms, double retry_after_s,
				    double rnd, const struct deliver_limits *lim, double *delay_s);

/* How long a Retry-After pauses its whole destination: 0 when absent or
 * invalid (< 0), else the value capped at 1 h. */
double deliver_pause(double retry_after_s);

/* --- a destination's circuit --- */

#define DELIVER_CIRCUIT_FAILURES 5   /* consecutive failed attempts that open it */

enum deliver_circuit_state {
	DELIVER_CLOSED,            /* normal: up to forward_concurrency in flight */
	DELIVER_OPEN,              /* failing: nothing is sent until `until` */
	DELIVER_HALF_OPEN,         /* one probe in flight decides */
};

struct deliver_circuit {
	enum deliver_circuit_state state;
	int failures;              /* consecutive failed attempts */
	double open_s;             /* the current open period: 1 s, doubling per failed probe */
	double until;              /* OPEN: when the probe may go (unix seconds) */
};

enum deliver_transition {
	DELIVER_STAYED,
	DELIVER_OPENED,            /* closed -> open */
	DELIVER_REOPENED,          /* the probe failed: open again, longer */
	DELIVER_CLOSED_AGAIN,      /* an answer came through: closed */
};

/*
 * Requests the destination may have in flight now: per_host when closed, 0
 * while open (until `until` passes, when it turns half-open), 1 when
 * half-open. May change c (open -> half-open).
 */
long deliver_circuit_allowance(struct deliver_circuit *c, double now, long per_host);

/*
 * Records one attempt's result: failed = deliver_retryable(status) (any
 * other answer proves the destination is up). pause_s: its Retry-After
 * pause, 0 if none (an open period is never shorter). The open period
 * starts at 1 s and doubles per failed probe, capped at
 * min(60 s, backoff_max_s). Returns what changed, for the log.
 */
enum deliver_transition deliver_circuit_record(struct deliver_circuit *c, int failed, double now,
					       double pause_s, double backoff_max_s);

/*
 * Decodes a Standard Webhooks secret "whsec_<base64>" into the HMAC key
 * bytes (out, cap bytes). Returns the key length, or -1 when malformed.
 */
int deliver_signing_key(const char *secret, unsigned char *out, size_t cap);

/*
 * Computes the Standard Webhooks signature header value "v1,<base64>" of
 * HMAC-SHA256(key, "id.timestamp.body") into out (cap bytes, >= 64).
 * Returns 0 or -1.
 */
int deliver_sign(const unsigned char *key, size_t key_len, const char *id, long long timestamp,
		 const char *body, size_t body_len, char *out, size_t cap);

/* Parses a Retry-After value (delta seconds or HTTP-date) relative to now; -1 if invalid. */
double deliver_parse_retry_after(const char *value, double now);

#endif
