/*
 * json_out.h — the CLI's JSON lines: strings that may not be UTF-8, a
 * generator's buffer as one line, a line of counts.
 *
 * The CLI prints rule-made text (write paths, drop reasons, Lua error
 * messages, forward bodies) as JSON lines; any of it may hold bytes that
 * are not UTF-8, which would make the line invalid JSON. The generator must
 * have yajl_gen_validate_utf8 set: a string it refuses is written again
 * with '?' for every byte above 0x7f.
 */
#ifndef EGOI_JSON_OUT_H
#define EGOI_JSON_OUT_H

#include <stddef.h>
#include <stdio.h>
#include <yajl/yajl_gen.h>

/* Writes s[0..len) as a JSON string (s NULL = null). Returns yajl's status. */
yajl_gen_status json_out_string(yajl_gen g, const char *s, size_t len);

/* Writes the generator's buffer and a newline to out; 0 or -1. */
int json_out_line(yajl_gen g, FILE *out);

/* Prints {"key":val,...} and a newline on stdout and flushes; 0 or -1. */
int json_out_counts(const char *const *keys, const long *vals, size_t n);

#endif
