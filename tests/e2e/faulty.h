/*
 * faulty.h — a scriptable, misbehaving webhook destination for the fault
 * tests: plain HTTP/1.1 with keep-alive on 127.0.0.1 (ephemeral port), built
 * on raw sockets and threads (not civetweb) so it can fail at the TCP level.
 *
 * Modes, switched at run time from the test thread (faulty_set_mode):
 *   FAULTY_OK         answer 200
 *   FAULTY_STATUS     answer a chosen status, optionally with Retry-After
 *   FAULTY_BLACKHOLE  accept and read requests, never answer; the connection
 *                     stays open until the mode changes (then it is closed
 *                     without an answer) or faulty_stop
 *   FAULTY_REFUSE     the listening socket is closed, so connects are
 *                     refused, and open connections are closed (within
 *                     100 ms), as when the server dies; leaving the mode
 *                     binds the same port again (SO_REUSEADDR)
 *   FAULTY_RESET      every new connection, and every request on an open
 *                     one, is closed with SO_LINGER 0 (a TCP reset)
 *
 * Every request that was read whole is recorded (arrival time, the delivery
 * headers, the status answered, the body, the "seq" tags of its events).
 * Records are appended before the answer is written, so by the time the
 * daemon can act on an answer the record exists; they are never moved or
 * freed before faulty_stop.
 *
 * Threads: one accept thread, one thread per connection; every function
 * here is called from the test thread (or any one thread at a time) and is
 * safe while requests arrive.
 */
#ifndef E2E_FAULTY_H
#define E2E_FAULTY_H

#include <stddef.h>

enum faulty_mode {
	FAULTY_OK,
	FAULTY_STATUS,
	FAULTY_BLACKHOLE,
	FAULTY_REFUSE,
	FAULTY_RESET,
};

/* One recorded request. The pointers stay valid until faulty_stop. */
struct faulty_request {
	double at;               /* CLOCK_REALTIME when the request was read whole */
	char delivery_id[128];   /* X-Router-Delivery-Id, "" when absent */
	long attempt;            /* X-Router-Attempt, 0 when absent */
	int status;              /* status answered; 0 = none (black hole, reset, refused) */
	double not_before;       /* answered with Retry-After: the earliest time (CLOCK_REALTIME)
				  * it allows the next request; 0 when none was sent */
	const char *uri;         /* request target as sent */
	const char *body;        /* NUL-terminated copy; body_len bytes of content */
	size_t body_len;
	const long *tags;        /* "seq" of each element of the body's "events" array */
	size_t ntags;
};

struct faulty_stats {
	size_t requests;         /* requests read whole */
	size_t answered_2xx;     /* of which answered 2xx */
	size_t distinct_ok;      /* distinct delivery ids answered 2xx */
	size_t duplicates;       /* delivery ids answered 2xx more than once */
	size_t connections;      /* connections accepted */
	size_t resets;           /* connections closed with a reset (FAULTY_RESET) */
};

struct faulty;

/* Starts in FAULTY_OK on 127.0.0.1:0. NULL on failure (message on stderr). */
struct faulty *faulty_start(void);

/* Closes every connection, joins every thread, frees every record; f may be NULL. */
void faulty_stop(struct faulty *f);

/* The bound port (the same for the server's whole life). */
int faulty_port(const struct faulty *f);

/* Writes "http://127.0.0.1:PORT" into buf. */
void faulty_url(const struct faulty *f, char *buf, size_t len);

/*
 * Switches the mode. status and retry_after matter for FAULTY_STATUS only:
 * retry_after NULL or "" = no Retry-After header; "N" is sent as is
 * (seconds); "+N" sends an HTTP date N seconds after each answer's time.
 * Returns once the mode is in force (for FAULTY_REFUSE: the listening socket
 * is closed; leaving it: the port is bound again), at most 3 s; 0 or -1
 * (message on stderr, e.g. the port could not be bound again).
 */
int faulty_set_mode(struct faulty *f, enum faulty_mode mode, int status,
		    const char *retry_after);

/* Number of requests recorded so far. */
size_t faulty_count(struct faulty *f);

/* Copies the i-th record (0-based) into *out; 0, or -1 when there is none. */
int faulty_get(struct faulty *f, size_t i, struct faulty_request *out);

/* Counts over everything recorded so far. */
void faulty_stats(struct faulty *f, struct faulty_stats *s);

/*
 * The sorted, distinct "seq" tags of the events in bodies answered 2xx, as a
 * malloc'd array (the caller frees it; NULL with *n = 0 when there are none
 * or memory ran out).
 */
long *faulty_tags(struct faulty *f, size_t *n);

#endif
