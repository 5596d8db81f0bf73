/*
 * log.h — one-line logging, text or JSON, to stderr or to log_file.
 *
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from concurrent threads never interleave.
 * Never pass secrets or whole payloads. Event and rule data may be passed:
 * messages, field values and request ids are escaped (control characters,
 * DEL, C1, U+2028/U+2029, invalid UTF-8), so a line reaches no terminal raw
 * and a JSON line stays valid JSON.
 *
 * Lines carry a message and optional typed fields (log_fields): text lines
 * append them as key=value, JSON lines as members of the object, so a log
 * shipper reads status or duration_ms without parsing the message.
 *
 * Output (log_out.c): stderr, or log_file opened by log_open_file and
 * reopened by log_reopen (SIGUSR1, for logrotate). On stderr under systemd
 * (JOURNAL_STREAM names stderr's device and inode), each line starts with
 * the sd-daemon priority ("<3>" error ... "<7>" debug) so journald keeps the
 * level (journalctl -p err).
 *
 * Repeats (log_limit.c): log_limited writes a line with a given key at most
 * once per LOG_REPEAT_S; the ones in between are counted and the next line
 * (or log_limited_flush) says how many.
 *
 * Threads: any thread; log_setup, log_open_file and log_reopen are called
 * by the main thread.
 */
#ifndef EGOI_LOG_H
#define EGOI_LOG_H

#include <stddef.h>
#include <sys/types.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_LEVELS };

/* Sets the minimum level and the format (json != 0: one JSON object a line);
 * also looks whether stderr is systemd's journal stream (JOURNAL_STREAM). */
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

/* A field of a line: key is a constant identifier ([a-z_]); a string value
 * may carry any data (escaped; NULL is written as null / -). */
enum log_ftype { LOG_F_STR, LOG_F_INT, LOG_F_DBL };
struct log_field {
	const char *key;
	enum log_ftype type;
	const char *s;
	long long i;
	double d;          /* written with 3 decimals */
};
#define LOG_FS(k, v) { .key = (k), .type = LOG_F_STR, .s = (v) }
#define LOG_FI(k, v) { .key = (k), .type = LOG_F_INT, .i = (long long)(v) }
#define LOG_FD(k, v) { .key = (k), .type = LOG_F_DBL, .d = (double)(v) }

/* Writes one line with n fields after the message. */
void log_fields(enum log_level lvl, const char *request_id, const struct log_field *f, size_t n,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Sends lines to path (appended; created 0640) instead of stderr. With
 * chown_it, a file it creates or finds is given to uid:gid (run_as_user,
 * so a reopen after the privilege drop can open it again). A symlink or
 * anything but a regular file is refused. 0, or -1 with err.
 */
int log_open_file(const char *path, int chown_it, uid_t uid, gid_t gid, char *err, size_t errlen);

/* Opens log_file's path again (after logrotate renamed it) and switches to
 * the new descriptor; on failure the old one is kept and the reason logged.
 * Nothing to do (0) when lines go to stderr. 0 or -1. */
int log_reopen(void);

/* Back to stderr, closing log_file (tests, shutdown). */
void log_close_file(void);

/* The sd-daemon priority of a level: 3 error, 4 warn, 6 info, 7 debug. */
int log_priority(enum log_level lvl);

/* Seconds within which a second line with the same log_limited key is
 * counted instead of written. */
#define LOG_REPEAT_S 10.0

/*
 * Like log_fields (no request id), but a line whose key was written less
 * than LOG_REPEAT_S ago is only counted; the next one written for the key
 * says "(repeated N times)" and carries the field repeated=N.
 */
void log_limited(enum log_level lvl, const char *key, const struct log_field *f, size_t n,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes, for every key with lines counted since its last line, that last
 * line again with "(repeated N times)" (at stop, so no count is lost). */
void log_limited_flush(void);

/* Forgets every key (tests). */
void log_limited_reset(void);

/* Internal to log.c and log_out.c: writes a formatted line; looks at
 * JOURNAL_STREAM again. */
void log_out_write(enum log_level lvl, const char *line, size_t len);
void log_out_setup(void);

#endif
