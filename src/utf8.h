/*
 * utf8.h — one well-formed UTF-8 sequence at a time, for the modules that
 * escape or clean text from events and rules (log lines, metric labels).
 * Pure functions, any thread.
 */
#ifndef EGOI_UTF8_H
#define EGOI_UTF8_H

#include <stddef.h>

/*
 * Length (1-4) of the well-formed UTF-8 sequence at s, reading at most n
 * bytes (n >= 1), with its code point in *cp; 0 when s does not start one.
 * Overlong forms, surrogates (U+D800-U+DFFF) and code points past U+10FFFF
 * are not well-formed. A NUL byte ends a sequence (it is no continuation
 * byte), so a NUL-terminated string may be read with n = 4.
 */
size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp);

#endif
