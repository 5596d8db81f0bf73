/*
 * faults_selftest.c — the fault destination checked on its own, with
 * libcurl as the client and no daemon: each mode does what the scenarios
 * rely on (answers and Retry-After in both forms, keep-alive, a black hole
 * that never answers, refused connects and the port bound again, resets)
 * and the records and counts (delivery ids, attempts, tags, duplicates)
 * are right. If this fails, the other fault scenarios prove nothing.
 */
#include "faults/faults.h"
#include "clock.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct sf_answer {
	long status;
	char retry_after[128];
};

static size_t sf_discard(char *d, size_t size, size_t n, void *arg)
{
	(void)d;
	(void)arg;
	return size * n;
}

static size_t sf_header(char *d, size_t size, size_t n, void *arg)
{
	struct sf_answer *a = arg;
	size_t len = size * n;
	static const char name[] = "Retry-After:";

	if (len > sizeof(name) && strncasecmp(d, name, sizeof(name) - 1) == 0) {
		size_t off = sizeof(name) - 1, vlen;
		while (off < len && d[off] == ' ')
			off++;
		vlen = len - off;
		while (vlen > 0 && (d[off + vlen - 1] == '\r' || d[off + vlen - 1] == '\n'))
			vlen--;
		if (vlen >= sizeof(a->retry_after))
			vlen = sizeof(a->retry_after) - 1;
		memcpy(a->retry_after, d + off, vlen);
		a->retry_after[vlen] = '\0';
	}
	return len;
}

/* One POST on handle c (keeps its connection for the next call). */
static CURLcode sf_post(CURL *c, const char *url, const char *id, long attempt, const char *body,
			long timeout_ms, struct sf_answer *a)
{
	struct curl_slist *hl = NULL, *tmp;
	char line[192];
	CURLcode rc = CURLE_OUT_OF_MEMORY;

	memset(a, 0, sizeof(*a));
	snprintf(line, sizeof(line), "X-Router-Delivery-Id: %s", id);
	if ((tmp = curl_slist_append(hl, line)) == NULL)
		goto out;
	hl = tmp;
	snprintf(line, sizeof(line), "X-Router-Attempt: %ld", attempt);
	if ((tmp = curl_slist_append(hl, line)) == NULL)
		goto out;
	hl = tmp;
	if ((tmp = curl_slist_append(hl, "Content-Type: application/json")) == NULL)
		goto out;
	hl = tmp;
	if ((rc = curl_easy_setopt(c, CURLOPT_URL, url)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, body)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sf_discard)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sf_header)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_HEADERDATA, a)) != CURLE_OK)
		goto out;
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
out:
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hl);
	return rc;
}

/* The last record, asserted to exist. */
static struct faulty_request sf_last(struct faulty *f)
{
	struct faulty_request q;
	size_t n = faulty_count(f);

	assert_true(n > 0);
	assert_int_equal(faulty_get(f, n - 1, &q), 0);
	return q;
}

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") as unix time. */
static time_t sf_parse_date(const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	assert_non_null(end);
	assert_int_equal(*end, '\0');
	return timegm(&tm);
}

static void faulty_selftest(void **state)
{
	struct fault *t = *state;
	struct faulty *f = t->dst[0];
	struct sf_answer a;
	struct faulty_request q;
	struct faulty_stats st;
	char url[96], big[6000];
	long connects = -1;
	CURL *c = curl_easy_init(), *c2 = NULL;

	assert_non_null(c);
	snprintf(url, sizeof(url), "%s/sink", t->url[0]);

	/* OK: 200, everything recorded; the second request reuses the connection. */
	double before = clock_wall();
	assert_int_equal(sf_post(c, url, "d1", 1, "{\"events\":[{\"seq\":1},{\"seq\":2}]}", 5000, &a),
			 CURLE_OK);
	assert_int_equal(a.status, 200);
	q = sf_last(f);
	assert_int_equal(q.status, 200);
	assert_string_equal(q.delivery_id, "d1");
	assert_int_equal(q.attempt, 1);
	assert_string_equal(q.uri, "/sink");
	assert_string_equal(q.body, "{\"events\":[{\"seq\":1},{\"seq\":2}]}");
	assert_int_equal(q.ntags, 2);
	assert_true(q.at >= before - 0.001 && q.at <= clock_wall() + 0.001);
	assert_true(q.not_before == 0);
	assert_int_equal(sf_post(c, url, "d1", 2, "{\"events\":[{\"seq\":3}]}", 5000, &a), CURLE_OK);
	assert_int_equal(a.status, 200);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	assert_int_equal(connects, 0);
	faulty_stats(f, &st);
	assert_int_equal(st.requests, 2);
	assert_int_equal(st.answered_2xx, 2);
	assert_int_equal(st.distinct_ok, 1);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.connections, 1);

	/* A body over 1 KiB: curl's "Expect: 100-continue" is answered. */
	int len = snprintf(big, sizeof(big), "{\"events\":[{\"seq\":4,\"pad\":\"");
	memset(big + len, 'x', 5000);
	snprintf(big + len + 5000, sizeof(big) - (size_t)len - 5000, "\"}]}");
	assert_int_equal(sf_post(c, url, "d2", 1, big, 5000, &a), CURLE_OK);
	assert_int_equal(a.status, 200);
	q = sf_last(f);
	assert_int_equal(q.body_len, strlen(big));
	assert_int_equal(q.ntags, 1);
	assert_int_equal(q.tags[0], 4);

	/* STATUS with Retry-After in seconds. */
	fault_mode(t, 0, FAULTY_STATUS, 429, "1");
	assert_int_equal(sf_post(c, url, "d3", 1, "{\"events\":[{\"seq\":5}]}", 5000, &a), CURLE_OK);
	assert_int_equal(a.status, 429);
	assert_string_equal(a.retry_after, "1");
	q = sf_last(f);
	assert_int_equal(q.status, 429);
	assert_true(q.not_before > q.at + 0.999 && q.not_before < q.at + 1.001);

	/* STATUS with Retry-After as an HTTP date 5 s ahead. */
	fault_mode(t, 0, FAULTY_STATUS, 503, "+5");
	assert_int_equal(sf_post(c, url, "d4", 1, "{\"events\":[{\"seq\":6}]}", 5000, &a), CURLE_OK);
	assert_int_equal(a.status, 503);
	time_t when = sf_parse_date(a.retry_after);
	q = sf_last(f);
	assert_int_equal(q.status, 503);
	assert_true((double)when == q.not_before);
	assert_true(q.not_before > q.at + 4.0 && q.not_before <= q.at + 5.0);

	/* BLACKHOLE: read and recorded, never answered. */
	fault_mode(t, 0, FAULTY_BLACKHOLE, 0, NULL);
	size_t before_n = faulty_count(f);
	assert_int_equal(sf_post(c, url, "d5", 1, "{\"events\":[{\"seq\":7}]}", 800, &a),
			 CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(faulty_count(f), before_n + 1);
	q = sf_last(f);
	assert_int_equal(q.status, 0);
	assert_string_equal(q.delivery_id, "d5");

	/* REFUSE: connects refused, on a fresh handle and on the old one. */
	fault_mode(t, 0, FAULTY_REFUSE, 0, NULL);
	c2 = curl_easy_init();
	assert_non_null(c2);
	assert_int_equal(sf_post(c2, url, "d6", 1, "{\"events\":[{\"seq\":8}]}", 2000, &a),
			 CURLE_COULDNT_CONNECT);
	assert_int_equal(sf_post(c, url, "d6", 2, "{\"events\":[{\"seq\":8}]}", 2000, &a),
			 CURLE_COULDNT_CONNECT);

	/* Back to OK on the same port. */
	fault_mode(t, 0, FAULTY_OK, 0, NULL);
	assert_int_equal(sf_post(c2, url, "d6", 3, "{\"events\":[{\"seq\":8}]}", 5000, &a), CURLE_OK);
	assert_int_equal(a.status, 200);

	/* RESET: a new connection and an open one both end in a reset. */
	fault_mode(t, 0, FAULTY_RESET, 0, NULL);
	CURLcode rc = sf_post(c2, url, "d7", 1, "{\"events\":[{\"seq\":9}]}", 2000, &a);
	assert_true(rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT);
	rc = sf_post(c, url, "d7", 2, "{\"events\":[{\"seq\":9}]}", 2000, &a);
	assert_true(rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT);
	faulty_stats(f, &st);
	assert_true(st.resets >= 2);

	fault_mode(t, 0, FAULTY_OK, 0, NULL);
	assert_int_equal(sf_post(c, url, "d7", 3, "{\"events\":[{\"seq\":9}]}", 5000, &a), CURLE_OK);
	assert_int_equal(a.status, 200);

	/* Tags count only what was answered 2xx: not 5, 6, 7. */
	size_t ntags = 0;
	long *tags = faulty_tags(f, &ntags);
	const long want[] = { 1, 2, 3, 4, 8, 9 };
	assert_int_equal(ntags, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < ntags; i++)
		assert_int_equal(tags[i], want[i]);
	free(tags);
	faulty_stats(f, &st);
	assert_int_equal(st.distinct_ok, 4);  /* d1, d2, d6, d7 */
	assert_int_equal(st.duplicates, 1);   /* d1 */

	curl_easy_cleanup(c);
	curl_easy_cleanup(c2);
	printf("FIGURES faulty_selftest: requests=%zu answered2xx=%zu connections=%zu resets=%zu\n",
	       st.requests, st.answered_2xx, st.connections, st.resets);
	t->h.passed = 1;
}

const struct CMUnitTest faults_selftest_tests[] = {
	FAULT_TEST(faulty_selftest),
};
const size_t faults_selftest_count = sizeof(faults_selftest_tests) / sizeof(faults_selftest_tests[0]);
