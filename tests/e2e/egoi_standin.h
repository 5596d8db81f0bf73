/*
 * egoi_standin.h — a local stand-in for E-goi's Marketing API v3 webhooks,
 * for the `egoi-router egoi` scenarios: an in-process civetweb plain-HTTP
 * server on 127.0.0.1 (ephemeral port) that keeps webhooks in memory and
 * checks every request the way the published API describes it:
 *
 *   every request  header Apikey equal to the key given at start, else 401
 *   POST /webhooks Content-Type application/json; a JSON object with
 *                  exactly list_id (integer >= 1, not a string), url
 *                  (string), actions (non-empty array of strings, each an
 *                  action of the catalogue) and optionally fields (array of
 *                  strings); answers 200 + the webhook with its webhook_id
 *   GET /webhooks  offset (>= 0) and limit (1..1000) in the query; answers
 *                  {"total_items": N, "items": [...]}
 *   DELETE /webhooks/ID   204, or 404 when there is no such webhook
 *
 * A request that breaks one of these rules is a violation: it is answered
 * 400 and recorded, and the scenarios assert that none happened. Answers
 * can be scripted ahead (status, one extra header, body, a delay before
 * answering), one per request, in order; status 0 in the script means
 * "answer normally".
 *
 * Threads: civetweb workers serve; every function here may be called from
 * the test thread while they do (one mutex).
 */
#ifndef E2E_EGOI_STANDIN_H
#define E2E_EGOI_STANDIN_H

#include <stddef.h>

struct standin;

/* One recorded request. */
struct standin_req {
	char method[8];
	char uri[256];           /* path and query */
	char *body;              /* NUL-terminated */
	char apikey[128];        /* the Apikey header as received, "" if absent */
	int status;              /* what was answered */
};

struct standin *standin_start(const char *key);
void standin_stop(struct standin *s);
/* "http://127.0.0.1:PORT" */
void standin_url(const struct standin *s, char *buf, size_t len);

/* Stores a webhook as if created; actions and fields comma-separated
 * (NULL = none). Returns its webhook_id. */
long long standin_add(struct standin *s, long long list_id, const char *url,
		      const char *actions, const char *fields);

/* Queues the answer of one coming request (see above). header: one
 * "Name: value" line or NULL; body NULL = a problem object for status. */
void standin_script(struct standin *s, int status, const char *header, const char *body,
		    long delay_ms);

/* Requests recorded; the i-th one (valid until standin_stop). */
size_t standin_count(struct standin *s);
const struct standin_req *standin_get(struct standin *s, size_t i);

/* Live webhooks; the JSON text of the one with this id (NULL if none;
 * valid until standin_stop). */
size_t standin_webhooks(struct standin *s);
const char *standin_webhook_json(struct standin *s, long long id);
/* Id of the first live webhook with this list and url, or 0. */
long long standin_find(struct standin *s, long long list_id, const char *url);

/* Every violation seen, one per line (malloc'd), or NULL when none. */
char *standin_violations(struct standin *s);

#endif
