/*
 * egoi_api.h — a client of E-goi's Marketing API v3, webhooks only:
 *
 *   POST   /webhooks                  create; JSON body, answer 200 + the
 *                                     webhook with its webhook_id
 *   GET    /webhooks?offset=&limit=   one page (limit 1..1000), answer
 *                                     {"total_items": N, "items": [...]}
 *   DELETE /webhooks/{webhook_id}     answer 204
 *
 * Every request carries the header `Apikey: <key>`; there is no update
 * and no get-one call. Errors come as problem objects (type, title,
 * status, detail, and an `errors` object on 422), which become one line.
 * E-goi answers 429 with X-RateLimit-* headers when a client goes too
 * fast; the client waits for Retry-After (seconds or an HTTP date) or
 * X-RateLimit-Reset and tries again, EGOI_API_RETRIES times at most,
 * never waiting more than EGOI_API_WAIT_MAX_S at once. Whether
 * X-RateLimit-Reset counts seconds or is a Unix time is not documented:
 * a value above 10^9 is read as a Unix time, anything else as seconds.
 *
 * Transport: libcurl easy handle, redirects not followed (the key would
 * go along), https only except to a loopback host (127.0.0.1, ::1,
 * localhost) so that a local stand-in can serve plain http.
 *
 * The key is held by the caller and only copied into the header list,
 * which is zeroed before it is freed; it never appears in an error.
 *
 * Threads: one struct egoi_api per thread (the CLI's main thread).
 */
#ifndef EGOI_EGOI_API_H
#define EGOI_EGOI_API_H

#include <stddef.h>

#include "egoi_webhook.h"

#define EGOI_API_RETRIES 3
#define EGOI_API_WAIT_MAX_S 60
#define EGOI_API_PAGE 1000

/* What a call came to; the CLI maps them to exit codes. */
enum egoi_api_result {
	EGOI_API_OK = 0,
	EGOI_API_REFUSED = -1,   /* E-goi said no (4xx: key, request, conflict) */
	EGOI_API_FAILED = -2,    /* no usable answer: 5xx, timeout, network, 429 to the end */
};

struct egoi_api_options {
	const char *base;        /* "https://api.egoiapp.com", no trailing '/' needed */
	const char *key;         /* Apikey */
	long timeout_ms;         /* per request */
};

struct egoi_api;

/* NULL with err set when base is not an acceptable URL or on no memory. */
struct egoi_api *egoi_api_new(const struct egoi_api_options *o, char *err, size_t errlen);
void egoi_api_free(struct egoi_api *a);

/* Every webhook of the account, page after page; out->v malloc'd (free
 * with egoi_api_set_free). */
struct egoi_webhook_set {
	struct egoi_webhook *v;
	size_t n;
};
int egoi_api_list(struct egoi_api *a, struct egoi_webhook_set *out, char *err, size_t errlen);
void egoi_api_set_free(struct egoi_webhook_set *s);

/* Creates w (its id is ignored); *id gets the new webhook_id. */
int egoi_api_create(struct egoi_api *a, const struct egoi_webhook *w, long long *id, char *err,
		    size_t errlen);

int egoi_api_delete(struct egoi_api *a, long long id, char *err, size_t errlen);

/* Requests sent so far (retries included), for the CLI's summary. */
long egoi_api_requests(const struct egoi_api *a);

#endif
