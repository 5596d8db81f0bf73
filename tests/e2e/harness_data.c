/*
 * harness_data.c — reading what the daemon left behind: the outbox database
 * (opened read-only, one connection per query so nothing is held across a
 * daemon restart) and JSON text helpers that locate events by bytes, written
 * independently of the daemon's parser so the tests do not share its bugs.
 *
 * Threads: test thread only.
 */
#include "e2e/harness.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- database --- */

static sqlite3_stmt *harness_sql_step(const struct harness *h, const char *sql, sqlite3 **dbp)
{
	sqlite3_stmt *st = NULL;

	*dbp = NULL;
	if (sqlite3_open_v2(h->db, dbp, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(*dbp, 2000);
	if (sqlite3_prepare_v2(*dbp, sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	return st;
fail:
	fprintf(stderr, "[e2e] sql \"%s\" on %s: %s\n", sql, h->db,
		*dbp != NULL ? sqlite3_errmsg(*dbp) : "cannot open");
	sqlite3_finalize(st);
	sqlite3_close(*dbp);
	*dbp = NULL;
	return NULL;
}

long harness_sql_long(const struct harness *h, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st = harness_sql_step(h, sql, &db);
	long v;

	if (st == NULL)
		return -1;
	v = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

char *harness_sql_text(const struct harness *h, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st = harness_sql_step(h, sql, &db);
	char *v = NULL;

	if (st == NULL)
		return NULL;
	const unsigned char *t = sqlite3_column_text(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	if (t != NULL && (v = malloc((size_t)n + 1)) != NULL) {
		memcpy(v, t, (size_t)n);
		v[n] = '\0';
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

int harness_sql_wait(const struct harness *h, const char *sql, long want, long timeout_ms)
{
	for (long waited = 0;; waited += 50) {
		if (harness_sql_long(h, sql) == want)
			return 0;
		if (waited >= timeout_ms)
			return -1;
		harness_sleep_ms(50);
	}
}

/* --- JSON text --- */

static size_t js_ws(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* Index just past the value starting at i (valid JSON assumed), or len. */
static size_t js_skip(const char *t, size_t len, size_t i)
{
	int depth = 0;

	do {
		if (i >= len)
			return len;
		char c = t[i];
		if (c == '"') {
			for (i++; i < len && t[i] != '"'; i++)
				if (t[i] == '\\')
					i++;
			i++;
		} else if (c == '{' || c == '[') {
			depth++;
			i++;
		} else if (c == '}' || c == ']') {
			depth--;
			i++;
		} else if (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			i++;
		} else {
			while (i < len && strchr(",:]} \t\r\n", t[i]) == NULL)
				i++;
		}
	} while (depth > 0);
	return i;
}

int harness_event_spans(const char *t, size_t len, struct harness_span *spans, size_t max)
{
	size_t i = js_ws(t, len, 0);
	int n = 0;

	if (i >= len || t[i] != '{')
		return -1;
	for (i = js_ws(t, len, i + 1); i < len && t[i] == '"';) {
		size_t key = i, kend = js_skip(t, len, i);
		i = js_ws(t, len, kend);
		if (i >= len || t[i] != ':')
			return -1;
		i = js_ws(t, len, i + 1);
		if (kend - key == 8 && memcmp(t + key, "\"events\"", 8) == 0 && t[i] == '[') {
			for (i = js_ws(t, len, i + 1); i < len && t[i] != ']';) {
				size_t end = js_skip(t, len, i);
				if ((size_t)n < max) {
					spans[n].off = i;
					spans[n].len = end - i;
				}
				n++;
				i = js_ws(t, len, end);
				if (i < len && t[i] == ',')
					i = js_ws(t, len, i + 1);
			}
			return n;
		}
		i = js_ws(t, len, js_skip(t, len, i));
		if (i < len && t[i] == ',')
			i = js_ws(t, len, i + 1);
	}
	return -1;
}

char *harness_minify(const char *t, size_t len)
{
	char *out = malloc(len + 1);
	size_t n = 0;
	int in_str = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];
		if (in_str) {
			out[n++] = c;
			if (c == '\\' && i + 1 < len)
				out[n++] = t[++i];
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
			out[n++] = c;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			out[n++] = c;
		}
	}
	out[n] = '\0';
	return out;
}
