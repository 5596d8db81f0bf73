/*
 * pipeline_engines.h — a bounded set of rules engines (Lua states) that the
 * worker threads borrow for the CPU part of a batch.
 *
 * civetweb holds one thread per open connection, and most of a worker's
 * time is spent outside Lua: reading the body, waiting for the group
 * commit, writing the answer. A Lua state, with a large batch's tape and
 * tables in it, costs megabytes; one per worker made memory grow with the
 * connection count although only as many batches as there are cores can
 * be parsed and routed at once. So a worker borrows an engine for
 * pipeline_route only (parse, route every event, copy out what outlives
 * it) and gives it back before its commit.
 *
 * An engine slot starts empty; pipeline.c builds its Lua state in the
 * borrowing thread and rebuilds it when a reload published a newer
 * generation (slot->generation, slot->retry_at). A borrower gets the most
 * recently returned slot that has a state, so under light load one state
 * stays warm and the others are never built; an empty slot is handed out
 * only when every built one is busy. When all slots are busy borrowers
 * queue and are served in arrival order.
 *
 * Rule globals live in a state, so a value a rule keeps in a global is seen
 * by the later batches that borrow the same state (as before, when it was
 * seen by the later batches of the same connection's worker): neither is a
 * promise that a given batch sees it.
 *
 * Threads: any thread may borrow and return; a slot and its state belong to
 * the borrower until it returns them (rules_adopt makes the borrower the
 * state's owner for rules.c's checks). The set itself is guarded by its
 * mutex. pipeline_engines_free runs when no slot is borrowed.
 */
#ifndef EGOI_PIPELINE_ENGINES_H
#define EGOI_PIPELINE_ENGINES_H

#include <stddef.h>

struct rules;

struct pipeline_engine {
	struct rules *rules;          /* NULL until the first borrower builds it */
	unsigned long generation;     /* of the rules text it was built from */
	double retry_at;              /* after a failed rebuild: monotonic time to try again */
};

struct pipeline_engines;

/* A set of max slots (at least 1), none built; NULL when out of memory. */
struct pipeline_engines *pipeline_engines_new(size_t max);

/* Frees every state; no slot may be borrowed. e may be NULL. */
void pipeline_engines_free(struct pipeline_engines *e);

/* Borrows a slot, waiting while all are busy. Never NULL. *waited_s (waited_s
 * may be NULL) gets the seconds it waited in the queue, 0 when a slot was free. */
struct pipeline_engine *pipeline_engines_borrow(struct pipeline_engines *e, double *waited_s);

/* Returns a borrowed slot (its state built or not). */
void pipeline_engines_return(struct pipeline_engines *e, struct pipeline_engine *slot);

/*
 * Shrinks to its live data (rules_idle) each built state that nobody
 * borrows, that was used since it last shrank and that has not been
 * borrowed for quiet_s seconds; returns how many shrank. A state under
 * steady use is never shrunk (a full collection costs more than a batch
 * at batch 1), so the daemon calls this once a second (quiet_s = 1) and a
 * daemon without traffic holds its states' live data only. Any thread;
 * skips states that are busy.
 */
size_t pipeline_engines_idle(struct pipeline_engines *e, double quiet_s);

/* How many slots have a state (for tests and /metrics). */
size_t pipeline_engines_built(struct pipeline_engines *e);

/* How many borrowers are waiting for a slot (for tests). */
size_t pipeline_engines_waiting(struct pipeline_engines *e);

/* The number of slots. */
size_t pipeline_engines_max(const struct pipeline_engines *e);

#endif
