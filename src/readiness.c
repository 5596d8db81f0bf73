/*
 * readiness.c — the /readyz checks (see readiness.h).
 *
 * Why "outbox" looks at the writer and not at the database: every batch
 * goes through the one writer thread (outbox_writer.h), so a writer that is
 * gone or stuck in a commit fails every batch, and the disk-full state
 * makes intake answer 503 without writing. Opening the database here would
 * add a second writer's locking to every probe and prove less.
 */
#include "readiness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "clock.h"
#include "config.h"
#include "deliver.h"
#include "outbox_space.h"
#include "outbox_writer.h"
#include "pipeline.h"

static const char *const readiness_names[READINESS_CHECKS] = {
	"rules", "outbox", "output_dir", "tls", "delivery", "intake",
};

const char *readiness_name(enum readiness_check c)
{
	return c < READINESS_CHECKS ? readiness_names[c] : "?";
}

int readiness_probe_dir(const char *dir)
{
	char path[4096];
	int fd, rc = 0;

	fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		/* no O_TMPFILE on this file system: a named file, gone at once */
		if (snprintf(path, sizeof path, "%s/.readyz-XXXXXX", dir) >= (int)sizeof path)
			return ENAMETOOLONG;
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0 && unlink(path) != 0)
			rc = errno;
	}
	if (fd < 0)
		return errno;
	/* an empty file needs no block: one byte finds a full file system */
	if (rc == 0 && write(fd, "r", 1) != 1)
		rc = errno ? errno : ENOSPC;
	if (close(fd) != 0 && rc == 0)
		rc = errno;
	return rc;
}

void readiness_gather(struct pipeline_shared *sh, struct readiness_facts *f)
{
	memset(f, 0, sizeof *f);
	f->rules_generation = atomic_load(&sh->published.generation);
	if (sh->writer) {
		f->writer_started = 1;
		f->writer_alive = outbox_writer_health(sh->writer, &f->writer_busy_since);
	}
	f->outbox_full = outbox_space_full();
	f->output_dir = sh->cfg->output_dir;
	f->output_dir_errno = readiness_probe_dir(sh->cfg->output_dir);
	f->delivery_beat = sh->deliver ? deliver_heartbeat(sh->deliver) : -1;
}

/* Sets check c's verdict and detail. */
__attribute__((format(printf, 4, 5)))
static void readiness_set(struct readiness_report *r, enum readiness_check c, int ok,
			  const char *fmt, ...)
{
	va_list ap;

	r->ok[c] = ok;
	if (!ok)
		r->ready = 0;
	va_start(ap, fmt);
	vsnprintf(r->detail[c], sizeof r->detail[c], fmt, ap);
	va_end(ap);
}

void readiness_judge(const struct readiness_facts *f, double now, struct readiness_report *r)
{
	memset(r, 0, sizeof *r);
	r->ready = 1;
	if (f->rules_generation > 0)
		readiness_set(r, READINESS_RULES, 1, "generation %lu", f->rules_generation);
	else
		readiness_set(r, READINESS_RULES, 0, "no rules loaded");

	if (!f->writer_started || !f->writer_alive)
		readiness_set(r, READINESS_OUTBOX, 0, "the outbox writer is not running");
	else if (f->writer_busy_since > 0 && now - f->writer_busy_since > READINESS_STALE_S)
		readiness_set(r, READINESS_OUTBOX, 0, "a commit has been running for %.0f s",
			      now - f->writer_busy_since);
	else if (f->outbox_full)
		readiness_set(r, READINESS_OUTBOX, 0,
			      "data_dir is full: intake answers 503 until space is back");
	else
		readiness_set(r, READINESS_OUTBOX, 1, "accepting writes");

	if (f->output_dir_errno == 0)
		readiness_set(r, READINESS_OUTPUT_DIR, 1, "writable");
	else
		readiness_set(r, READINESS_OUTPUT_DIR, 0, "cannot write in %s: %s",
			      f->output_dir ? f->output_dir : "output_dir",
			      strerror(f->output_dir_errno));

	if (f->tls > 0)
		readiness_set(r, READINESS_TLS, 1, "listening");
	else if (f->tls == 0)
		readiness_set(r, READINESS_TLS, 1, "not configured (plain HTTP)");
	else
		readiness_set(r, READINESS_TLS, 0, "%s", f->tls_why[0] ? f->tls_why : "down");

	if (f->delivery_beat < 0)
		readiness_set(r, READINESS_DELIVERY, 0, "the delivery thread is not running");
	else if (now - f->delivery_beat > READINESS_STALE_S)
		readiness_set(r, READINESS_DELIVERY, 0, "the delivery loop has not turned for %.0f s",
			      now - f->delivery_beat);
	else
		readiness_set(r, READINESS_DELIVERY, 1, "alive");

	if (f->stopping)
		readiness_set(r, READINESS_INTAKE, 0, "stopping");
	else
		readiness_set(r, READINESS_INTAKE, 1, "serving");
}

static int readiness_gen_str(yajl_gen g, const char *s)
{
	return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_status_ok;
}

int readiness_json(const struct readiness_report *r, char **out, size_t *len)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t n;
	int ok, rc = -1;

	if (!g)
		return -1;
	ok = yajl_gen_map_open(g) == yajl_gen_status_ok && readiness_gen_str(g, "ready") &&
	     yajl_gen_bool(g, r->ready) == yajl_gen_status_ok && readiness_gen_str(g, "failed") &&
	     yajl_gen_array_open(g) == yajl_gen_status_ok;
	for (int c = 0; ok && c < READINESS_CHECKS; c++)
		if (!r->ok[c])
			ok = readiness_gen_str(g, readiness_names[c]);
	ok = ok && yajl_gen_array_close(g) == yajl_gen_status_ok &&
	     readiness_gen_str(g, "checks") && yajl_gen_map_open(g) == yajl_gen_status_ok;
	for (int c = 0; ok && c < READINESS_CHECKS; c++)
		ok = readiness_gen_str(g, readiness_names[c]) &&
		     yajl_gen_map_open(g) == yajl_gen_status_ok && readiness_gen_str(g, "ok") &&
		     yajl_gen_bool(g, r->ok[c]) == yajl_gen_status_ok &&
		     readiness_gen_str(g, "detail") && readiness_gen_str(g, r->detail[c]) &&
		     yajl_gen_map_close(g) == yajl_gen_status_ok;
	ok = ok && yajl_gen_map_close(g) == yajl_gen_status_ok &&
	     yajl_gen_map_close(g) == yajl_gen_status_ok &&
	     yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok;
	if (!ok)
		goto out;
	*out = malloc(n + 1);
	if (!*out)
		goto out;
	memcpy(*out, buf, n);
	(*out)[n] = '\0';
	*len = n;
	rc = 0;
out:
	yajl_gen_free(g);
	return rc;
}
