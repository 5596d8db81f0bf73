/*
 * faulty_internal.h — what faulty.c (the server: listening socket, modes,
 * records, counts) and faulty_conn.c (one connection's thread: read a
 * request, record it, answer as the mode says) share. Not for tests.
 *
 * Threads: every field of struct faulty is under f->mu except stop
 * (atomic), acceptor and port (set before the threads start).
 */
#ifndef E2E_FAULTY_INTERNAL_H
#define E2E_FAULTY_INTERNAL_H

#include "e2e/faulty.h"

#include <pthread.h>
#include <stdatomic.h>

#define FAULTY_MAX_HEADER (64 * 1024)
#define FAULTY_MAX_BODY (16 * 1024 * 1024)
#define FAULTY_TICK_MS 20         /* accept thread's longest sleep */
#define FAULTY_CONN_TICK_MS 100   /* connection threads' longest sleep */
#define FAULTY_SWITCH_MS 3000     /* faulty_set_mode's longest wait */

struct faulty_conn {
	struct faulty *f;
	int fd;                       /* under f->mu; -1 once closed */
	pthread_t thread;
	atomic_int done;
	struct faulty_conn *next;
};

struct faulty {
	pthread_mutex_t mu;
	pthread_cond_t cv;            /* signalled when a generation is applied */
	int port;
	int lfd;                      /* listening socket or -1; written by the accept thread */
	enum faulty_mode mode;
	int status;
	char retry_after[64];
	unsigned gen, applied;
	atomic_int stop;
	pthread_t acceptor;
	struct faulty_conn *conns;
	struct faulty_request **recs; /* each record and what it points to is owned here */
	size_t nrecs, caprecs;
	size_t connections, resets;
};

/* Thread body of one accepted connection (arg: its struct faulty_conn, which
 * the accept thread owns and frees after the join). */
void *faulty_conn_main(void *arg);

/* Closes fd with SO_LINGER 0, so the peer gets a reset instead of a FIN. */
void faulty_conn_reset(int fd);

#endif
