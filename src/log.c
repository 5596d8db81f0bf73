/*
 * log.c — see log.h. Text lines look like
 *   2026-11-28T13:00:00.123Z info [req-id] message
 * JSON lines like
 *   {"ts":"...","level":"info","request_id":"...","msg":"..."}
 * The level and format are set once at start-up (and on reload) and read
 * with relaxed atomics from every thread.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_min = LOG_INFO;
static atomic_int log_json;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level min_level, int json)
{
	atomic_store_explicit(&log_min, (int)min_level, memory_order_relaxed);
	atomic_store_explicit(&log_json, json != 0, memory_order_relaxed);
}

int log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

int log_enabled(enum log_level lvl)
{
	return (int)lvl >= atomic_load_explicit(&log_min, memory_order_relaxed);
}

/* Appends s to buf as the inside of a JSON string; returns the new length. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c < 0x20) {
			len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
		} else {
			buf[len++] = (char)c;
		}
	}
	return len;
}

void log_msg(enum log_level lvl, const char *request_id, const char *fmt, ...)
{
	char msg[2048], line[4096], ts[40];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	size_t len;
	int n;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One message, one line: a newline inside would forge a log entry. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - (size_t)n, ".%03ldZ", (long)(tv.tv_usec / 1000));

	if (atomic_load_explicit(&log_json, memory_order_relaxed)) {
		len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",", ts,
				       level_names[lvl]);
		if (request_id) {
			len += (size_t)snprintf(line + len, sizeof line - len, "\"request_id\":\"");
			len = json_escape(line, len, sizeof line, request_id);
			len += (size_t)snprintf(line + len, sizeof line - len, "\",");
		}
		len += (size_t)snprintf(line + len, sizeof line - len, "\"msg\":\"");
		len = json_escape(line, len, sizeof line - 4, msg);
		len += (size_t)snprintf(line + len, sizeof line - len, "\"}\n");
	} else {
		len = (size_t)snprintf(line, sizeof line, "%s %s%s%s%s %s\n", ts, level_names[lvl],
				       request_id ? " [" : "", request_id ? request_id : "",
				       request_id ? "]" : "", msg);
	}
	if (len >= sizeof line) {
		len = sizeof line - 1;
		line[len - 1] = '\n';
	}
	/* A failed log write has nowhere to be reported. */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}
