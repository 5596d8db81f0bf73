/*
 * deliver_internal.h — shared by the parts of the delivery module, not a
 * public interface: deliver.c runs the loop (claiming, per-destination
 * queues, slots and circuits, outcomes, shutdown), deliver_request.c builds one HTTP request and
 * captures what its response says, deliver_policy.c decides what a failure
 * means. Everything here belongs to the delivery thread.
 */
#ifndef EGOI_DELIVER_INTERNAL_H
#define EGOI_DELIVER_INTERNAL_H

#include <curl/curl.h>
#include <stddef.h>

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
	struct deliver_request *prev, *next;
};

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

#endif
