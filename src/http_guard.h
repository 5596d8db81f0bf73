/*
 * http_guard.h — the intake's per-client-address protections, in front of
 * the request handlers:
 *
 * - a cap on open TLS connections per address (max_connections_per_address).
 *   civetweb gives every connection a worker thread from accept on, TLS
 *   handshake included, so idle or trickling connections from one address
 *   could otherwise hold every worker. The cap is applied from an OpenSSL
 *   info callback at the very start of the handshake (before any byte is
 *   read): an over-cap connection is shut down there and its worker is free
 *   again in microseconds. The count drops when the connection's SSL object
 *   is freed, whatever ended it (an ex_data free callback).
 * - a token bucket per address for requests to the endpoint (rate_limit,
 *   rate_limit_burst), answered 429 with Retry-After.
 * - rate_limit_exempt: addresses neither capped nor rate limited.
 * - allow_from: a TLS connection from another address is cut at the same
 *   point as one over the cap (before TLS reads a byte), and every request
 *   is checked again before its handler (http_guard_allow_address), which
 *   covers plain-HTTP listeners and keep-alive connections opened before
 *   a reload narrowed the list. civetweb's own access control list is not
 *   used: it is fixed at mg_start, and this list changes on SIGHUP.
 * - refusals (over the cap, allow_from) are logged at most once per
 *   LOG_REPEAT_S per kind, with a count of those not logged (log_limited,
 *   log.h).
 *
 * Reload: the settings (cap, rate, burst, exempt and allow lists) are one
 * block, built and checked whole by http_guard_params_new, then copied in
 * under the mutex by http_guard_update, so a connection or request sees
 * either the old settings or the new, never a mix. The table (open
 * connections, token buckets) is kept: a lower cap or rate applies to the
 * addresses already counted, a bucket is cut to a smaller burst at its next
 * refill. Every TLS connection is counted, capped or not, so a cap set by a
 * reload counts the connections already open.
 *
 * http_guard_check validates the settings these protections and civetweb's
 * access control list need, so `check` refuses what `run` would refuse.
 *
 * Threads: every function may be called from any thread; the table has one
 * mutex. The guard must outlive every SSL object made from the SSL_CTX it
 * was installed on (free it after mg_stop).
 */
#ifndef EGOI_HTTP_GUARD_H
#define EGOI_HTTP_GUARD_H

#include <stddef.h>

#include "config.h"


struct http_guard;

/* Validates allow_from, rate_limit, rate_limit_exempt: 0, or -1 with err. */
int http_guard_check(const struct config *cfg, char *err, size_t errlen);

/* NULL on a bad setting (http_guard_check's err) or out of memory. */
struct http_guard *http_guard_new(const struct config *cfg, char *err, size_t errlen);
void http_guard_free(struct http_guard *g);

/* The settings of cfg, checked (http_guard_check's err): NULL on a bad one
 * or out of memory. Freed by http_guard_update or http_guard_params_free. */
struct http_guard_params;
struct http_guard_params *http_guard_params_new(const struct config *cfg, char *err,
						size_t errlen);
void http_guard_params_free(struct http_guard_params *p);

/* Puts p in force for new connections and requests; takes p. Cannot fail. */
void http_guard_update(struct http_guard *g, struct http_guard_params *p);

/* Installs the handshake hook on civetweb's SSL_CTX (its init_ssl callback). 0 or -1. */
int http_guard_install(struct http_guard *g, void *ssl_ctx);

/*
 * 1 if the worker thread calling it cut its current connection at the
 * handshake (civetweb's own error message about it is then noise), else 0.
 * http_guard_conn_clear resets it when a connection is handed to HTTP.
 */
int http_guard_conn_was_cut(void);
void http_guard_conn_clear(void);

/*
 * One request from addr (civetweb's text form) to the endpoint: 1 allowed,
 * 0 over the rate, with *retry_after_s the whole seconds until the next
 * one would be allowed (>= 1).
 */
int http_guard_allow_request(struct http_guard *g, const char *addr, long *retry_after_s);

/* 1 when allow_from lets addr (civetweb's text form) in, else 0 (counted
 * and logged rate-limited, as at the handshake). */
int http_guard_allow_address(struct http_guard *g, const char *addr);

/* Logs the refusals counted but not yet logged (at stop). */
void http_guard_flush_log(struct http_guard *g);

#endif
