/*
 * metrics.c — counters, gauges and histograms, and their Prometheus text
 * exposition (see metrics.h).
 *
 * Design: every metric is a fixed array of relaxed atomic counters in static
 * storage. Relaxed is enough: each counter only ever grows and nobody derives
 * one from another at run time; a scrape reads each one once and builds the
 * cumulative histogram buckets and _count from the same reads, so _count
 * always equals the +Inf bucket.
 *
 * Labelled families whose label values come from rules (decisions) or
 * outbox rows (deliveries) keep a table of at most METRICS_LABELS (kind, name)
 * pairs. Pairs are only ever added, never moved or removed (until
 * metrics_reset), so readers find them in an open-addressing index without a
 * lock: an index slot goes from 0 to "entry + 1" once, published with release
 * order after the entry was written. Adding a pair takes the family's mutex,
 * which happens once per distinct label value in the process's life.
 * When the table is full, new pairs count as name="other" of their kind.
 *
 * Threads: everything is safe from any thread except metrics_reset.
 */
#include "metrics.h"
#include "metrics_process.h"
#include "metrics_labels.h"
#include "clock.h"
#include "destination.h"
#include "outbox.h"
#include "util_buf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double metrics_bucket_bounds[METRICS_BUCKETS - 1] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* Statuses the endpoint answers; anything else is code="other". */
static const int metrics_codes[] = { 200, 400, 401, 404, 405, 408, 413, 415, 429, 500, 503, 508 };
#define METRICS_NCODES (sizeof metrics_codes / sizeof metrics_codes[0])
_Static_assert(METRICS_NCODES == METRICS_VIEW_CODES, "metrics_view has a slot per code");

static const char *const metrics_kind_names[METRICS_KINDS] = { "forward", "write", "drop",
							       "error" };
static const char *const metrics_outcome_names[METRICS_OUTCOMES] = { "done", "retry", "dead" };

struct metrics_hist {
	atomic_ulong bucket[METRICS_BUCKETS];   /* per bucket, not cumulative */
	atomic_ullong sum_ns;
};

static atomic_ulong metrics_requests[METRICS_NCODES + 1];
static struct metrics_hist metrics_request_hist;
static atomic_ulong metrics_events[METRICS_ACTIONS + 1];
static atomic_ulong metrics_rule_errors;
static atomic_ulong metrics_loops_refused;
static atomic_ulong metrics_lua_state_waits;
static atomic_ulong metrics_lua_state_wait_us;   /* microseconds: counters are integers */
static atomic_ulong metrics_refusals[METRICS_REFUSALS];
static const char *const metrics_refusal_names[METRICS_REFUSALS] = {
	"connection_cap", "allow_from", "rate_limit", "slow_body", "framing",
};
static struct metrics_family metrics_decisions = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct metrics_family metrics_deliveries = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct metrics_hist metrics_delivery_hist;
static atomic_long metrics_pending = -1;   /* -1: not known yet, not exported */
static atomic_long metrics_dead = -1;
static atomic_long metrics_tls_expiry = -1;   /* unix seconds; -1: no TLS, not exported */
static atomic_ulong metrics_reloads[2];       /* ok, refused */
/* The last reload, for the console (rare: under metrics_dest_lock). */
static double metrics_reload_at;
static int metrics_reload_ok;
static char metrics_reload_why[256];

/*
 * The destinations' gauges: a snapshot the delivery thread replaces about
 * once a second, copied under a mutex (two threads, rarely: no contention
 * worth avoiding). At most METRICS_LABELS destinations are exported.
 */
struct metrics_dest_row {
	char name[METRICS_LABEL_MAX + 1];
	int state;
	long backlog;
};
static pthread_mutex_t metrics_dest_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_dest_row metrics_dests[METRICS_LABELS];
static size_t metrics_ndests;

static void metrics_counter_add(atomic_ulong *c, unsigned long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static unsigned long metrics_counter_get(atomic_ulong *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

int metrics_bucket(double seconds)
{
	int i = 0;

	if (!(seconds > 0))   /* negative and NaN */
		return 0;
	while (i < METRICS_BUCKETS - 1 && seconds > metrics_bucket_bounds[i])
		i++;
	return i;
}

static void metrics_hist_observe(struct metrics_hist *h, double seconds)
{
	unsigned long long ns = 0;

	if (seconds > 0)   /* capped at 1e9 s: the conversion must not overflow */
		ns = (unsigned long long)((seconds < 1e9 ? seconds : 1e9) * 1e9 + 0.5);
	metrics_counter_add(&h->bucket[metrics_bucket(seconds)], 1);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

int metrics_action_index(const char *action)
{
	int i = egoi_action_index(action);

	return i < 0 ? METRICS_ACTIONS : i;
}

void metrics_request(int status, double seconds)
{
	size_t i = 0;

	while (i < METRICS_NCODES && metrics_codes[i] != status)
		i++;
	metrics_counter_add(&metrics_requests[i], 1);
	metrics_hist_observe(&metrics_request_hist, seconds);
}

void metrics_refused(enum metrics_refusal why)
{
	if ((int)why >= 0 && why < METRICS_REFUSALS)
		metrics_counter_add(&metrics_refusals[why], 1);
}

void metrics_rule_error(void)
{
	metrics_counter_add(&metrics_rule_errors, 1);
}

void metrics_loop_refused(void)
{
	metrics_counter_add(&metrics_loops_refused, 1);
}

void metrics_lua_state_wait(double waited_s)
{
	metrics_counter_add(&metrics_lua_state_waits, 1);
	metrics_counter_add(&metrics_lua_state_wait_us, waited_s > 0 ? (unsigned long)(waited_s * 1e6) : 0);
}

void metrics_set_outbox(long pending, long dead)
{
	if (pending >= 0)
		atomic_store_explicit(&metrics_pending, pending, memory_order_relaxed);
	if (dead >= 0)
		atomic_store_explicit(&metrics_dead, dead, memory_order_relaxed);
}

/* --- label tables --- */

void metrics_set_tls_expiry(long not_after)
{
	atomic_store(&metrics_tls_expiry, not_after);
}

void metrics_reload(int ok, const char *why)
{
	double now = clock_wall();

	atomic_fetch_add_explicit(&metrics_reloads[ok ? 0 : 1], 1, memory_order_relaxed);
	pthread_mutex_lock(&metrics_dest_lock);
	metrics_reload_at = now;
	metrics_reload_ok = ok != 0;
	snprintf(metrics_reload_why, sizeof metrics_reload_why, "%s", why && !ok ? why : "");
	pthread_mutex_unlock(&metrics_dest_lock);
}

void metrics_set_destinations(const struct metrics_destination *list, size_t n)
{
	if (n > METRICS_LABELS)
		n = METRICS_LABELS;
	pthread_mutex_lock(&metrics_dest_lock);
	for (size_t i = 0; i < n; i++) {
		metrics_label_clean(list[i].name ? list[i].name : "?", metrics_dests[i].name);
		metrics_dests[i].state = (int)list[i].state;
		metrics_dests[i].backlog = list[i].backlog;
	}
	metrics_ndests = n;
	pthread_mutex_unlock(&metrics_dest_lock);
}

void metrics_delivery(const char *name, enum metrics_outcome outcome, double seconds)
{
	int slot = metrics_family_slot(&metrics_deliveries, (int)outcome, name);

	metrics_counter_add(&metrics_deliveries.value[slot], 1);
	if (seconds >= 0)
		metrics_hist_observe(&metrics_delivery_hist, seconds);
}

/* --- a batch's tally --- */

void metrics_tally_init(struct metrics_tally *t)
{
	memset(t->events, 0, sizeof t->events);
	t->nslots = 0;
	for (size_t i = 0; i < METRICS_TALLY_MEMO; i++)
		t->memo[i].kind = -1;
	t->memo_next = 0;
}

/* The counter slot of (kind, name), from the tally's memo when it has it. */
static int metrics_tally_slot(struct metrics_tally *t, enum metrics_kind kind, const char *name)
{
	size_t len;
	int slot;

	if (!name)
		return metrics_family_slot(&metrics_decisions, (int)kind, name);
	for (size_t i = 0; i < METRICS_TALLY_MEMO; i++)
		if (t->memo[i].kind == (int)kind && strcmp(t->memo[i].name, name) == 0)
			return t->memo[i].slot;
	slot = metrics_family_slot(&metrics_decisions, (int)kind, name);
	len = strlen(name);
	if (len < METRICS_TALLY_MEMO_NAME) {
		unsigned m = t->memo_next++ % METRICS_TALLY_MEMO;

		t->memo[m].kind = (int)kind;
		t->memo[m].slot = slot;
		memcpy(t->memo[m].name, name, len + 1);
	}
	return slot;
}

void metrics_tally_event(struct metrics_tally *t, const char *action)
{
	t->events[metrics_action_index(action)]++;
}

static void metrics_tally_flush_decisions(struct metrics_tally *t)
{
	for (size_t i = 0; i < t->nslots; i++)
		metrics_counter_add(&metrics_decisions.value[t->slot[i]], t->count[i]);
	t->nslots = 0;
}

void metrics_tally_decision(struct metrics_tally *t, enum metrics_kind kind, const char *name)
{
	int slot = metrics_tally_slot(t, kind, name);

	for (size_t i = 0; i < t->nslots; i++) {
		if (t->slot[i] == slot) {
			t->count[i]++;
			return;
		}
	}
	if (t->nslots == METRICS_TALLY_SLOTS)
		metrics_tally_flush_decisions(t);
	t->slot[t->nslots] = slot;
	t->count[t->nslots++] = 1;
}

void metrics_tally_flush(struct metrics_tally *t)
{
	for (int i = 0; i <= METRICS_ACTIONS; i++)
		if (t->events[i])
			metrics_counter_add(&metrics_events[i], t->events[i]);
	metrics_tally_flush_decisions(t);
	metrics_tally_init(t);
}

const char *metrics_url_host(const char *url, char *out, size_t cap)
{
	char *key = NULL, *host = NULL;
	size_t n = 0;

	if (cap == 0)
		return out;
	/* The parser delivery uses (libcurl's), so the label is where it goes. */
	if (url && destination_key(url, &key, &host) == 0) {
		n = strlen(host);
		if (n >= cap)
			n = cap - 1;
		memcpy(out, host, n);
	}
	if (n == 0 && cap >= 2)
		out[n++] = '?';
	out[n < cap ? n : cap - 1] = '\0';
	free(key);
	free(host);
	return out;
}

/* --- exposition --- */

/* The page is built in a struct util_buf (no limit: the fixed label tables
 * bound its size); a failed growth fails the whole render. */

/* A label value between quotes, escaped as the text format wants. */
static void metrics_buf_label(struct util_buf *b, const char *key, const char *value)
{
	util_buf_printf(b, "%s=\"", key);
	for (const char *s = value; *s; s++) {
		if (*s == '\\')
			util_buf_printf(b, "\\\\");
		else if (*s == '"')
			util_buf_printf(b, "\\\"");
		else if (*s == '\n')
			util_buf_printf(b, "\\n");
		else
			util_buf_printf(b, "%c", *s);
	}
	util_buf_printf(b, "\"");
}

static void metrics_buf_family(struct util_buf *b, const char *name, const char *type,
		       const char *help)
{
	util_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_render_hist(struct util_buf *b, const char *name, const char *help,
			struct metrics_hist *h)
{
	unsigned long long sum = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
	unsigned long cum = 0;

	metrics_buf_family(b, name, "histogram", help);
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		cum += metrics_counter_get(&h->bucket[i]);
		if (i < METRICS_BUCKETS - 1)
			util_buf_printf(b, "%s_bucket{le=\"%g\"} %lu\n", name, metrics_bucket_bounds[i],
				        cum);
		else
			util_buf_printf(b, "%s_bucket{le=\"+Inf\"} %lu\n", name, cum);
	}
	util_buf_printf(b, "%s_sum %llu.%09llu\n%s_count %lu\n", name, sum / 1000000000ULL,
		        sum % 1000000000ULL, name, cum);
}

/* One sample per registered pair, then the non-zero "other" of each kind. */
static void metrics_render_family(struct util_buf *b, const char *name, struct metrics_family *f,
			  const char *kind_label, const char *const *kinds, int nkinds,
			  int name_first)
{
	int used = atomic_load_explicit(&f->used, memory_order_acquire);

	for (int i = 0; i < used + nkinds; i++) {
		int kind = i < used ? f->items[i].kind : i - used;
		const char *label = i < used ? f->items[i].name : "other";
		unsigned long v = metrics_counter_get(&f->value[i < used ? i : METRICS_OTHER(kind)]);

		if (i >= used && v == 0)
			continue;
		util_buf_printf(b, "%s{", name);
		if (!name_first) {
			metrics_buf_label(b, kind_label, kinds[kind]);
			util_buf_printf(b, ",");
		}
		metrics_buf_label(b, "name", label);
		if (name_first) {
			util_buf_printf(b, ",");
			metrics_buf_label(b, kind_label, kinds[kind]);
		}
		util_buf_printf(b, "} %lu\n", v);
	}
}

static void metrics_render_gauge(struct util_buf *b, const char *name, const char *help,
			 atomic_long *g)
{
	long v = atomic_load_explicit(g, memory_order_relaxed);

	metrics_buf_family(b, name, "gauge", help);
	if (v >= 0)
		util_buf_printf(b, "%s %ld\n", name, v);
}

/* The per-destination gauges, from the delivery thread's last snapshot. */
static void metrics_render_destinations(struct util_buf *b)
{
	pthread_mutex_lock(&metrics_dest_lock);
	metrics_buf_family(b, "egoi_router_destination_state", "gauge",
		   "Circuit of each destination (scheme://host:port): 0 closed, 1 open "
		   "(failing, nothing sent), 2 half-open (one probe in flight).");
	for (size_t i = 0; i < metrics_ndests; i++) {
		util_buf_printf(b, "egoi_router_destination_state{");
		metrics_buf_label(b, "name", metrics_dests[i].name);
		util_buf_printf(b, "} %d\n", metrics_dests[i].state);
	}
	metrics_buf_family(b, "egoi_router_destination_backlog", "gauge",
		   "Forwards in the outbox per destination, in flight or waiting.");
	for (size_t i = 0; i < metrics_ndests; i++) {
		util_buf_printf(b, "egoi_router_destination_backlog{");
		metrics_buf_label(b, "name", metrics_dests[i].name);
		util_buf_printf(b, "} %ld\n", metrics_dests[i].backlog);
	}
	pthread_mutex_unlock(&metrics_dest_lock);
}

int metrics_render(char **out, size_t *len)
{
	struct util_buf b = { 0 };
	int rc = -1;

	if (util_buf_reserve(&b, 16384) != 0)
		goto out;
	metrics_buf_family(&b, "egoi_router_requests_total", "counter",
		   "Answers of the webhook endpoint, by HTTP status.");
	for (size_t i = 0; i <= METRICS_NCODES; i++) {
		unsigned long v = metrics_counter_get(&metrics_requests[i]);

		if (i < METRICS_NCODES)
			util_buf_printf(&b, "egoi_router_requests_total{code=\"%d\"} %lu\n",
				        metrics_codes[i], v);
		else if (v)
			util_buf_printf(&b, "egoi_router_requests_total{code=\"other\"} %lu\n", v);
	}
	metrics_render_hist(&b, "egoi_router_request_seconds",
		    "Time to read, route, commit and answer a request to the webhook endpoint.",
		    &metrics_request_hist);
	metrics_buf_family(&b, "egoi_router_events_total", "counter",
		   "Events of committed batches, by action (unknown or malformed: other).");
	for (int i = 0; i <= METRICS_ACTIONS; i++)
		util_buf_printf(&b, "egoi_router_events_total{action=\"%s\"} %lu\n",
			        i < METRICS_ACTIONS ? egoi_actions[i] : "other",
			        metrics_counter_get(&metrics_events[i]));
	metrics_buf_family(&b, "egoi_router_decisions_total", "counter",
		   "Decisions of committed batches, by kind and forward name or host, write "
		   "path, drop reason or error.");
	metrics_render_family(&b, "egoi_router_decisions_total", &metrics_decisions, "kind",
		      metrics_kind_names, METRICS_KINDS, 0);
	metrics_buf_family(&b, "egoi_router_rule_errors_total", "counter",
		   "route() calls that failed (error, instruction or memory limit).");
	util_buf_printf(&b, "egoi_router_rule_errors_total %lu\n", metrics_counter_get(&metrics_rule_errors));
	metrics_buf_family(&b, "egoi_router_loops_refused_total", "counter",
		   "Batches refused with 508 because X-Router-Hop reached max_hops.");
	util_buf_printf(&b, "egoi_router_loops_refused_total %lu\n", metrics_counter_get(&metrics_loops_refused));
	metrics_buf_family(&b, "egoi_router_lua_state_waits_total", "counter",
		   "Batches that waited for a Lua state because all lua_states were busy.");
	util_buf_printf(&b, "egoi_router_lua_state_waits_total %lu\n",
		       metrics_counter_get(&metrics_lua_state_waits));
	metrics_buf_family(&b, "egoi_router_lua_state_wait_seconds_total", "counter",
		   "Time batches spent waiting for a Lua state.");
	util_buf_printf(&b, "egoi_router_lua_state_wait_seconds_total %.6f\n",
		       (double)metrics_counter_get(&metrics_lua_state_wait_us) / 1e6);
	metrics_buf_family(&b, "egoi_router_refused_total", "counter",
		   "Clients refused before their request was handled, by reason.");
	for (int i = 0; i < METRICS_REFUSALS; i++)
		util_buf_printf(&b, "egoi_router_refused_total{reason=\"%s\"} %lu\n",
			        metrics_refusal_names[i], metrics_counter_get(&metrics_refusals[i]));
	metrics_buf_family(&b, "egoi_router_deliveries_total", "counter",
		   "Delivery attempts, by destination name or host and outcome.");
	metrics_render_family(&b, "egoi_router_deliveries_total", &metrics_deliveries, "outcome",
		      metrics_outcome_names, METRICS_OUTCOMES, 1);
	metrics_render_hist(&b, "egoi_router_delivery_seconds", "Duration of one delivery attempt.",
		    &metrics_delivery_hist);
	metrics_render_gauge(&b, "egoi_router_outbox_pending", "Forwards in the outbox not yet delivered.",
		     &metrics_pending);
	metrics_render_gauge(&b, "egoi_router_dead_letters", "Entries in the dead letter table.",
		     &metrics_dead);
	metrics_render_destinations(&b);
	if (atomic_load(&metrics_tls_expiry) >= 0)
		metrics_render_gauge(&b, "egoi_router_tls_certificate_expiry_seconds",
			     "notAfter of the certificate served, as unix seconds.",
			     &metrics_tls_expiry);
	metrics_buf_family(&b, "egoi_router_reloads_total", "counter",
		   "SIGHUP reloads, by result: ok, or refused (the previous state kept serving).");
	util_buf_printf(&b, "egoi_router_reloads_total{result=\"ok\"} %lu\n"
		       "egoi_router_reloads_total{result=\"refused\"} %lu\n",
		       atomic_load(&metrics_reloads[0]), atomic_load(&metrics_reloads[1]));
	metrics_process_render(&b);
	if (b.failed)
		goto out;
	*out = b.p;
	*len = b.len;
	b.p = NULL;
	rc = 0;
out:
	util_buf_free(&b);
	return rc;
}

void metrics_read(struct metrics_view *v)
{
	int rejected;

	memset(v, 0, sizeof *v);
	for (size_t i = 0; i <= METRICS_NCODES; i++) {
		if (i < METRICS_NCODES)
			v->code[i] = metrics_codes[i];
		v->requests[i] = metrics_counter_get(&metrics_requests[i]);
		v->requests_total += v->requests[i];
	}
	for (int i = 0; i <= METRICS_ACTIONS; i++)
		v->events_total += metrics_counter_get(&metrics_events[i]);
	rejected = metrics_family_find(&metrics_decisions, METRICS_ERROR,
				       outbox_dead_kind_names[OUTBOX_DEAD_REJECTED]);
	v->rejected = rejected < 0 ? 0 : metrics_counter_get(&metrics_decisions.value[rejected]);
	v->rule_errors = metrics_counter_get(&metrics_rule_errors);
	v->loops_refused = metrics_counter_get(&metrics_loops_refused);
	for (int i = 0; i < METRICS_REFUSALS; i++) {
		v->refused[i] = metrics_counter_get(&metrics_refusals[i]);
		v->refusal_name[i] = metrics_refusal_names[i];
	}
	v->pending = atomic_load_explicit(&metrics_pending, memory_order_relaxed);
	v->dead = atomic_load_explicit(&metrics_dead, memory_order_relaxed);
	v->reloads_ok = metrics_counter_get(&metrics_reloads[0]);
	v->reloads_refused = metrics_counter_get(&metrics_reloads[1]);
	pthread_mutex_lock(&metrics_dest_lock);
	v->reload_at = metrics_reload_at;
	v->reload_ok = metrics_reload_ok;
	memcpy(v->reload_why, metrics_reload_why, sizeof v->reload_why);
	pthread_mutex_unlock(&metrics_dest_lock);
}

unsigned long metrics_delivery_count(const char *name, enum metrics_outcome outcome)
{
	int slot = metrics_family_find(&metrics_deliveries, (int)outcome, name);

	return slot < 0 ? 0 : metrics_counter_get(&metrics_deliveries.value[slot]);
}

static void metrics_hist_reset(struct metrics_hist *h)
{
	for (int i = 0; i < METRICS_BUCKETS; i++)
		atomic_store(&h->bucket[i], 0);
	atomic_store(&h->sum_ns, 0);
}

void metrics_reset(void)
{
	for (size_t i = 0; i <= METRICS_NCODES; i++)
		atomic_store(&metrics_requests[i], 0);
	for (int i = 0; i <= METRICS_ACTIONS; i++)
		atomic_store(&metrics_events[i], 0);
	atomic_store(&metrics_rule_errors, 0);
	atomic_store(&metrics_loops_refused, 0);
	atomic_store(&metrics_lua_state_waits, 0);
	atomic_store(&metrics_lua_state_wait_us, 0);
	for (int i = 0; i < METRICS_REFUSALS; i++)
		atomic_store(&metrics_refusals[i], 0);
	metrics_hist_reset(&metrics_request_hist);
	metrics_hist_reset(&metrics_delivery_hist);
	metrics_family_reset(&metrics_decisions);
	metrics_family_reset(&metrics_deliveries);
	atomic_store(&metrics_pending, -1);
	atomic_store(&metrics_dead, -1);
	atomic_store(&metrics_tls_expiry, -1);
	atomic_store(&metrics_reloads[0], 0);
	atomic_store(&metrics_reloads[1], 0);
	metrics_reload_at = 0;
	metrics_reload_ok = 0;
	metrics_reload_why[0] = '\0';
	metrics_set_destinations(NULL, 0);
}
