/*
 * e2e_fixture.c — the fixture shared by the end-to-end suites (see e2e.h):
 * per-scenario set-up and teardown (a harness and a receiver), booting the
 * daemon, posting with asserted answers, and small JSON accessors.
 *
 * Threads: test thread only (cmocka asserts longjmp out of the scenario).
 */
#include "e2e/e2e.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mount.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* --- shared fixture --- */

int e2e_suite_setup(void **state)
{
	(void)state;
	return harness_suite_init();
}

int e2e_suite_teardown(void **state)
{
	(void)state;
	harness_suite_free();
	return 0;
}

int e2e_setup(void **state)
{
	struct e2e *t = calloc(1, sizeof(*t));

	if (t == NULL || harness_init(&t->h) != 0)
		goto fail;
	t->r = receiver_start();
	if (t->r == NULL)
		goto fail;
	receiver_url(t->r, t->url, sizeof(t->url));
	*state = t;
	return 0;
fail:
	free(t);
	return -1;
}

int e2e_teardown(void **state)
{
	struct e2e *t = *state;

	/* lazily: the daemon may still hold files in it until harness_cleanup */
	if (t->mnt[0] && umount2(t->mnt, MNT_DETACH) != 0)
		fprintf(stderr, "[e2e] cannot unmount %s: %s\n", t->mnt, strerror(errno));
	harness_cleanup(&t->h);
	receiver_stop(t->r);
	free(t);
	return 0;
}

void e2e_boot(struct e2e *t, const char *lua, const char *extra_conf)
{
	snprintf(t->h.extra, sizeof(t->h.extra), "%s", extra_conf != NULL ? extra_conf : "");
	assert_int_equal(harness_write_rules(&t->h, lua, t->url), 0);
	assert_int_equal(harness_start(&t->h), 0);
}

void e2e_stop_ok(struct e2e *t)
{
	double secs = 0;
	int status = harness_stop(&t->h, 15000, &secs);

	assert_int_not_equal(status, -1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

void e2e_pass(struct e2e *t)
{
	t->h.passed = 1;
}

char *e2e_fixture(const char *name, size_t *len)
{
	char path[256];
	char *text;

	snprintf(path, sizeof(path), "tests/fixtures/%s", name);
	text = harness_read_file(path, len);
	if (text == NULL)
		fprintf(stderr, "[e2e] missing fixture %s (run from the repo root)\n", path);
	assert_non_null(text);
	return text;
}

struct harness_response e2e_post_expect_at(struct e2e *t, const char *body, size_t len,
					   long want, const char *file, int line)
{
	struct harness_response resp;

	_assert_int_equal(cast_to_largest_integral_type(harness_post(&t->h, body, len, &resp)), 0,
			  file, line);
	if (resp.status != want) {
		fprintf(stderr, "[e2e] POST answered %ld (want %ld): %s\n", resp.status, want,
			resp.body);
		harness_response_free(&resp);
		_assert_int_equal(cast_to_largest_integral_type(resp.status),
				  cast_to_largest_integral_type(want), file, line);
	}
	return resp;
}

void e2e_assert_counts_at(const struct harness_response *resp, long acc, long rej,
			  const char *file, int line)
{
	long a = -1, r = -1;
	int rc = harness_counts(resp, &a, &r);

	if (rc != 0)
		fprintf(stderr, "[e2e] not a counts body: %s\n", resp->body);
	_assert_int_equal(cast_to_largest_integral_type(rc), 0, file, line);
	if (a != acc || r != rej)
		fprintf(stderr, "[e2e] counts %s, want accepted %ld rejected %ld\n", resp->body, acc,
			rej);
	_assert_int_equal(cast_to_largest_integral_type(a), cast_to_largest_integral_type(acc),
			  file, line);
	_assert_int_equal(cast_to_largest_integral_type(r), cast_to_largest_integral_type(rej),
			  file, line);
}

char *e2e_events_body(const char *text, const struct harness_span *spans, const size_t *pick,
		      size_t n)
{
	size_t cap = 32;
	char *out;
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		cap += spans[pick[i]].len + 1;
	out = malloc(cap);
	assert_non_null(out);
	len += (size_t)sprintf(out, "{\"events\":[");
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			out[len++] = ',';
		memcpy(out + len, text + spans[pick[i]].off, spans[pick[i]].len);
		len += spans[pick[i]].len;
	}
	memcpy(out + len, "]}", 3);
	return out;
}

yajl_val e2e_json(const char *text)
{
	char err[256];
	yajl_val v = yajl_tree_parse(text, err, sizeof(err));

	if (v == NULL)
		fprintf(stderr, "[e2e] invalid JSON (%s): %.300s\n", err, text);
	assert_non_null(v);
	return v;
}

yajl_val e2e_get(yajl_val obj, const char *key)
{
	const char *path[] = { key, NULL };

	return obj != NULL ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

const char *e2e_str(yajl_val obj, const char *key)
{
	yajl_val v = e2e_get(obj, key);

	return v != NULL && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

/* Occurrences of needle in the daemon log. */
int e2e_log_count(const struct e2e *t, const char *needle)
{
	char *text = harness_read_file(t->h.log, NULL);
	int seen = 0;

	for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		seen++;
	free(text);
	return seen;
}

/* Polls (<= 5 s) until needle appears at least n times. */
int e2e_log_wait(const struct e2e *t, const char *needle, int n)
{
	for (int waited = 0; waited <= 5000; waited += 50) {
		if (e2e_log_count(t, needle) >= n)
			return 1;
		harness_sleep_ms(50);
	}
	fprintf(stderr, "[e2e] \"%s\" not seen %d times in the log\n", needle, n);
	return 0;
}
