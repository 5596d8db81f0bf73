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
 * Threads: slots belong to worker threads; the watchdog reads them under
 * each slot's mutex. While the watchdog holds it, the worker cannot leave
 * the body read (disarm takes the mutex), so its socket cannot be closed
 * and its descriptor cannot be reused under the watchdog's feet.
 */
#ifndef EGOI_HTTP_WATCHDOG_H
#define EGOI_HTTP_WATCHDOG_H

#include <pthread.h>

struct http_watchdog;

/* One worker's slot; embed it in the worker's state. */
struct http_watchdog_slot {
	pthread_mutex_t mu;
	int armed;
	int fired;
	int warned;                /* "socket not found" already logged for this arming */
	double deadline;           /* clock_mono() seconds */
	char peer[48];             /* numeric address, as civetweb reports it */
	int peer_port;
	struct http_watchdog_slot *next;
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

/* The worker starts reading a body from peer:port; give up at deadline. */
void http_watchdog_arm(struct http_watchdog_slot *slot, const char *peer, int peer_port,
		       double deadline);

/* The worker is done reading; returns 1 if the watchdog cut the connection. */
int http_watchdog_disarm(struct http_watchdog_slot *slot);

#endif
