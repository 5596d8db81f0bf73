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

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_LEVELS };

/* Sets the minimum level and the format (json != 0: one JSON object a line). */
void log_setup(enum log_level min_level, int json);

/* The level's name as written in lines, in log_level = and by the rules'
 * log.NAME functions: "debug", "info", "warn", "error"; NULL when out of range. */
const char *log_level_name(enum log_level lvl);

/* Parses a level's name; returns -1 for anything else. */
int log_level_parse(const char *name);

/* Writes the names, least severe first, as "debug, info, warn, error" (for
 * messages); cut to fit cap. */
void log_level_list(char *buf, size_t cap);

/* Returns non-zero when a message at lvl would be written. */
int log_enabled(enum log_level lvl);

/* Writes one line. request_id may be NULL (start-up, delivery thread). */
void log_msg(enum log_level lvl, const char *request_id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
