/*
 * console_auth.h — who may use the status console: login sessions and
 * CSRF tokens.
 *
 * A session id is 32 random bytes (OpenSSL RAND_bytes) in hex, handed out
 * once the admin_token was entered in the login form, kept in an
 * HttpOnly; SameSite=Strict cookie. At most CONSOLE_SESSIONS live at once
 * (a new login evicts the oldest), each for CONSOLE_SESSION_TTL_S from its
 * login, and logout forgets it. The process restarting forgets them all.
 *
 * The CSRF token of a session is HMAC-SHA256(key, id) in hex, key random
 * per process, so it needs no storage and a page of one session is useless
 * to another. A Bearer client (no cookie) gets the token of the fixed id
 * CONSOLE_BEARER_ID. Every comparison of presented secrets is constant-time
 * (CRYPTO_memcmp) against every candidate.
 *
 * Threads: any thread; one mutex guards the session table.
 */
#ifndef EGOI_CONSOLE_AUTH_H
#define EGOI_CONSOLE_AUTH_H

#include <pthread.h>
#include <stddef.h>

#define CONSOLE_SESSIONS 16
#define CONSOLE_SESSION_TTL_S 43200.0   /* 12 h */
#define CONSOLE_ID_HEX 64               /* a session id, a CSRF token: hex of 32 bytes */
#define CONSOLE_BEARER_ID "bearer"

struct console_session {
	char id[CONSOLE_ID_HEX + 1];    /* "" = free */
	double created;                 /* unix seconds */
};

struct console_auth {
	pthread_mutex_t mu;
	unsigned char key[32];          /* CSRF HMAC key */
	struct console_session s[CONSOLE_SESSIONS];
	int ready;                      /* mu initialised */
};

/* 0, or -1 (no randomness, no mutex). */
int console_auth_init(struct console_auth *a);

/* a may be zeroed. */
void console_auth_free(struct console_auth *a);

/* A new session at now into id; 0, or -1 without randomness. */
int console_auth_login(struct console_auth *a, double now, char id[CONSOLE_ID_HEX + 1]);

/* 1 when id names a live session at now, else 0 (an expired one is freed). */
int console_auth_valid(struct console_auth *a, const char *id, double now);

/* Forgets session id (nothing when unknown). */
void console_auth_logout(struct console_auth *a, const char *id);

/* The CSRF token of session id (or CONSOLE_BEARER_ID) into out. */
void console_auth_csrf(const struct console_auth *a, const char *id,
		       char out[CONSOLE_ID_HEX + 1]);

/* 1 when presented is id's CSRF token; constant-time. presented may be NULL. */
int console_auth_csrf_ok(const struct console_auth *a, const char *id, const char *presented);

#endif
