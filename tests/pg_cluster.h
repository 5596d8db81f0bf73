/*
 * pg_cluster.h — a throw-away PostgreSQL cluster for tests, run by
 * scripts/pg-test-cluster.sh (initdb in a temporary directory, owned by
 * nobody when the tests run as root, reachable only through its Unix
 * socket in that directory). Used by the unit tests of the PostgreSQL
 * outbox and the end-to-end tests of several routers.
 *
 * Threads: call from the test's main thread.
 */
#ifndef EGOI_TEST_PG_CLUSTER_H
#define EGOI_TEST_PG_CLUSTER_H

struct pg_cluster {
	char dir[64];        /* the cluster's directory (socket, data, logs) */
	char uri[192];       /* its database as a libpq URI */
};

/* Starts a new cluster (the script path is relative to the repository, the
 * tests' working directory). 0, or -1 with a message on stderr. */
int pg_cluster_start(struct pg_cluster *c);

/* Stops the server, keeping the data (pg_cluster_resume starts it again). */
int pg_cluster_halt(struct pg_cluster *c);
int pg_cluster_resume(struct pg_cluster *c);

/* Stops it and removes its directory; c may have never started. */
void pg_cluster_stop(struct pg_cluster *c);

/* Drops the outbox's tables, so the next open starts from an empty schema. */
int pg_cluster_reset(struct pg_cluster *c);

#endif
