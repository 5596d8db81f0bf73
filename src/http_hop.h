/*
 * http_hop.h — forward loop protection at intake.
 *
 * Every forward carries X-Router-Hop: N (deliver_request.c), N = the hop
 * count of the batch it came from + 1; a batch from E-goi has none (0). A
 * batch arriving with a hop count of max_hops or more went around a loop
 * (a rule forwarding to this router, or to another router that forwards
 * back): intake answers 508 before reading its body, so a loop dies out
 * after max_hops rounds instead of multiplying.
 *
 * Threads: pure function.
 */
#ifndef EGOI_HTTP_HOP_H
#define EGOI_HTTP_HOP_H

/*
 * Checks the X-Router-Hop value (NULL = header absent). Returns 0 with *hop
 * set when the batch may come in; otherwise the status to answer (400: not
 * a decimal count; 508: *hop >= max_hops) with *reason set.
 */
int http_hop_check(const char *value, long max_hops, long *hop, const char **reason);

#endif
