/*
 * log.h — one-line logging to stderr, text or JSON.
 *
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from concurrent threads never interleave.
 * Never pass secrets or whole payloads. Event and rule data may be passed:
 * messages and request ids are escaped (control characters, DEL, C1,
 * U+2028/U+2029, invalid UTF-8), so a line reaches no terminal raw and a
 * JSON line stays valid JSON.
 */
#ifndef EGOI_LOG_H
#define EGOI_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the minimum level and the format (json != 0: one JSON object a line). */
void log_setup(enum log_level min_level, int json);

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *name);

/* Returns non-zero when a message at lvl would be written. */
int log_enabled(enum log_level lvl);

/* Writes one line. request_id may be NULL (start-up, delivery thread). */
void log_msg(enum log_level lvl, const char *request_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
