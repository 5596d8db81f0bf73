/*
 * header_rule.h — which header a rule may add to a forward: ONE definition
 * for forward() (rules_api.c), which refuses a bad header as a rule error,
 * and for delivery (deliver_request.c), which skips any stored line that
 * does not pass (entries written before a rule change, hand-edited rows).
 *
 * A header is usable when its name is an HTTP token of 1..HEADER_RULE_NAME_MAX
 * characters, its value has at most HEADER_RULE_VALUE_MAX bytes and no
 * control character but HTAB (no CR, LF, NUL, ESC, DEL...), and the name is
 * not one the router sets itself: Content-Type (opts.content_type),
 * Content-Length, Transfer-Encoding, Connection, Expect, and every X-Router-*
 * and webhook-* name (delivery id, attempt, hop count, signatures).
 *
 * Threads: pure functions.
 */
#ifndef EGOI_HEADER_RULE_H
#define EGOI_HEADER_RULE_H

#include <stddef.h>

#define HEADER_RULE_NAME_MAX 256
#define HEADER_RULE_VALUE_MAX 8192

/*
 * NULL when the header may be sent, else why not, as a phrase that follows
 * "header 'NAME' " in a message ("is set by the router", ...).
 */
const char *header_rule_check(const char *name, size_t name_len, const char *value,
			      size_t value_len);

#endif
