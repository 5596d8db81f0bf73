/*
 * http_watchdog.h — a deadline for reading a request body.
 *
 * civetweb's request_timeout_ms bounds each read, and mg_read returns only
 * when it has every byte it was asked for, so a client trickling its body
 * a byte every few seconds would hold a worker thread (one per connection)
 * for as long as it likes. Each worker arms its slot with a deadline while
 * it reads a body; a watchdog thread looks twice a second and, for a slot
 * past its deadline, finds that connection's socket (peer address and
 * port, on one of our listening ports) and shuts its reading side down.
 * The worker's mg_read then returns, it answers 408 and closes.
 *
 * A minimum rate as well (min_body_rate): after HTTP_WATCHDOG_RATE_GRACE_S
 * a body must have arrived at that many bytes per second since, or it is
 * cut the same way. The worker reads in pieces of at most
 * http_watchdog_read_piece bytes and reports them, so its count lags
 * the truth by one piece at most.
 *
 * Threads: slots belong to worker threads; the watchdog reads them under
 * each slot's mutex. While the watchdog holds it, the worker cannot leave
 * the body read (disarm takes the mutex), so its socket cannot be closed
 * and its descriptor cannot be reused under the watchdog's feet.
 */
#ifndef EGOI_HTTP_WATCHDOG_H
#define EGOI_HTTP_WATCHDOG_H

#include <pthread.h>
#include <sys/queue.h>
#include <stdatomic.h>
#include <stddef.h>

#define HTTP_WATCHDOG_RATE_GRACE_S 2.0

struct http_watchdog;

/* One worker's slot; embed it in the worker's state. */
struct http_watchdog_slot {
	pthread_mutex_t mu;
	int armed;
	int fired;
	int warned;                /* "socket not found" already logged for this arming */
	double deadline;           /* clock_mono() seconds */
	double armed_at;           /* clock_mono() seconds */
	double min_rate;           /* bytes/s after the grace, 0 = none */
	long long expect;          /* bytes the body should have in all */
	atomic_llong received;     /* bytes read so far, by the worker */
	char peer[48];             /* numeric address, as civetweb reports it */
	int peer_port;
	LIST_ENTRY(http_watchdog_slot) link;   /* in the watchdog's list, under its mu */
};

/* Starts the watchdog thread. NULL on failure. */
struct http_watchdog *http_watchdog_start(void);

/* Our listening ports (copied; known only once the server is up). */
void http_watchdog_set_ports(struct http_watchdog *wd, const int *ports, int nports);

/* Stops and frees; every slot must be unregistered first. wd may be NULL. */
void http_watchdog_stop(struct http_watchdog *wd);

/* Adds / removes a worker's slot (init_thread / exit_thread). */
void http_watchdog_register(struct http_watchdog *wd, struct http_watchdog_slot *slot);
void http_watchdog_unregister(struct http_watchdog *wd, struct http_watchdog_slot *slot);

/* The worker starts reading a body of expect bytes from peer:port; give up
 * at deadline, or once it falls below min_rate (0 = no minimum). */
void http_watchdog_arm(struct http_watchdog_slot *slot, const char *peer, int peer_port,
		       double deadline, double min_rate, long long expect);

/* The worker has read n more bytes of the body (no lock: an atomic). */
void http_watchdog_progress(struct http_watchdog_slot *slot, size_t n);

/* Largest piece to read at once so that progress keeps up with min_rate. */
size_t http_watchdog_read_piece(double min_rate);

/* The worker is done reading; returns 1 if the watchdog cut the connection. */
int http_watchdog_disarm(struct http_watchdog_slot *slot);

#endif
