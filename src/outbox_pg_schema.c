/*
 * outbox_pg_schema.c — the PostgreSQL backend's schema (outbox_pg.h),
 * created or migrated when a connection opens.
 *
 * Design:
 * - Versioned in the one-row table egoi_router_schema; ob_pg_migrations[i]
 *   turns version i into i + 1, as on SQLite, so a later change is a new
 *   step and existing databases run only what they lack.
 * - Several routers start at once against one database: the whole check
 *   and migration runs in one transaction after pg_advisory_xact_lock, so
 *   one of them migrates and the others then find the current version (the
 *   lock is released by COMMIT or ROLLBACK, also when a node dies).
 * - Claims go destination by destination in due order: the index
 *   deliveries_claim (dest, next_attempt_at, id) makes a claim and the
 *   destination scan index range scans, O(log n) at millions of rows.
 *   dest is COLLATE "C" so destinations sort bytewise, as on SQLite.
 * - Times are double precision unix seconds, as on SQLite, so both
 *   backends share the callers' arithmetic.
 *
 * Threads: called by the opening thread on its new connection.
 */
#include "outbox_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An arbitrary constant naming the lock: "egoi" in ASCII, then 1. */
#define OB_PG_SCHEMA_LOCK "1701277545001"

static const char *const ob_pg_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE deliveries ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" delivery_id text NOT NULL UNIQUE,"
	" name text,"
	" url text NOT NULL,"
	" method text NOT NULL,"
	" content_type text,"
	" headers text,"
	" body bytea NOT NULL,"
	" request_id text,"
	" created_at double precision NOT NULL,"
	" next_attempt_at double precision NOT NULL,"
	" attempts integer NOT NULL DEFAULT 0,"
	" lease_owner text,"
	" lease_until double precision,"
	" last_status integer,"
	" last_error text,"
	" dest text COLLATE \"C\" NOT NULL DEFAULT '',"
	" hop bigint NOT NULL DEFAULT 0);"
	"CREATE INDEX deliveries_claim ON deliveries(dest, next_attempt_at, id);"
	"CREATE TABLE dead_letters ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	/* the kinds of outbox_dead_kind_names (test_outbox_backends checks they agree) */
	" kind text NOT NULL CHECK (kind IN ('rule_error', 'rejected', 'write', 'forward')),"
	" reason text NOT NULL,"
	" payload bytea,"
	" request_id text,"
	" event_index bigint,"
	" target text,"
	" delivery_id text,"
	" name text,"
	" url text,"
	" method text,"
	" content_type text,"
	" headers text,"
	" attempts integer,"
	" last_status integer,"
	" created_at double precision NOT NULL,"
	" died_at double precision NOT NULL,"
	" replayed_at double precision);"
	"CREATE INDEX dead_letters_open ON dead_letters(replayed_at, id);"
	"CREATE INDEX dead_letters_name ON dead_letters(name, id);",
};
#define OB_PG_SCHEMA_VERSION ((long)(sizeof ob_pg_migrations / sizeof ob_pg_migrations[0]))

/* The steps after the lock; the caller rolls back when this fails. */
static int outbox_pg_migrate_locked(struct outbox *ob)
{
	PGresult *r;
	long version;
	char v[32];

	if (ob_pg_run(ob, "schema", "CREATE TABLE IF NOT EXISTS egoi_router_schema"
				    " (version integer NOT NULL)", 0, NULL, NULL) != 0)
		return -1;
	r = ob_pg_exec(ob, "schema", "SELECT version FROM egoi_router_schema", 0, NULL, NULL);
	if (!r)
		return -1;
	version = PQntuples(r) == 1 ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : PQntuples(r) ? -1 : 0;
	if (PQntuples(r) == 0) {
		PQclear(r);
		if (ob_pg_run(ob, "schema", "INSERT INTO egoi_router_schema VALUES (0)", 0, NULL,
			      NULL) != 0)
			return -1;
	} else {
		PQclear(r);
	}
	if (version < 0 || version > OB_PG_SCHEMA_VERSION)
		return ob_failf(ob, "%s: database schema version %ld is not supported "
				    "(this program: %ld)", ob->pg->where, version,
				OB_PG_SCHEMA_VERSION);
	for (long i = version; i < OB_PG_SCHEMA_VERSION; i++) {
		const char *p[] = { ob_pg_int(v, i + 1) };

		/* a multi-statement script takes no parameters: PQexecParams
		 * runs one statement, so the script goes through simple query */
		r = PQexec(ob->pg->conn, ob_pg_migrations[i]);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			ob_failf(ob, "%s: schema %ld: %s", ob->pg->where, i + 1,
				 PQresultErrorMessage(r));
			PQclear(r);
			return -1;
		}
		PQclear(r);
		if (ob_pg_run(ob, "schema", "UPDATE egoi_router_schema SET version = $1", 1, p,
			      NULL) != 0)
			return -1;
	}
	return 0;
}

int ob_pg_migrate(struct outbox *ob)
{
	PGresult *r = NULL;
	int ret = -1, in_tx = 0;

	if (ob_pg_run(ob, "schema", "BEGIN", 0, NULL, NULL) != 0)
		goto out;
	in_tx = 1;
	if (ob_pg_run(ob, "schema lock", "SELECT pg_advisory_xact_lock(" OB_PG_SCHEMA_LOCK ")",
		      0, NULL, NULL) != 0 ||
	    outbox_pg_migrate_locked(ob) != 0)
		goto out;
	r = ob_pg_exec(ob, "schema", "COMMIT", 0, NULL, NULL);
	in_tx = 0;   /* COMMIT ends the transaction whatever it answers */
	if (r && strcmp(PQcmdStatus(r), "COMMIT") == 0)
		ret = 0;
	else if (r)
		ob_failf(ob, "%s: schema: the server rolled the change back", ob->pg->where);
out:
	PQclear(r);
	if (in_tx)
		PQclear(PQexec(ob->pg->conn, "ROLLBACK"));
	return ret;
}

int ob_pg_schema_check(struct outbox *ob, char *msg, size_t len)
{
	PGresult *r = ob_pg_exec(ob, "schema", "SELECT to_regclass('egoi_router_schema') IS NOT NULL",
				 0, NULL, NULL);
	long version = 0;
	int ret = -1;

	if (!r)
		goto out;
	if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		PQclear(r);
		r = ob_pg_exec(ob, "schema", "SELECT max(version) FROM egoi_router_schema", 0, NULL,
			       NULL);
		if (!r)
			goto out;
		version = PQgetisnull(r, 0, 0) ? 0 : strtol(PQgetvalue(r, 0, 0), NULL, 10);
	}
	if (version > OB_PG_SCHEMA_VERSION) {
		ob_failf(ob, "%s: database schema version %ld is not supported (this program: %ld)",
			 ob->pg->where, version, OB_PG_SCHEMA_VERSION);
		goto out;
	}
	if (version == 0)
		snprintf(msg, len, "%s: reachable, no schema yet (the first run creates it)",
			 ob->pg->where);
	else
		snprintf(msg, len, "%s: reachable, schema version %ld%s", ob->pg->where, version,
			 version < OB_PG_SCHEMA_VERSION ? " (the next run migrates it)" : "");
	ret = 0;
out:
	if (ret != 0)
		snprintf(msg, len, "%s", ob->err);
	PQclear(r);
	return ret;
}
