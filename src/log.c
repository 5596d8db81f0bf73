/*
 * log.c — see log.h. Text lines look like
 *   2026-11-28T13:00:00.123Z info [req-id] message
 * JSON lines like
 *   {"ts":"...","level":"info","request_id":"...","msg":"..."}
 * with fields after the message, as key=value in text and as members in
 * JSON (log_fields). The level and format are set at start-up (log_setup)
 * and read with relaxed atomics from every thread. Messages, field values
 * and request ids are escaped (log_escape): they carry event and rule data.
 * Where lines go is log_out.c's. JSON lines are not made with yajl_gen:
 * it writes DEL, C1 controls and U+2028/U+2029 raw and refuses (or, not
 * validating, passes) invalid UTF-8, where a log line must show all of
 * them escaped; log_escape's one set of rules serves text and JSON alike.
 */
#include "log.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "utf8.h"

static atomic_int log_min = LOG_INFO;
static atomic_int log_json;

static const char *const level_names[LOG_LEVELS] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level min_level, int json)
{
	atomic_store_explicit(&log_min, (int)min_level, memory_order_relaxed);
	atomic_store_explicit(&log_json, json != 0, memory_order_relaxed);
	log_out_setup();
}

const char *log_level_name(enum log_level lvl)
{
	return (unsigned)lvl < LOG_LEVELS ? level_names[lvl] : NULL;
}

int log_level_parse(const char *name)
{
	for (int i = 0; i < LOG_LEVELS; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void log_level_list(char *buf, size_t cap)
{
	size_t n = 0;

	if (cap == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < LOG_LEVELS && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", level_names[i]);
}

int log_enabled(enum log_level lvl)
{
	return (int)lvl >= atomic_load_explicit(&log_min, memory_order_relaxed);
}

/*
 * Appends s to buf[len..cap) escaped for a log line and returns the new
 * length; an escape is written whole or not at all (a long message is cut
 * at a character boundary). Messages carry event and rule data, so nothing
 * that a terminal or a log viewer acts on passes raw: C0 controls, DEL,
 * C1 controls and U+2028/U+2029 become \xNN or \uNNNN, and a byte that is
 * not valid UTF-8 becomes the text \xNN. In text lines a line break or tab
 * becomes a space (one message, one line, still readable); in JSON lines
 * '"' and '\' are escaped too, so the line stays valid JSON; in a quoted
 * text field value (ESC_QUOTED) they are escaped the same way, so the
 * value's end is unambiguous.
 */
enum log_esc { ESC_TEXT, ESC_JSON, ESC_QUOTED };

static size_t log_escape(char *buf, size_t len, size_t cap, const char *str, enum log_esc mode)
{
	const unsigned char *s = (const unsigned char *)str;
	int json = mode == ESC_JSON;
	char unit[8];

	while (*s) {
		unsigned c = *s, cp = 0;
		size_t used = 1, n;

		if (c >= 0x80 && (used = utf8_decode(s, 4, &cp)) == 0) {
			used = 1;
			n = (size_t)snprintf(unit, sizeof unit, json ? "\\\\x%02x" : "\\x%02x", c);
		} else if (c >= 0x80 && !(cp <= 0x9f || cp == 0x2028 || cp == 0x2029)) {
			memcpy(unit, s, used);
			n = used;
		} else if (c >= 0x80) {
			n = (size_t)snprintf(unit, sizeof unit, "\\u%04x", cp);
		} else if (mode != ESC_TEXT && (c == '"' || c == '\\')) {
			unit[0] = '\\';
			unit[1] = (char)c;
			n = 2;
		} else if (json && (c < 0x20 || c == 0x7f)) {
			n = (size_t)snprintf(unit, sizeof unit, "\\u%04x", c);
		} else if (!json && (c == '\n' || c == '\r' || c == '\t')) {
			unit[0] = ' ';
			n = 1;
		} else if (c < 0x20 || c == 0x7f) {
			n = (size_t)snprintf(unit, sizeof unit, "\\x%02x", c);
		} else {
			unit[0] = (char)c;
			n = 1;
		}
		if (len + n >= cap)
			break;
		memcpy(buf + len, unit, n);
		len += n;
		s += used;
	}
	return len;
}

/* Cuts a UTF-8 sequence left incomplete at the end of s by truncation. */
static void log_utf8_trim(char *s)
{
	size_t len = strlen(s), i = len, need;
	unsigned c;

	while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0 || (c = (unsigned char)s[i - 1]) < 0xc0)
		return;
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (len - (i - 1) < need)
		s[i - 1] = '\0';
}

/* A text field value needs quotes when a reader could not tell where it ends. */
static int log_needs_quotes(const char *s)
{
	if (!*s)
		return 1;
	for (; *s; s++)
		if (*s == ' ' || *s == '"' || *s == '=' || *s == '\\' || (unsigned char)*s < 0x20 ||
		    *s == 0x7f)
			return 1;
	return 0;
}

/* Appends snprintf's output, never past cap - 1 (a cut number is dropped). */
static size_t log_put(char *buf, size_t len, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static size_t log_put(char *buf, size_t len, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (len >= cap)
		return len;
	va_start(ap, fmt);
	n = vsnprintf(buf + len, cap - len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - len) {
		buf[len] = '\0';
		return len;
	}
	return len + (size_t)n;
}

/*
 * Appends one field, whole or not at all (a JSON member without its value
 * would break the line); a long string value is cut, still well-formed.
 */
static size_t log_field_put(char *buf, size_t len, size_t cap, const struct log_field *f, int json)
{
	char tmp[1024];
	size_t n = log_put(tmp, 0, sizeof tmp, json ? ",\"%s\":" : " %s=", f->key), k = n;

	switch (f->type) {
	case LOG_F_STR:
		if (!f->s) {
			n = log_put(tmp, n, sizeof tmp, "%s", json ? "null" : "-");
		} else if (json || log_needs_quotes(f->s)) {
			tmp[n++] = '"';
			n = log_escape(tmp, n, sizeof tmp - 1, f->s, json ? ESC_JSON : ESC_QUOTED);
			tmp[n++] = '"';
		} else {
			n = log_escape(tmp, n, sizeof tmp, f->s, ESC_TEXT);
		}
		break;
	case LOG_F_INT:
		n = log_put(tmp, n, sizeof tmp, "%lld", f->i);
		break;
	case LOG_F_DBL:
		if (isfinite(f->d))
			n = log_put(tmp, n, sizeof tmp, "%.3f", f->d);
		else
			n = log_put(tmp, n, sizeof tmp, "%s", json ? "null" : "-");
		break;
	}
	if (n == k || len + n >= cap)
		return len;
	memcpy(buf + len, tmp, n);
	return len + n;
}

static void log_vfields(enum log_level lvl, const char *request_id, const struct log_field *f,
			size_t nf, const char *fmt, va_list ap)
{
	char msg[2048], line[4096], ts[40];
	struct timeval tv;
	struct tm tm;
	size_t len;
	int n, json;

	if (!log_enabled(lvl) || (unsigned)lvl >= LOG_LEVELS)
		return;
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof msg)
		log_utf8_trim(msg);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - (size_t)n, ".%03ldZ", (long)(tv.tv_usec / 1000));

	json = atomic_load_explicit(&log_json, memory_order_relaxed);
	/* room is kept for the line's end: "}\n" or "\n", and for the fields
	 * (a message cut short keeps the fields, which are small) */
	if (json) {
		len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",", ts,
				       level_names[lvl]);
		if (request_id) {
			len += (size_t)snprintf(line + len, sizeof line - len, "\"request_id\":\"");
			len = log_escape(line, len, sizeof line - 8, request_id, ESC_JSON);
			len += (size_t)snprintf(line + len, sizeof line - len, "\",");
		}
		len += (size_t)snprintf(line + len, sizeof line - len, "\"msg\":\"");
		len = log_escape(line, len, sizeof line - 1024, msg, ESC_JSON);
		line[len++] = '"';
		for (size_t i = 0; i < nf; i++)
			len = log_field_put(line, len, sizeof line - 3, &f[i], 1);
		line[len++] = '}';
		line[len++] = '\n';
	} else {
		len = (size_t)snprintf(line, sizeof line, "%s %s", ts, level_names[lvl]);
		if (request_id) {
			len += (size_t)snprintf(line + len, sizeof line - len, " [");
			len = log_escape(line, len, sizeof line - 8, request_id, ESC_TEXT);
			len += (size_t)snprintf(line + len, sizeof line - len, "]");
		}
		line[len++] = ' ';
		len = log_escape(line, len, sizeof line - 1024, msg, ESC_TEXT);
		for (size_t i = 0; i < nf; i++)
			len = log_field_put(line, len, sizeof line - 2, &f[i], 0);
		line[len++] = '\n';
	}
	log_out_write(lvl, line, len);
}

void log_msg(enum log_level lvl, const char *request_id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vfields(lvl, request_id, NULL, 0, fmt, ap);
	va_end(ap);
}

void log_fields(enum log_level lvl, const char *request_id, const struct log_field *f, size_t n,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vfields(lvl, request_id, f, n, fmt, ap);
	va_end(ap);
}

int log_priority(enum log_level lvl)
{
	static const int prio[LOG_LEVELS] = { 7, 6, 4, 3 };

	return (unsigned)lvl < LOG_LEVELS ? prio[lvl] : 3;
}
