/*
 * pg_cluster.c — see pg_cluster.h.
 */
#include "pg_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define PG_CLUSTER_SCRIPT "scripts/pg-test-cluster.sh"

static int pg_cluster_run(struct pg_cluster *c, const char *what)
{
	char cmd[256];

	snprintf(cmd, sizeof cmd, "%s %s %s", PG_CLUSTER_SCRIPT, what, c->dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "pg_cluster: %s failed\n", cmd);
		return -1;
	}
	return 0;
}

int pg_cluster_start(struct pg_cluster *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->dir, sizeof c->dir, "/tmp/egoi-pg.XXXXXX");
	if (!mkdtemp(c->dir)) {
		perror("pg_cluster: mkdtemp");
		c->dir[0] = '\0';
		return -1;
	}
	snprintf(c->uri, sizeof c->uri, "postgresql://egoi@/postgres?host=%s&port=5432", c->dir);
	return pg_cluster_run(c, "start");
}

int pg_cluster_halt(struct pg_cluster *c)
{
	return pg_cluster_run(c, "halt");
}

int pg_cluster_resume(struct pg_cluster *c)
{
	return pg_cluster_run(c, "start");
}

void pg_cluster_stop(struct pg_cluster *c)
{
	if (c->dir[0])
		(void)pg_cluster_run(c, "stop");
	c->dir[0] = '\0';
}

int pg_cluster_reset(struct pg_cluster *c)
{
	PGconn *conn = PQconnectdb(c->uri);
	PGresult *r = NULL;
	int ret = -1;

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "pg_cluster: %s", PQerrorMessage(conn));
		goto out;
	}
	r = PQexec(conn, "SET client_min_messages = warning;"
			 "DROP TABLE IF EXISTS deliveries, dead_letters, egoi_router_schema");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "pg_cluster: reset: %s", PQerrorMessage(conn));
		goto out;
	}
	ret = 0;
out:
	PQclear(r);
	PQfinish(conn);
	return ret;
}
