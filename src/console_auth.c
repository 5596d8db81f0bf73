/*
 * console_auth.c — console sessions and CSRF tokens (see console_auth.h).
 */
#include "console_auth.h"

#include "http.h"
#include "util.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

int console_auth_init(struct console_auth *a)
{
	memset(a, 0, sizeof *a);
	if (RAND_bytes(a->key, (int)sizeof a->key) != 1)
		return -1;
	if (pthread_mutex_init(&a->mu, NULL) != 0)
		return -1;
	a->ready = 1;
	return 0;
}

void console_auth_free(struct console_auth *a)
{
	if (!a || !a->ready)
		return;
	pthread_mutex_destroy(&a->mu);
	OPENSSL_cleanse(a, sizeof *a);
}

int console_auth_login(struct console_auth *a, double now, char id[CONSOLE_ID_HEX + 1])
{
	unsigned char raw[CONSOLE_ID_HEX / 2];
	size_t slot = 0;

	if (RAND_bytes(raw, (int)sizeof raw) != 1)
		return -1;
	util_hex(id, raw, sizeof raw);
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < CONSOLE_SESSIONS; i++) {
		if (!a->s[i].id[0] || a->s[i].created + CONSOLE_SESSION_TTL_S <= now) {
			slot = i;
			break;
		}
		if (a->s[i].created < a->s[slot].created)
			slot = i;   /* the table is full: the oldest goes */
	}
	memcpy(a->s[slot].id, id, CONSOLE_ID_HEX + 1);
	a->s[slot].created = now;
	pthread_mutex_unlock(&a->mu);
	OPENSSL_cleanse(raw, sizeof raw);
	return 0;
}

int console_auth_valid(struct console_auth *a, const char *id, double now)
{
	int found = 0;

	if (!id)
		return 0;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < CONSOLE_SESSIONS; i++) {
		int match;

		if (!a->s[i].id[0])
			continue;
		match = http_token_equal(id, strlen(id), a->s[i].id);
		if (match && a->s[i].created + CONSOLE_SESSION_TTL_S <= now) {
			memset(&a->s[i], 0, sizeof a->s[i]);   /* expired */
			match = 0;
		}
		found |= match;
	}
	pthread_mutex_unlock(&a->mu);
	return found;
}

void console_auth_logout(struct console_auth *a, const char *id)
{
	if (!id)
		return;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < CONSOLE_SESSIONS; i++)
		if (a->s[i].id[0] && http_token_equal(id, strlen(id), a->s[i].id))
			memset(&a->s[i], 0, sizeof a->s[i]);
	pthread_mutex_unlock(&a->mu);
}

void console_auth_csrf(const struct console_auth *a, const char *id,
		       char out[CONSOLE_ID_HEX + 1])
{
	unsigned char mac[UTIL_HMAC_SHA256_LEN];

	_Static_assert(2 * UTIL_HMAC_SHA256_LEN == CONSOLE_ID_HEX, "a CSRF token is one MAC in hex");
	if (util_hmac_sha256(a->key, sizeof a->key, id, strlen(id), NULL, 0, mac) != 0) {
		out[0] = '\0';   /* no token matches: console_auth_csrf_ok refuses an empty one */
		return;
	}
	util_hex(out, mac, sizeof mac);
}

int console_auth_csrf_ok(const struct console_auth *a, const char *id, const char *presented)
{
	char want[CONSOLE_ID_HEX + 1];

	if (!presented || !id)
		return 0;
	console_auth_csrf(a, id, want);
	return want[0] && http_token_equal(presented, strlen(presented), want);
}
