/*
 * deliver.h — the delivery thread: outbox → HTTP(S) with libcurl multi.
 *
 * One background thread owns its own outbox connection and a CURLM. It
 * claims due entries, sends them with keep-alive (connection reuse per
 * host), forward_timeout, and the headers X-Router-Delivery-Id (stable
 * across retries) and X-Router-Attempt (1, 2, ...). 2xx completes;
 * 408/429/5xx and network errors retry with exponential backoff and full
 * jitter (1 s doubling, capped at 10 min) honouring Retry-After; any other
 * status, forward_max_attempts or forward_max_age makes a dead letter.
 */
#ifndef EGOI_DELIVER_H
#define EGOI_DELIVER_H

#include <stddef.h>

struct deliver_options {
	const char *data_dir;
	long timeout_ms;           /* per request */
	long max_attempts;
	long max_age_ms;
	long concurrency;          /* in-flight requests per host */
	const char *signing_secret; /* "whsec_<base64>" (Standard Webhooks) or NULL */
};

enum deliver_outcome {
	DELIVER_DONE,
	DELIVER_RETRY,
	DELIVER_DEAD,
};

struct deliver;

/* Opens the outbox, releases old leases and starts the thread. NULL with err. */
struct deliver *deliver_start(const struct deliver_options *opt, char *err, size_t errlen);

/* Thread-safe: new entries were committed, look now instead of at the next tick. */
void deliver_notify(struct deliver *d);

/*
 * Stops claiming, waits for in-flight requests up to grace_ms (then aborts
 * them; their leases are released so they resume after restart), joins the
 * thread and frees d. d may be NULL.
 */
void deliver_stop(struct deliver *d, long grace_ms);

/*
 * The retry policy, pure for testing. status: HTTP status or 0 for a network
 * error; attempts: attempts made including this one; age_ms: since the entry
 * was created; retry_after_s: parsed Retry-After or -1; rnd: uniform in
 * [0,1). Returns the outcome and, for DELIVER_RETRY, the delay in *delay_s.
 */
enum deliver_outcome deliver_policy(int status, long attempts, long max_attempts, double age_ms,
				    long max_age_ms, double retry_after_s, double rnd,
				    double *delay_s);

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
