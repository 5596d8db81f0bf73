/*
 * http.h — the HTTPS intake: civetweb set-up, routes, auth, limits, answers.
 *
 * Routes: POST {endpoint} (a batch), GET /healthz (liveness), GET /readyz
 * (readiness, readiness.h), GET /metrics (Prometheus text format, no
 * token: see http.c); with admin_listen the last three are on the admin
 * listener instead (http_admin.h, http_probe.h). Each worker
 * thread gets a struct pipeline in civetweb's init_thread callback, its
 * file sink opened there; it borrows a Lua state per batch (pipeline.h);
 * batches reach the outbox through the shared group committer
 * (outbox_writer.h).
 * Every answer is built in one buffer and sent with one mg_write (over TLS,
 * one record) on a keep-alive connection with TCP_NODELAY.
 */
#ifndef EGOI_HTTP_H
#define EGOI_HTTP_H

#include <stddef.h>

struct http_server;
struct pipeline_shared;

/*
 * Initialises civetweb's TLS support; -1 with err when OpenSSL could not be
 * loaded (the daemon must not start: the first TLS connection would crash).
 * Call once, before any thread starts.
 */
int http_library_init(char *err, size_t errlen);

/*
 * Starts listening: civetweb binds the ports, drops to run_as_user if set
 * (privs.h), then starts its workers, each opening output_dir as that user
 * before it serves. sh is borrowed (workers read its published rules, the
 * writer and delivery) and must outlive the server. NULL with err set.
 */
struct http_server *http_start(struct pipeline_shared *sh, char *err, size_t errlen);

/*
 * Stops the intake without cutting an answer: new connections are refused
 * at once, requests that start from now on are answered 503 (nothing
 * committed), requests in flight are waited for (up to 10 s) and answered,
 * then civetweb stops and s is freed. Logs "stopping intake: N requests in
 * flight". Call from the thread that called http_start. s may be NULL.
 */
void http_stop(struct http_server *s);

/* The first listening port (for tests and logs), or -1. */
int http_port(const struct http_server *s);

/* The intake's per-address guard (http_guard.h), for a reload to update; NULL if s is. */
struct http_guard *http_server_guard(struct http_server *s);

/*
 * Constant-time check of a presented token against the secret: both are
 * hashed first so neither their contents nor their lengths leak through
 * timing. Returns 1 when equal. http_token_matches takes the secret as its
 * SHA-256 already (struct config's auth_token_sha256, hashed once at load):
 * the intake's check per request hashes only what the client presents.
 */
int http_token_equal(const char *presented, size_t len, const char *secret);
int http_token_matches(const char *presented, size_t len, const unsigned char *secret_sha256);

#endif
