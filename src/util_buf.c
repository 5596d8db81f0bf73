/*
 * util_buf.c — see util_buf.h.
 */
#include "util_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int util_buf_reserve(struct util_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->failed)
		return -1;
	if (extra > (size_t)-1 / 2 - b->len || (b->max && b->len + extra > b->max)) {
		b->failed = b->over = 1;
		return -1;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : UTIL_BUF_FIRST;
	while (cap < need)
		cap *= 2;
	/* the limit caps the allocation too, not only the content */
	if (b->max && cap > b->max + 1)
		cap = b->max + 1;
	p = realloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	if (!b->p)
		p[0] = '\0';
	b->p = p;
	b->cap = cap;
	return 0;
}

int util_buf_add(struct util_buf *b, const void *data, size_t n)
{
	if (util_buf_reserve(b, n) != 0)
		return -1;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int util_buf_printf(struct util_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (util_buf_reserve(b, 0) != 0)
		return -1;
	/* Into the room there is; when that was too small, grow once and again. */
	for (int pass = 0; pass < 2; pass++) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			break;
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return 0;
		}
		b->p[b->len] = '\0';
		if (util_buf_reserve(b, (size_t)n) != 0)
			return -1;
	}
	b->p[b->len] = '\0';
	b->failed = 1;
	return -1;
}

void util_buf_reset(struct util_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
	b->failed = b->over = 0;
}

void util_buf_free(struct util_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = b->over = 0;
}
