/*
 * util_buf.h — a growable byte buffer with a size limit, for the places that
 * build text or read input of unknown length (the metrics page, a request
 * body, a batch file read by `test`, a commit's scratch space, the file
 * sink's queues).
 *
 * The buffer doubles as it grows (from UTIL_BUF_FIRST bytes) and never
 * holds more than max bytes of content (0 = no limit): a call that would go
 * past it, or an allocation that fails, leaves the content as it was and
 * marks the buffer failed; every later call then does nothing and fails
 * too, so a builder may make many calls and check once at the end. A
 * caller that goes on after one refused call (a queue that refuses one line
 * and keeps the others) clears failed and over itself. The
 * content is always NUL-terminated (the NUL is not counted in len nor in
 * max).
 *
 * Threads: a struct util_buf belongs to its caller; no shared state.
 */
#ifndef EGOI_UTIL_BUF_H
#define EGOI_UTIL_BUF_H

#include <stddef.h>

#define UTIL_BUF_FIRST 4096

struct util_buf {
	char *p;          /* content, NUL-terminated; NULL until the first growth */
	size_t len, cap;  /* cap: bytes allocated, the NUL's included */
	size_t max;       /* most content bytes allowed; 0 = no limit */
	int failed;       /* a call went over max or ran out of memory */
	int over;         /* ... and it was over max */
};

/* Room for extra more bytes after len (and the NUL). 0, or -1 (failed set). */
int util_buf_reserve(struct util_buf *b, size_t extra);

/* Appends n bytes. 0, or -1 (nothing appended, failed set). */
int util_buf_add(struct util_buf *b, const void *data, size_t n);

/* Appends printf output. 0, or -1 (nothing appended, failed set). */
__attribute__((format(printf, 2, 3)))
int util_buf_printf(struct util_buf *b, const char *fmt, ...);

/* Empties b and clears failed, keeping its storage for reuse. */
void util_buf_reset(struct util_buf *b);

/* Frees the storage; b is empty again (max kept, failed cleared). */
void util_buf_free(struct util_buf *b);

#endif
