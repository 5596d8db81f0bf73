/*
 * json_out.h — writing strings that may not be UTF-8 into JSON output.
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
#include <yajl/yajl_gen.h>

/* Writes s[0..len) as a JSON string (s NULL = null). Returns yajl's status. */
yajl_gen_status json_out_string(yajl_gen g, const char *s, size_t len);

#endif
