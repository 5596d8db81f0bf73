/*
 * console.h — the status console: GET /console on the admin listener,
 * registered only when admin_token is set (otherwise /console is not a
 * route: 404). A server-rendered page of the router's state (version,
 * uptime, rules, reloads, intake rates and answers, each destination's
 * delivery state, the outbox and the dead letters) with buttons to replay
 * or purge dead letters through the same functions as `egoi-router dlq`.
 *
 * Routes (all under /console):
 *   GET  /console              the overview (or the login form, 401)
 *   GET  /console/style.css    the style sheet (no login needed)
 *   GET  /console/dead/ID      one dead letter with its payload (e-mails masked)
 *   POST /console/login        token=ADMIN_TOKEN: sets the session cookie
 *   POST /console/logout       csrf=…: forgets the session
 *   POST /console/action       csrf=…&op=replay|purge&(id=N|kind=K|dest=D|all=1)
 *
 * Access: Authorization: Bearer ADMIN_TOKEN, or the session cookie the
 * login form sets (HttpOnly; SameSite=Strict; Path=/console). A POST
 * without the right CSRF token is refused with 403 and changes nothing.
 * Every answer carries Content-Security-Policy: default-src 'self',
 * X-Frame-Options: DENY and Cache-Control: no-store.
 *
 * Threads: create and free on the main thread (from http_admin_start and
 * http_admin_stop); the handlers on the admin listener's workers.
 */
#ifndef EGOI_CONSOLE_H
#define EGOI_CONSOLE_H

#include <civetweb.h>

struct console;
struct pipeline_shared;

/* A console for sh (borrowed, must outlive it) guarded by token (not
 * NULL). NULL when out of memory or without randomness. */
struct console *console_new(struct pipeline_shared *sh, const char *token);

/* Registers the console's routes on ctx. */
void console_routes(struct mg_context *ctx, struct console *c);

/* After the context serving c has stopped. c may be NULL. */
void console_free(struct console *c);

#endif
