/*
 * log.c — see log.h. Text lines look like
 *   2026-11-28T13:00:00.123Z info [req-id] message
 * JSON lines like
 *   {"ts":"...","level":"info","request_id":"...","msg":"..."}
 * The level and format are set once at start-up (log_setup) and read with
 * relaxed atomics from every thread. Messages and request ids are
 * escaped (log_escape): they carry event and rule data.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "utf8.h"

static atomic_int log_min = LOG_INFO;
static atomic_int log_json;

static const char *const level_names[LOG_LEVELS] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level min_level, int json)
{
	atomic_store_explicit(&log_min, (int)min_level, memory_order_relaxed);
	atomic_store_explicit(&log_json, json != 0, memory_order_relaxed);
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
 * that a terminal or a log viewer decisions on passes raw: C0 controls, DEL,
 * C1 controls and U+2028/U+2029 become \xNN or \uNNNN, and a byte that is
 * not valid UTF-8 becomes the text \xNN. In text lines a line break or tab
 * becomes a space (one message, one line, still readable); in JSON lines
 * '"' and '\' are escaped too, so the line stays valid JSON.
 */
static size_t log_escape(char *buf, size_t len, size_t cap, const char *str, int json)
{
	const unsigned char *s = (const unsigned char *)str;
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
		} else if (json && (c == '"' || c == '\\')) {
			unit[0] = '\\';
			unit[1] = (char)c;
			n = 2;
		} else if (json && (c < 0x20 || c == 0x7f)) {
			n = (size_t)snprintf(unit, sizeof unit, "\\u%04x", c);
		} else if (c == '\n' || c == '\r' || c == '\t') {
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
static void utf8_trim(char *s)
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

void log_msg(enum log_level lvl, const char *request_id, const char *fmt, ...)
{
	char msg[2048], line[4096], ts[40];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t len;
	int n, json;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof msg)
		utf8_trim(msg);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - (size_t)n, ".%03ldZ", (long)(tv.tv_usec / 1000));

	json = atomic_load_explicit(&log_json, memory_order_relaxed);
	/* room is kept for the line's end: "\"}\n" or "\n" */
	if (json) {
		len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",", ts,
				       level_names[lvl]);
		if (request_id) {
			len += (size_t)snprintf(line + len, sizeof line - len, "\"request_id\":\"");
			len = log_escape(line, len, sizeof line - 8, request_id, 1);
			len += (size_t)snprintf(line + len, sizeof line - len, "\",");
		}
		len += (size_t)snprintf(line + len, sizeof line - len, "\"msg\":\"");
		len = log_escape(line, len, sizeof line - 4, msg, 1);
		len += (size_t)snprintf(line + len, sizeof line - len, "\"}\n");
	} else {
		len = (size_t)snprintf(line, sizeof line, "%s %s", ts, level_names[lvl]);
		if (request_id) {
			len += (size_t)snprintf(line + len, sizeof line - len, " [");
			len = log_escape(line, len, sizeof line - 8, request_id, 0);
			len += (size_t)snprintf(line + len, sizeof line - len, "]");
		}
		line[len++] = ' ';
		len = log_escape(line, len, sizeof line - 2, msg, 0);
		line[len++] = '\n';
	}
	/* A failed log write has nowhere to be reported. */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}
