/*
 * util.h — small helpers that several modules would otherwise each write
 * again: growing an array, creating a directory path, hashing a short key,
 * a small pseudo-random generator, HMAC-SHA256, hex and base64 (HMAC and
 * base64 on OpenSSL). Bytes of unknown length grow in a struct util_buf
 * (util_buf.h) instead.
 *
 * Threads: every function is safe from any thread. The HMAC and SHA-256
 * algorithms are fetched from OpenSSL once per process and kept.
 */
#ifndef EGOI_UTIL_H
#define EGOI_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Room for one more element in the array v of *cap elements of elem bytes,
 * count of them in use. Returns v itself while there is room; else v
 * reallocated to twice its capacity (first elements to begin with), *cap
 * updated; or NULL when out of memory or the size would overflow (v is
 * then unchanged and still the caller's). Store the result back:
 *     p = util_array_grow(a->items, &a->cap, a->count, sizeof *p, 64);
 */
void *util_array_grow(void *v, size_t *cap, size_t count, size_t elem, size_t first);

/*
 * Called by util_mkdir_p for each directory it created, in path order, the
 * last one included: 0 to go on, or -1 with err set to stop there.
 */
typedef int (*util_mkdir_hook)(const char *dir, void *arg, char *err, size_t errlen);

/*
 * mkdir -p dir with mode 0750: each missing directory on the path is
 * created, an existing one is fine, and the whole path must end up a
 * directory. With sync, the parent of every directory created is fsync'ed
 * so the new entry is durable; then made_hook (when not NULL) runs for it.
 * 0, or -1 with err set.
 */
int util_mkdir_p(const char *dir, int sync, util_mkdir_hook made_hook, void *arg, char *err,
		 size_t errlen);

/* The next value of a xorshift64* generator; *state must not start at 0.
 * Well spread and cheap, not secret: retry jitter, request ids. */
uint64_t util_xorshift64s(uint64_t *state);

/* 64-bit FNV-1a of p[0..len), continuing from h (UTIL_FNV1A_BASIS to start). */
#define UTIL_FNV1A_BASIS 14695981039346656037ULL
uint64_t util_fnv1a(uint64_t h, const void *p, size_t len);

#define UTIL_HMAC_SHA256_LEN 32

#define UTIL_SHA256_LEN 32

/* SHA-256 of in[0..len): 0 with out set, or -1. */
int util_sha256(const void *in, size_t len, unsigned char out[UTIL_SHA256_LEN]);

/*
 * HMAC-SHA256 with key of a[0..alen) followed by b[0..blen) (b may be NULL
 * when blen is 0), without joining them in memory. 0 with mac set, or -1.
 */
int util_hmac_sha256(const void *key, size_t key_len, const void *a, size_t alen, const void *b,
		     size_t blen, unsigned char mac[UTIL_HMAC_SHA256_LEN]);

/* Lowercase hex of in[0..n) into out, which holds 2 * n + 1 bytes; NUL-terminated. */
void util_hex(char *out, const void *in, size_t n);

/* src into dst (cap > 0 bytes), cut to cap - 1 bytes, NUL-terminated: what
 * snprintf(dst, cap, "%s", src) does, without parsing a format per call. */
void util_copy(char *dst, size_t cap, const char *src);

/* Bytes util_dec writes at most, its NUL included. */
#define UTIL_DEC_SIZE 21

/* v in decimal into out (UTIL_DEC_SIZE bytes), NUL-terminated: its length.
 * For numbers in answers and headers, where snprintf's format parsing was
 * most of the cost of a small request's formatting. */
size_t util_dec(char *out, unsigned long long v);

/* Bytes util_base64_encode writes for len bytes, its terminating NUL included. */
#define UTIL_BASE64_SIZE(len) (4 * (((size_t)(len) + 2) / 3) + 1)

/*
 * Standard base64 (RFC 4648, with padding) of in[0..len) into out, which
 * holds UTIL_BASE64_SIZE(len) bytes; NUL-terminated. Returns the length
 * without the NUL, or -1 when len is over INT32_MAX / 2 (OpenSSL's limit).
 */
long util_base64_encode(char *out, const void *in, size_t len);

/*
 * Decodes strict standard base64: only A-Z a-z 0-9 + /, at least one of
 * them, then at most two '=', a multiple of 4 characters in all, no
 * whitespace. out holds cap bytes (len / 4 * 3 are needed; out may be NULL
 * with cap 0 to check only). Returns the decoded length, or -1.
 */
long util_base64_decode(unsigned char *out, size_t cap, const char *in, size_t len);

#endif
