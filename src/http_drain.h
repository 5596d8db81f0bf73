/*
 * http_drain.h — stopping the intake without cutting an answer.
 *
 * civetweb 1.15's mg_stop sets a stop flag that every write checks: from
 * that moment mg_write sends nothing, and mg_stop then closes whatever
 * connections remain. A worker that has committed a batch but not yet
 * written its 200 would lose the answer, and E-goi would send the batch
 * again (a duplicate). So http_stop drains before it calls mg_stop:
 *
 * 1. http_drain_close_listeners: civetweb has no call to stop listening
 *    early, but the listening sockets are this process's descriptors. Each
 *    is shut down (the kernel refuses new connections at once) and its
 *    descriptor number replaced with a pipe's read end on which poll never
 *    reports anything, so civetweb's accept loop neither spins nor touches
 *    a number that could be reused (see http_drain.c).
 * 2. http_drain_begin: from now on a handler that asks to enter is refused
 *    (it answers 503 with Connection: close, nothing committed, E-goi sends
 *    again later); handlers already inside go on and answer.
 * 3. http_drain_wait: until no handler is inside, or the grace is over.
 *
 * The gate has no window between "a handler starts" and "the drain
 * begins": a handler increments the in-flight count first and reads the
 * flag second; the drainer sets the flag first and reads the count second
 * (sequentially consistent atomics). Either the handler sees the flag, or
 * the drainer sees the handler counted and waits for it.
 *
 * Threads: enter, leave and stopping on worker threads; the rest on the
 * thread that stops the server, one at a time.
 */
#ifndef EGOI_HTTP_DRAIN_H
#define EGOI_HTTP_DRAIN_H

#include <pthread.h>
#include <stdatomic.h>

struct http_drain {
	atomic_int draining;
	atomic_long inflight;
	pthread_mutex_t mu;            /* with idle: the drainer sleeps until inflight is 0 */
	pthread_cond_t idle;
	int quiet[2];                  /* pipe; [0] replaces the listening sockets */
	int ready;                     /* set by a successful http_drain_init */
};

/* Prepares d (a pipe, a mutex, a condition). 0, or -1 with errno. */
int http_drain_init(struct http_drain *d);

/* Frees d; does nothing when init failed or never ran on a zeroed d.
 * Call after mg_stop: civetweb closes the descriptors that
 * http_drain_close_listeners replaced, this closes the pipe itself. */
void http_drain_free(struct http_drain *d);

/*
 * A handler starts. 1: go on, and call http_drain_leave when done. 0: the
 * intake is draining; answer 503 without touching the pipeline (do not
 * call http_drain_leave).
 */
int http_drain_enter(struct http_drain *d);

/* A handler that entered is done (its answer written or abandoned). */
void http_drain_leave(struct http_drain *d);

/* 1 once the drain has begun. A handler that entered may use it to refuse,
 * before committing anything, work it has not started. */
int http_drain_stopping(struct http_drain *d);

/* Refuses handlers from now on; returns how many are inside. */
long http_drain_begin(struct http_drain *d);

/* Waits until no handler is inside or grace_s seconds have passed;
 * returns how many are still inside (0: all answered). */
long http_drain_wait(struct http_drain *d, double grace_s);

/*
 * Shuts down every listening TCP socket of this process whose local port
 * is one of ports[0..nports) and puts d's quiet descriptor in its place
 * (same number, close-on-exec). Returns how many were replaced, or -1
 * (errno set) when /proc/self/fd cannot be read.
 */
int http_drain_close_listeners(struct http_drain *d, const int *ports, int nports);

/* Makes a poll on the replaced descriptors report input once, so a
 * civetweb accept loop asleep in poll looks at its stop flag now instead of
 * after its 2 s quantum. Call right before mg_stop. */
void http_drain_wake(struct http_drain *d);

#endif
