/*
 * metrics.h — the daemon's Prometheus metrics, served at GET /metrics.
 *
 * One process-wide set of counters, gauges and histograms, all fixed-size
 * arrays of <stdatomic.h> counters updated with relaxed atomics: nothing on
 * the request or delivery path takes a lock, except registering a label
 * value never seen before (see below).
 *
 * Bounded label cardinality, whatever the rules or the senders do:
 * - action: the E-goi actions of egoi_actions.h, anything else (unknown or
 *   malformed) is "other";
 * - code: the statuses the endpoint answers, anything else "other";
 * - decisions {kind,name} and deliveries {name,outcome}: at most
 *   METRICS_LABELS distinct pairs each, later new pairs count as name="other".
 *   Looking a pair up is lock-free; a mutex is taken only to add a new one.
 *
 * Workers count a batch's events and decisions in a struct metrics_tally on
 * their stack and add it to the shared counters once per batch
 * (metrics_tally_flush), so a 100-event batch costs a few dozen atomic
 * additions, not hundreds.
 *
 * Threads: every function is safe from any thread, except metrics_reset.
 */
#ifndef EGOI_METRICS_H
#define EGOI_METRICS_H

#include <stddef.h>

#include "egoi_actions.h"

#define METRICS_ACTIONS EGOI_ACTIONS  /* known E-goi actions; index METRICS_ACTIONS is "other" */
#define METRICS_LABELS 256        /* distinct (kind,name) pairs per labelled family */
#define METRICS_BUCKETS 13        /* histogram buckets, the last one is +Inf */
#define METRICS_TALLY_SLOTS 32    /* distinct decision labels a tally holds before it flushes */

enum metrics_kind {               /* egoi_router_decisions_total{kind} */
	METRICS_FORWARD,
	METRICS_WRITE,
	METRICS_DROP,
	METRICS_ERROR,
	METRICS_KINDS,
};

enum metrics_outcome {            /* egoi_router_deliveries_total{outcome} */
	METRICS_DONE,
	METRICS_RETRY,
	METRICS_DEAD,
	METRICS_OUTCOMES,
};

/* Upper bounds (seconds) of the finite histogram buckets, ascending. */
extern const double metrics_bucket_bounds[METRICS_BUCKETS - 1];

/* Index of the bucket a duration falls in: the first with seconds <= bound,
 * METRICS_BUCKETS - 1 (+Inf) when above all; negative or NaN counts as 0. */
int metrics_bucket(double seconds);

/* Index 0..METRICS_ACTIONS-1 of a known action, METRICS_ACTIONS ("other")
 * for anything else, NULL included. */
int metrics_action_index(const char *action);

/* One answer of the endpoint: egoi_router_requests_total{code} and
 * egoi_router_request_seconds. */
void metrics_request(int status, double seconds);

/* Why the intake refused a client before its request was handled:
 * egoi_router_refused_total{reason}. */
enum metrics_refusal {
	METRICS_REFUSED_CONN_CAP,     /* over max_connections_per_address */
	METRICS_REFUSED_ALLOW_FROM,   /* address not in allow_from */
	METRICS_REFUSED_RATE_LIMIT,   /* 429 */
	METRICS_REFUSED_SLOW_BODY,    /* 408, under min_body_rate or past the deadline */
	METRICS_REFUSED_FRAMING,      /* 400, invalid or duplicate Content-Length */
	METRICS_REFUSALS
};
void metrics_refused(enum metrics_refusal why);

/* One failed route() call: egoi_router_rule_errors_total. */
void metrics_rule_error(void);

/* One batch refused for its hop count: egoi_router_loops_refused_total. */
void metrics_loop_refused(void);

/* A batch waited waited_s seconds for a Lua state (every one was busy). */
void metrics_lua_state_wait(double waited_s);

/* One delivery attempt's outcome for destination name (NULL = "?"); seconds
 * is how long the attempt took, or < 0 when no request was sent (it is then
 * not observed in egoi_router_delivery_seconds). */
void metrics_delivery(const char *name, enum metrics_outcome outcome, double seconds);

/* The outbox gauges (egoi_router_outbox_pending, egoi_router_dead_letters),
 * refreshed by the delivery thread; a negative value leaves that gauge as it
 * was. Before the first call they are not exported. */
void metrics_set_outbox(long pending, long dead);

/* egoi_router_tls_certificate_expiry_seconds: the served certificate's
 * notAfter as unix seconds (Prometheus's *_expiry_seconds convention);
 * negative: no TLS, not exported. */
void metrics_set_tls_expiry(long not_after);

/* egoi_router_reloads_total{result="ok"} (ok != 0) or {result="refused"};
 * why (a refused reload's reason, may be NULL) is kept for the status
 * console with the time, not exported. */
void metrics_reload(int ok, const char *why);

/* egoi_router_destination_state values. */
enum metrics_dest_state {
	METRICS_DEST_CLOSED = 0,
	METRICS_DEST_OPEN = 1,
	METRICS_DEST_HALF_OPEN = 2,
};

/* One destination as the delivery thread last saw it. */
struct metrics_destination {
	const char *name;          /* scheme://host:port (no path, no credentials) */
	enum metrics_dest_state state;
	long backlog;              /* forwards waiting for it, in flight included */
};

/* Replaces the exported destinations (egoi_router_destination_state and
 * _backlog) with list[0..n) (copied; at most METRICS_LABELS are kept). */
void metrics_set_destinations(const struct metrics_destination *list, size_t n);

/* A batch's counts, kept by one thread until metrics_tally_flush. */
#define METRICS_TALLY_MEMO 4        /* (kind, name) -> slot look-ups a tally remembers */
#define METRICS_TALLY_MEMO_NAME 64  /* names this long or longer are looked up each time */
struct metrics_tally {
	unsigned long events[METRICS_ACTIONS + 1];
	int slot[METRICS_TALLY_SLOTS];
	unsigned long count[METRICS_TALLY_SLOTS];
	size_t nslots;
	/* the last look-ups by the name as given (copied: a caller may reuse its
	 * buffer), so most of a batch's decisions skip cleaning and hashing */
	struct {
		int kind, slot;   /* kind -1: unused */
		char name[METRICS_TALLY_MEMO_NAME];
	} memo[METRICS_TALLY_MEMO];
	unsigned memo_next;
};

void metrics_tally_init(struct metrics_tally *t);

/* One routed event; action NULL (malformed element) counts as "other". */
void metrics_tally_event(struct metrics_tally *t, const char *action);

/* One decision; name is the forward's name or host, the write path, the drop
 * reason, or for errors the dead-letter kind (rule_error, rejected). NULL
 * counts as "?". */
void metrics_tally_decision(struct metrics_tally *t, enum metrics_kind kind, const char *name);

/* Adds t to the shared counters and empties it. */
void metrics_tally_flush(struct metrics_tally *t);

/*
 * Writes the host of an http(s) URL as destination_key reads it (libcurl's
 * parser: lower-cased, without userinfo or port) into out, cut to cap
 * bytes (a label must never carry credentials). Returns out; "?" when url
 * is not an http(s) URL with a host.
 */
const char *metrics_url_host(const char *url, char *out, size_t cap);

/*
 * Renders every metric in the Prometheus text format 0.0.4 into a new
 * buffer (*out, NUL-terminated, *len bytes, freed by the caller).
 * Returns 0, or -1 when out of memory.
 */
int metrics_render(char **out, size_t *len);

/*
 * What the status console shows, read from the very counters
 * metrics_render exports (one relaxed read each, like a scrape).
 */
#define METRICS_VIEW_CODES 12     /* the statuses counted by code; one "other" after them */
struct metrics_view {
	int code[METRICS_VIEW_CODES];
	unsigned long requests[METRICS_VIEW_CODES + 1];  /* egoi_router_requests_total */
	unsigned long requests_total;
	unsigned long events_total;       /* egoi_router_events_total, summed */
	unsigned long rejected;           /* decisions_total{kind="error",name="rejected"} */
	unsigned long rule_errors;        /* egoi_router_rule_errors_total */
	unsigned long loops_refused;
	unsigned long refused[METRICS_REFUSALS];
	const char *refusal_name[METRICS_REFUSALS];  /* static */
	long pending, dead;               /* the outbox gauges; -1 not known yet */
	unsigned long reloads_ok, reloads_refused;
	double reload_at;                 /* unix s of the last reload, 0 = none */
	int reload_ok;
	char reload_why[256];             /* a refused reload's reason */
};
void metrics_read(struct metrics_view *v);

/* egoi_router_deliveries_total{name,outcome}; 0 when never counted. */
unsigned long metrics_delivery_count(const char *name, enum metrics_outcome outcome);

/* Zeroes everything and forgets registered labels. Tests only: no other
 * thread may use the metrics meanwhile. */
void metrics_reset(void);

#endif
