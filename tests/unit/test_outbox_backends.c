/*
 * test_outbox_backends.c — the backend-independent outbox contract
 * (outbox.h, outbox_deliver.h, outbox_dlq.h), run once on SQLite (a
 * mkdtemp() data_dir) and once on PostgreSQL (a throw-away cluster of its
 * own, tests/pg_cluster.h, a fresh schema per case): batches in one
 * transaction with a savepoint each, claims under a lease in due order and
 * per destination, outcomes, dead letters and their dlq operations, counts.
 * Then what only PostgreSQL has: two connections claiming at once get
 * disjoint rows, an expired lease is claimable again, a lost connection
 * fails the call with the server's name and the next call re-connects,
 * an unreachable server is named at open, and no message shows a password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"
#include "pg_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <poll.h>

#include <libpq-fe.h>

#include "outbox.h"
#include "outbox_deliver.h"
#include "outbox_dlq.h"

#define DEST_A "https://a.example:443"
#define DEST_B "http://b.example:8080"

static struct pg_cluster cluster;
static const char *backend;   /* "sqlite" or the cluster's URI, per group */

struct fixture {
	char dir[64];
	char err[512];
	struct outbox *ob;
};

static struct outbox *open_ob(struct fixture *fx)
{
	struct outbox *ob = outbox_open(fx->dir, fx->err, sizeof fx->err);

	if (!ob)
		fprintf(stderr, "outbox_open: %s\n", fx->err);
	return ob;
}

/* lease_ms: how long a PostgreSQL claim lasts (the cases that let one
 * expire shorten it). */
static int setup_lease(void **state, long lease_ms)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	char err[256];

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test_outbox_backends.XXXXXX");
	if (!mkdtemp(fx->dir) || outbox_use(backend, lease_ms, err, sizeof err) != 0 ||
	    (strcmp(backend, "sqlite") != 0 && pg_cluster_reset(&cluster) != 0)) {
		free(fx);
		return -1;
	}
	fx->ob = open_ob(fx);
	if (!fx->ob) {
		tu_rmtree(fx->dir);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int setup(void **state)
{
	return setup_lease(state, 0);
}

static int setup_short_lease(void **state)
{
	return setup_lease(state, 300);
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	outbox_close(fx->ob);
	rc = tu_rmtree(fx->dir);
	free(fx);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char body_bin[] = "bin\0ary\0\xff\x01 body";

static void add_forwards(struct outbox *ob, const char *url, int n, char ids[][37])
{
	struct outbox_forward f = {
		.name = "crm", .url = url, .method = "POST", .content_type = "application/json",
		.headers = "X-A: 1\n", .body = body_bin, .body_len = sizeof body_bin - 1,
		.request_id = "req-1", .hop = 2,
	};

	assert_int_equal(outbox_begin(ob), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(outbox_add_forward(ob, &f, ids ? ids[i] : NULL), 0);
	assert_int_equal(outbox_commit(ob), 0);
}

/* A group as outbox_writer makes it: a savepoint per batch, one undone. */
static void test_group_with_savepoints(void **state)
{
	struct fixture *fx = *state;
	struct outbox_forward f = { .url = "https://a.example/x", .method = "POST",
				    .body = "{}", .body_len = 2 };
	/* opened first: SQLite's open migrates under the write lock */
	struct outbox *other = open_ob(fx);

	assert_non_null(other);
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_savepoint(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	assert_int_equal(outbox_savepoint_release(fx->ob), 0);
	assert_int_equal(outbox_savepoint(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	assert_int_equal(outbox_savepoint_rollback(fx->ob), 0);
	assert_int_equal(outbox_count_pending(other), 0);   /* not committed yet */
	assert_int_equal(outbox_commit(fx->ob), 0);
	assert_int_equal(outbox_count_pending(other), 1);
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	outbox_rollback(fx->ob);
	assert_int_equal(outbox_count_pending(other), 1);
	assert_int_not_equal(outbox_commit(fx->ob), 0);      /* none open */
	if (strcmp(backend, "sqlite") == 0)
		assert_int_equal(outbox_wake_fd(other), -1);  /* one node: woken in-process */
	outbox_close(other);
}

static void test_claim_in_due_order_under_lease(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	char ids[3][37];
	double t;

	add_forwards(fx->ob, "https://a.example/x", 3, ids);
	add_forwards(fx->ob, "http://b.example:8080/y", 1, NULL);
	t = now_s() + 1;
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, t, 2, &got), 2);
	assert_string_equal(got[0].delivery_id, ids[0]);
	assert_string_equal(got[1].delivery_id, ids[1]);
	assert_true(got[0].id < got[1].id);
	assert_string_equal(got[0].url, "https://a.example/x");
	assert_string_equal(got[0].method, "POST");
	assert_string_equal(got[0].name, "crm");
	assert_string_equal(got[0].headers, "X-A: 1\n");
	assert_string_equal(got[0].request_id, "req-1");
	assert_int_equal(got[0].hop, 2);
	assert_int_equal(got[0].attempts, 0);
	assert_int_equal(got[0].body_len, sizeof body_bin - 1);
	assert_memory_equal(got[0].body, body_bin, sizeof body_bin - 1);
	outbox_deliveries_free(got, 2);
	/* leased ones are not claimed again; the third is */
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, t, 10, &got), 1);
	assert_string_equal(got[0].delivery_id, ids[2]);
	outbox_deliveries_free(got, 1);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, t, 10, &got), 0);
	assert_int_equal(outbox_count_dest(fx->ob, DEST_A), 3);
	assert_int_equal(outbox_count_dest(fx->ob, DEST_B), 1);
	assert_int_equal(outbox_count_pending(fx->ob), 4);
	/* not yet due */
	assert_int_equal(outbox_claim_due(fx->ob, DEST_B, t - 100, 10, &got), 0);
	/* released (the delivery side starting again): claimable */
	assert_int_equal(outbox_release_leases(fx->ob), 0);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, t, 10, &got), 3);
	outbox_deliveries_free(got, 3);
}

static int scan_one(const char *dest, double next_at, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%s%s", *out ? " " : "", dest);
	assert_true(next_at > 0);
	return 0;
}

static void test_scan_retry_and_due_now(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	char seen[256] = "";
	double t;

	add_forwards(fx->ob, "https://a.example/x", 1, NULL);
	add_forwards(fx->ob, "http://b.example:8080/y", 1, NULL);
	assert_int_equal(outbox_scan_destinations(fx->ob, scan_one, seen), 0);
	assert_string_equal(seen, DEST_B " " DEST_A);
	t = now_s() + 1;
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, t, 10, &got), 1);
	/* a destination whose entries are all leased has nothing to scan */
	seen[0] = '\0';
	assert_int_equal(outbox_scan_destinations(fx->ob, scan_one, seen), 0);
	assert_string_equal(seen, DEST_B);
	assert_int_equal(outbox_retry(fx->ob, got[0].id, t + 1000, 503, "HTTP 503"), 0);
	outbox_deliveries_free(got, 1);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, t, 10, &got), 0);
	assert_int_equal(outbox_dest_due_now(fx->ob, DEST_A, t), 1);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, t, 10, &got), 1);
	assert_int_equal(got[0].attempts, 1);
	assert_int_equal(outbox_complete(fx->ob, got[0].id), 0);
	assert_int_not_equal(outbox_complete(fx->ob, got[0].id), 0);   /* gone */
	assert_int_not_equal(outbox_retry(fx->ob, got[0].id, t, 0, NULL), 0);
	outbox_deliveries_free(got, 1);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
	assert_int_equal(outbox_count_dest(fx->ob, DEST_A), 0);
}

struct seen {
	size_t n;
	int64_t id[8];
	char kind[8][16];
	char did[8][40];
	size_t payload_len[8];
	int bin_ok[8];
	long attempts[8];
	int status[8];
	char reason[8][64];
};

static int see(const struct outbox_dlq_entry *e, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	assert_null(e->malformed);
	s->id[s->n] = e->id;
	snprintf(s->kind[s->n], sizeof s->kind[0], "%s", e->kind);
	snprintf(s->did[s->n], sizeof s->did[0], "%s", e->delivery_id ? e->delivery_id : "");
	s->payload_len[s->n] = e->payload_len;
	s->bin_ok[s->n] = e->payload && e->payload_len == sizeof body_bin - 1 &&
			  memcmp(e->payload, body_bin, e->payload_len) == 0;
	s->attempts[s->n] = e->attempts;
	s->status[s->n] = e->last_status;
	snprintf(s->reason[s->n], sizeof s->reason[0], "%s", e->reason);
	s->n++;
	return 0;
}

static size_t list(struct outbox *ob, const struct outbox_dlq_filter *f, struct seen *s)
{
	memset(s, 0, sizeof *s);
	assert_int_equal(outbox_dlq_list(ob, f, see, s), 0);
	return s->n;
}

static void test_dead_letters_and_dlq(void **state)
{
	struct fixture *fx = *state;
	struct outbox_dead d = { .kind = OUTBOX_DEAD_RULE_ERROR, .reason = "rules.lua:3: boom",
				 .payload = "{\"n\":1}", .payload_len = 7, .request_id = "r",
				 .event_index = 2 };
	struct outbox_dlq_filter f = { .with_payload = 1 };
	struct outbox_delivery *got = NULL;
	struct seen s;
	char ids[1][37];
	int64_t one;

	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_add_dead(fx->ob, &d), 0);
	assert_int_equal(outbox_commit(fx->ob), 0);
	add_forwards(fx->ob, "https://a.example/x", 1, ids);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, now_s() + 1, 10, &got), 1);
	assert_int_equal(outbox_bury(fx->ob, got[0].id, 400, NULL), 0);
	outbox_deliveries_free(got, 1);
	assert_int_equal(outbox_count_pending(fx->ob), 0);
	assert_int_equal(outbox_count_dead(fx->ob), 2);

	assert_int_equal(list(fx->ob, &f, &s), 2);
	assert_string_equal(s.kind[0], "rule_error");
	assert_int_equal(s.payload_len[0], 7);
	assert_int_equal(s.attempts[0], -1);
	assert_string_equal(s.kind[1], "forward");
	assert_string_equal(s.did[1], ids[0]);
	assert_true(s.bin_ok[1]);
	assert_int_equal(s.attempts[1], 1);
	assert_int_equal(s.status[1], 400);
	assert_string_equal(s.reason[1], "HTTP 400");   /* buried without an error text */
	f.kind = "forward";
	assert_int_equal(list(fx->ob, &f, &s), 1);
	f.kind = "nonsense";
	assert_int_equal(outbox_dlq_list(fx->ob, &f, see, &s), -1);
	assert_non_null(strstr(outbox_error(fx->ob), "unknown kind"));
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), -1);
	assert_int_equal(outbox_count_dead(fx->ob), 2);
	f.kind = NULL;
	f.limit = -1;
	assert_int_equal(outbox_dlq_list(fx->ob, &f, see, &s), -1);
	assert_non_null(strstr(outbox_error(fx->ob), "negative limit"));
	f.limit = 0;
	one = s.id[0];
	f.ids = &one;
	f.nids = 1;
	assert_int_equal(list(fx->ob, &f, &s), 1);
	f.ids = NULL;

	/* re-queue: the same delivery id and body, once */
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 1), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 2), OUTBOX_DLQ_DONE);
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 2), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(outbox_count_dead(fx->ob), 1);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, now_s() + 1, 10, &got), 1);
	assert_string_equal(got[0].delivery_id, ids[0]);
	assert_int_equal(got[0].attempts, 0);
	assert_memory_equal(got[0].body, body_bin, sizeof body_bin - 1);
	outbox_deliveries_free(got, 1);

	assert_int_equal(outbox_dlq_mark_replayed(fx->ob, 1), OUTBOX_DLQ_DONE);
	assert_int_equal(outbox_dlq_mark_replayed(fx->ob, 1), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(outbox_count_dead(fx->ob), 0);
	f.state = OUTBOX_DLQ_OPEN;
	assert_int_equal(list(fx->ob, &f, &s), 0);
	f.state = OUTBOX_DLQ_REPLAYED;
	assert_int_equal(list(fx->ob, &f, &s), 2);
	f.died_before = now_s() - 3600;
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), 0);
	f.died_before = 0;
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), 2);
	assert_int_equal(list(fx->ob, NULL, &s), 0);
}

/* --- PostgreSQL only --- */

static void test_pg_concurrent_claims_are_disjoint(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *a = NULL, *b = NULL;
	struct outbox *other = open_ob(fx);
	double t = now_s() + 1;
	int na, nb;

	assert_non_null(other);
	add_forwards(fx->ob, "https://a.example/x", 10, NULL);
	/* other holds its claim's row locks in an open transaction: ob's claim
	 * skips them instead of waiting */
	assert_int_equal(outbox_begin(other), 0);
	nb = outbox_claim_due(other, DEST_A, t, 4, &b);
	assert_int_equal(nb, 4);
	na = outbox_claim_due(fx->ob, DEST_A, t, 10, &a);
	assert_int_equal(na, 6);
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++)
			assert_true(a[i].id != b[j].id);
	assert_int_equal(outbox_commit(other), 0);
	outbox_deliveries_free(a, (size_t)na);
	outbox_deliveries_free(b, (size_t)nb);
	assert_int_equal(outbox_claim_due(other, DEST_A, t, 10, &b), 0);
	outbox_close(other);
}

static void test_pg_expired_lease_is_claimable(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 400 * 1000 * 1000 };
	char ids[1][37];

	add_forwards(fx->ob, "https://a.example/x", 1, ids);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, now_s(), 10, &got), 1);
	outbox_deliveries_free(got, 1);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, now_s(), 10, &got), 0);
	nanosleep(&pause, NULL);   /* past the 300 ms lease of setup_short_lease */
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, now_s(), 10, &got), 1);
	assert_string_equal(got[0].delivery_id, ids[0]);   /* the same id, sent again */
	outbox_deliveries_free(got, 1);
}

/* A commit that added forwards on one connection wakes another node's
 * delivery connection (LISTEN/NOTIFY); a rolled-back one does not. */
static void test_pg_commit_wakes_listeners(void **state)
{
	struct fixture *fx = *state;
	struct outbox *delivery = open_ob(fx);
	struct outbox_forward f = { .url = "https://a.example/x", .method = "POST",
				    .body = "{}", .body_len = 2 };
	struct pollfd p;

	assert_non_null(delivery);
	p.fd = outbox_wake_fd(delivery);
	p.events = POLLIN;
	assert_true(p.fd >= 0);
	assert_int_equal(outbox_wake_drain(delivery), 0);
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	outbox_rollback(fx->ob);
	assert_int_equal(poll(&p, 1, 300), 0);               /* nothing committed: silence */
	add_forwards(fx->ob, "https://a.example/x", 1, NULL);
	assert_int_equal(poll(&p, 1, 10000), 1);             /* bounded wait, not a speed check */
	assert_true(outbox_wake_drain(delivery) > 0);
	assert_int_equal(outbox_wake_drain(delivery), 0);
	outbox_close(delivery);
}

/* `check` reads the schema version and changes nothing. */
static void test_pg_check_reads_schema(void **state)
{
	char msg[512];

	(void)state;
	assert_int_equal(outbox_check(msg, sizeof msg), 0);
	assert_non_null(strstr(msg, "reachable, schema version 1"));
	assert_int_equal(pg_cluster_reset(&cluster), 0);
	assert_int_equal(outbox_check(msg, sizeof msg), 0);
	assert_non_null(strstr(msg, "no schema yet"));
	assert_int_equal(outbox_check(msg, sizeof msg), 0);
	assert_non_null(strstr(msg, "no schema yet"));   /* check created nothing */
}

/* The PostgreSQL schema's CHECK on dead_letters.kind names exactly the program's kinds. */
static void test_pg_dead_kind_check_matches_table(void **state)
{
	PGconn *c = PQconnectdb(cluster.uri);
	PGresult *r;
	const char *def;

	(void)state;
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c, "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
		      " WHERE conrelid = 'dead_letters'::regclass AND contype = 'c'");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(r), 1);
	def = PQgetvalue(r, 0, 0);
	assert_non_null(strstr(def, "kind"));
	tu_assert_dead_kinds(def, def + strlen(def));
	PQclear(r);
	PQfinish(c);
}

/* A delivery connection closed (a node stopped cleanly) gives its leases
 * back at once; another node's connection claims them without waiting. */
static void test_pg_close_releases_own_leases(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	struct outbox *other = open_ob(fx);

	assert_non_null(other);
	add_forwards(fx->ob, "https://a.example/x", 2, NULL);
	assert_int_equal(outbox_claim_due(other, DEST_A, now_s(), 10, &got), 2);
	outbox_deliveries_free(got, 2);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, now_s(), 10, &got), 0);
	outbox_close(other);
	assert_int_equal(outbox_claim_due(fx->ob, DEST_A, now_s(), 10, &got), 2);
	outbox_deliveries_free(got, 2);
}

/* Ends every other session of the cluster, as a server restart would. */
static void kill_sessions(void)
{
	PGconn *c = PQconnectdb(cluster.uri);
	PGresult *r;

	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
		      " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	PQfinish(c);
}

static void test_pg_connection_loss_fails_then_recovers(void **state)
{
	struct fixture *fx = *state;
	struct outbox_forward f = { .url = "https://a.example/x", .method = "POST",
				    .body = "{}", .body_len = 2 };
	struct timespec pause = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };

	/* lost inside a group: nothing of it commits, commit says so */
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_savepoint(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	kill_sessions();
	nanosleep(&pause, NULL);
	assert_int_not_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	assert_non_null(strstr(outbox_error(fx->ob), "postgresql at "));
	assert_int_not_equal(outbox_commit(fx->ob), 0);
	/* the next call re-connects */
	assert_int_equal(outbox_count_pending(fx->ob), 0);
	add_forwards(fx->ob, "https://a.example/x", 1, NULL);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
	/* lost between calls: the first call fails, the next one works */
	kill_sessions();
	nanosleep(&pause, NULL);
	assert_int_equal(outbox_count_pending(fx->ob), -1);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
}

/* The server gone: after one failed re-connection the next calls fail at
 * once (intake's 503s do not each wait for a connect), and once it is back
 * the connection comes back by itself. */
static void test_pg_server_down_fails_fast_then_recovers(void **state)
{
	struct fixture *fx = *state;
	long n = -2;

	add_forwards(fx->ob, "https://a.example/x", 1, NULL);
	assert_int_equal(pg_cluster_halt(&cluster), 0);
	assert_int_equal(outbox_count_pending(fx->ob), -1);   /* finds it lost */
	assert_int_equal(outbox_count_pending(fx->ob), -1);   /* re-connecting fails */
	assert_non_null(strstr(outbox_error(fx->ob), "postgresql at "));
	assert_int_equal(outbox_count_pending(fx->ob), -1);   /* no new attempt yet */
	assert_non_null(strstr(outbox_error(fx->ob), "re-connecting"));
	assert_int_equal(pg_cluster_resume(&cluster), 0);
	for (int i = 0; i < 100 && n != 1; i++) {   /* bounded: the retry pause is 1 s */
		struct timespec pause = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };

		n = outbox_count_pending(fx->ob);
		if (n != 1)
			nanosleep(&pause, NULL);
	}
	assert_int_equal(n, 1);
}

static void test_pg_unreachable_named_password_hidden(void **state)
{
	char err[512], buf[256];
	struct outbox *ob;

	(void)state;
	assert_int_equal(outbox_use("postgresql://egoi:s3cret@/postgres?host=/nonexistent/dir"
				    "&port=5999", 0, err, sizeof err), 0);
	ob = outbox_open("/tmp", err, sizeof err);
	assert_null(ob);
	assert_non_null(strstr(err, "postgresql at /nonexistent/dir:5999/postgres"));
	assert_null(strstr(err, "s3cret"));
	assert_int_equal(outbox_check(err, sizeof err), -1);   /* `check` says the same */
	assert_non_null(strstr(err, "postgresql at /nonexistent/dir:5999/postgres"));
	assert_null(strstr(err, "s3cret"));
	outbox_target_redact("postgresql://u:s3cret@db.example:5432/x?sslmode=require", buf,
			     sizeof buf);
	assert_string_equal(buf, "postgresql://u:***@db.example:5432/x?sslmode=require");
	outbox_target_redact("postgresql://db.example/x?user=u&password=s3cret&a=b", buf,
			     sizeof buf);
	assert_string_equal(buf, "postgresql://db.example/x?user=u&password=***&a=b");
	assert_int_equal(outbox_use("mysql://x", 0, err, sizeof err), -1);
	assert_int_equal(outbox_use("sqlite", 0, err, sizeof err), 0);
	assert_string_equal(outbox_backend_name(), "sqlite");
}

#define CASES(s) \
	cmocka_unit_test_setup_teardown(test_group_with_savepoints, s, teardown), \
	cmocka_unit_test_setup_teardown(test_claim_in_due_order_under_lease, s, teardown), \
	cmocka_unit_test_setup_teardown(test_scan_retry_and_due_now, s, teardown), \
	cmocka_unit_test_setup_teardown(test_dead_letters_and_dlq, s, teardown)

static int group_sqlite(void **state)
{
	(void)state;
	backend = "sqlite";
	return 0;
}

static int group_pg(void **state)
{
	(void)state;
	if (pg_cluster_start(&cluster) != 0)
		return -1;
	backend = cluster.uri;
	return 0;
}

static int group_pg_end(void **state)
{
	(void)state;
	pg_cluster_stop(&cluster);
	return 0;
}

int main(void)
{
	const struct CMUnitTest sqlite_cases[] = { CASES(setup) };
	const struct CMUnitTest pg_cases[] = {
		CASES(setup),
		cmocka_unit_test_setup_teardown(test_pg_concurrent_claims_are_disjoint, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pg_expired_lease_is_claimable,
						setup_short_lease, teardown),
		cmocka_unit_test_setup_teardown(test_pg_close_releases_own_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_dead_kind_check_matches_table, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pg_check_reads_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_commit_wakes_listeners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_connection_loss_fails_then_recovers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pg_server_down_fails_fast_then_recovers, setup,
						teardown),
		cmocka_unit_test(test_pg_unreachable_named_password_hidden),
	};
	int failed = cmocka_run_group_tests_name("sqlite", sqlite_cases, group_sqlite, NULL);

	failed += cmocka_run_group_tests_name("postgresql", pg_cases, group_pg, group_pg_end);
	return failed ? 1 : 0;
}
