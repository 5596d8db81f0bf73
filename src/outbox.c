/*
 * outbox.c — the outbox's public face (outbox.h, outbox_deliver.h,
 * outbox_dlq.h): which backend outbox_open uses (outbox_use), the checks
 * every entry point makes (the owner thread), and the call into the
 * connection's backend (struct ob_backend, outbox_internal.h). The SQLite
 * backend is outbox_sqlite*.c, the PostgreSQL one outbox_pg*.c.
 *
 * Design: the backend is chosen per process, once, before any thread
 * opens a connection, so the daemon's three connections (main's, the
 * group committer's, the delivery thread's) and a `dlq` command all open
 * the same store without each caller carrying the target around.
 *
 * Threads: outbox_use before any thread opens a connection; the rest as
 * outbox.h (a connection belongs to one thread).
 */
#include "outbox_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

/* A claim's lease on PostgreSQL when the caller gives none. */
#define OB_LEASE_MS_DEFAULT 60000L

static const struct ob_backend *ob_chosen = &ob_sqlite_backend;
static char ob_target[1024] = "sqlite";
static long ob_lease = OB_LEASE_MS_DEFAULT;

const char *const outbox_dead_kind_names[OUTBOX_DEAD_KINDS] = {
	[OUTBOX_DEAD_RULE_ERROR] = "rule_error",
	[OUTBOX_DEAD_REJECTED] = "rejected",
	[OUTBOX_DEAD_WRITE] = "write",
	[OUTBOX_DEAD_FORWARD] = "forward",
};

int outbox_dead_kind_parse(const char *name)
{
	for (int k = 0; name && k < OUTBOX_DEAD_KINDS; k++)
		if (strcmp(name, outbox_dead_kind_names[k]) == 0)
			return k;
	return -1;
}

/* libuuid reads the kernel's random source. */
void ob_uuid(char out[37])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

int ob_failf(struct outbox *ob, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ob->err, sizeof ob->err, fmt, ap);
	va_end(ap);
	return -1;
}

int outbox_use(const char *target, long lease_ms, char *err, size_t errlen)
{
	const struct ob_backend *b;

	if (!target || strcmp(target, "sqlite") == 0) {
		target = "sqlite";
		b = &ob_sqlite_backend;
	} else if (strncmp(target, "postgresql://", 13) == 0 ||
		   strncmp(target, "postgres://", 11) == 0) {
		b = &ob_pg_backend;
	} else {
		snprintf(err, errlen, "outbox: expected sqlite or a postgresql:// URI");
		return -1;
	}
	if (strlen(target) >= sizeof ob_target) {
		snprintf(err, errlen, "outbox: the connection URI is too long");
		return -1;
	}
	strcpy(ob_target, target);
	ob_chosen = b;
	ob_lease = lease_ms > 0 ? lease_ms : OB_LEASE_MS_DEFAULT;
	return 0;
}

const char *outbox_backend_name(void)
{
	return ob_chosen->name;
}

long ob_lease_ms(void)
{
	return ob_lease;
}

/* Replaces [from, to) of buf's copy of target with "***". */
static void outbox_mask(char *buf, size_t len, const char *target, size_t from, size_t to)
{
	snprintf(buf, len, "%.*s***%s", (int)from, target, target + to);
}

void outbox_target_redact(const char *target, char *buf, size_t len)
{
	char tmp[1024];
	const char *p, *at, *colon, *q;

	snprintf(buf, len, "%s", target ? target : "");
	p = strstr(buf, "://");
	if (p) {
		p += 3;
		at = strchr(p, '@');
		colon = strchr(p, ':');
		/* user:password@ — the userinfo ends at the last '@' before the path */
		if (at && colon && colon < at && !memchr(p, '/', (size_t)(at - p))) {
			snprintf(tmp, sizeof tmp, "%s", buf);
			outbox_mask(buf, len, tmp, (size_t)(colon + 1 - buf), (size_t)(at - buf));
		}
	}
	/* ...?password=secret&... */
	q = strstr(buf, "password=");
	if (q) {
		size_t from = (size_t)(q + 9 - buf), to = from;

		while (buf[to] && buf[to] != '&')
			to++;
		snprintf(tmp, sizeof tmp, "%s", buf);
		outbox_mask(buf, len, tmp, from, to);
	}
}

int outbox_check(char *msg, size_t len)
{
	return ob_chosen->check(ob_target, msg, len);
}

struct outbox *outbox_open(const char *data_dir, char *err, size_t errlen)
{
	struct outbox *ob = calloc(1, sizeof *ob);

	if (!ob) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ob->owner = pthread_self();
	ob->ops = ob_chosen;
	if (ob->ops->open(ob, ob_target, data_dir, err, errlen) != 0) {
		outbox_close(ob);
		return NULL;
	}
	return ob;
}

void outbox_adopt(struct outbox *ob)
{
	ob->owner = pthread_self();
}

void outbox_close(struct outbox *ob)
{
	if (!ob)
		return;
	ob->ops->close(ob);
	free(ob);
}

const char *outbox_error(const struct outbox *ob)
{
	return ob && ob->err[0] ? ob->err : "outbox: no error";
}

/* --- the operations: the owner check, then the backend --- */

#define OB_CALL(ob, op, ...) (OB_OWNED(ob), (ob)->ops->op((ob), ##__VA_ARGS__))

int outbox_begin(struct outbox *ob) { return OB_CALL(ob, begin); }
int outbox_commit(struct outbox *ob) { return OB_CALL(ob, commit); }
void outbox_rollback(struct outbox *ob) { OB_CALL(ob, rollback); }
int outbox_savepoint(struct outbox *ob) { return OB_CALL(ob, savepoint); }
int outbox_savepoint_release(struct outbox *ob) { return OB_CALL(ob, savepoint_release); }
int outbox_savepoint_rollback(struct outbox *ob) { return OB_CALL(ob, savepoint_rollback); }

int outbox_add_forward(struct outbox *ob, const struct outbox_forward *f, char *id_out)
{
	return OB_CALL(ob, add_forward, f, id_out);
}

int outbox_add_dead(struct outbox *ob, const struct outbox_dead *d)
{
	return OB_CALL(ob, add_dead, d);
}

int outbox_relax_sync(struct outbox *ob) { return OB_CALL(ob, relax_sync); }
int outbox_release_leases(struct outbox *ob) { return OB_CALL(ob, release_leases); }
int outbox_release_space(struct outbox *ob) { return OB_CALL(ob, release_space); }
int outbox_wake_fd(struct outbox *ob) { return OB_CALL(ob, wake_fd); }
int outbox_wake_drain(struct outbox *ob) { return OB_CALL(ob, wake_drain); }

int outbox_claim_due(struct outbox *ob, const char *dest, double now, size_t max,
		     struct outbox_delivery **out)
{
	return OB_CALL(ob, claim_due, dest, now, max, out);
}

int outbox_scan_destinations(struct outbox *ob,
			     int (*fn)(const char *dest, double next_at, void *arg), void *arg)
{
	return OB_CALL(ob, scan_destinations, fn, arg);
}

int outbox_dest_due_now(struct outbox *ob, const char *dest, double now)
{
	return OB_CALL(ob, dest_due_now, dest, now);
}

int outbox_complete(struct outbox *ob, int64_t id) { return OB_CALL(ob, complete, id); }

int outbox_retry(struct outbox *ob, int64_t id, double next_at, int status, const char *error)
{
	return OB_CALL(ob, retry, id, next_at, status, error);
}

int outbox_bury(struct outbox *ob, int64_t id, int status, const char *error)
{
	return OB_CALL(ob, bury, id, status, error);
}

long outbox_count_pending(struct outbox *ob) { return OB_CALL(ob, count_pending); }
long outbox_count_dead(struct outbox *ob) { return OB_CALL(ob, count_dead); }
long outbox_count_dest(struct outbox *ob, const char *dest) { return OB_CALL(ob, count_dest, dest); }

/* f, or the filter that selects every dead letter when f is NULL; NULL with
 * ob's error set for an unknown kind. */
static const struct outbox_dlq_filter *outbox_dlq_filter_of(struct outbox *ob,
							    const struct outbox_dlq_filter *f)
{
	static const struct outbox_dlq_filter all;

	if (!f)
		return &all;
	if (f->kind && outbox_dead_kind_parse(f->kind) < 0) {
		ob_failf(ob, "dead letters: unknown kind \"%s\"", f->kind);
		return NULL;
	}
	return f;
}

const char *ob_bury_reason(const char *error, int status, char buf[64])
{
	if (error && *error)
		return error;
	if (status > 0)
		snprintf(buf, 64, "HTTP %d", status);
	else
		snprintf(buf, 64, "delivery failed");
	return buf;
}

const char *ob_dlq_malformed(const struct outbox_dlq_entry *e, int kind_is_text)
{
	if (!e->kind || !kind_is_text || outbox_dead_kind_parse(e->kind) < 0)
		return "its kind is not a dead-letter kind";
	if (!e->reason)
		return "its reason is NULL";
	return NULL;
}

int outbox_dlq_list(struct outbox *ob, const struct outbox_dlq_filter *f,
		    int (*fn)(const struct outbox_dlq_entry *e, void *arg), void *arg)
{
	OB_OWNED(ob);
	f = outbox_dlq_filter_of(ob, f);
	if (f && f->limit < 0)
		return ob_failf(ob, "dead letters: negative limit");
	return f ? ob->ops->dlq_list(ob, f, fn, arg) : -1;
}

enum outbox_dlq_result outbox_dlq_requeue_forward(struct outbox *ob, int64_t id)
{
	return OB_CALL(ob, dlq_requeue_forward, id);
}

enum outbox_dlq_result outbox_dlq_mark_replayed(struct outbox *ob, int64_t id)
{
	return OB_CALL(ob, dlq_mark_replayed, id);
}

long outbox_dlq_purge(struct outbox *ob, const struct outbox_dlq_filter *f)
{
	OB_OWNED(ob);
	f = outbox_dlq_filter_of(ob, f);
	return f ? ob->ops->dlq_purge(ob, f) : -1;
}
