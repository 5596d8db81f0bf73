/*
 * console_html.h — text helpers of the status console: HTML escaping,
 * masking contact e-mail addresses, times and durations as people read
 * them. Everything the console shows that came from events, rules,
 * destinations or the database goes through console_html_text.
 *
 * Threads: pure functions, safe from any thread.
 */
#ifndef EGOI_CONSOLE_HTML_H
#define EGOI_CONSOLE_HTML_H

#include <stddef.h>

struct util_buf;

/* Appends s[0..n) to b with & < > " ' escaped; NUL and other control
 * bytes but tab and newline become U+FFFD, so nothing can end the text. */
void console_html_escape(struct util_buf *b, const char *s, size_t n);

/* console_html_escape of a NUL-terminated s; NULL appends "-". */
void console_html_text(struct util_buf *b, const char *s);

/*
 * A copy of s[0..n) (NUL-terminated, malloc'd, *out_len bytes) where each
 * e-mail address keeps the first character of its local part and of its
 * domain and the top-level domain, the rest masked: "ana.silva@example.pt"
 * becomes "a***@e***.pt". NULL when out of memory.
 */
char *console_mask_emails(const char *s, size_t n, size_t *out_len);

/* t (unix seconds) as "2026-12-02 18:36:19Z" into out; t <= 0 gives "-". */
const char *console_html_time(double t, char *out, size_t cap);

/* A duration in seconds as "3d 4h", "2h 5m", "4m 10s", "12s". */
const char *console_html_duration(double seconds, char *out, size_t cap);

#endif
