/*
 * test_metrics.c — counters, bounded labels, histogram buckets and the
 * Prometheus text exposition (parsed back line by line), and exact counts
 * when many threads count at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "metrics.h"
#include "test_util.h"

static int setup(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

static char *render(void)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(&text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

/* The value of the sample whose "name{labels}" part is exactly series; -1 if absent. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *line = text; *line; ) {
		const char *end = strchr(line, '\n');

		if (!end)
			end = line + strlen(line);
		if ((size_t)(end - line) > n && strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
		line = *end ? end + 1 : end;
	}
	return -1;
}

static size_t count_prefix(const char *text, const char *prefix)
{
	size_t count = 0, n = strlen(prefix);

	for (const char *line = text; *line; ) {
		const char *end = strchr(line, '\n');

		if (strncmp(line, prefix, n) == 0)
			count++;
		if (!end)
			break;
		line = end + 1;
	}
	return count;
}

static void bucket_math(void **state)
{
	(void)state;
	for (int i = 1; i < METRICS_BUCKETS - 1; i++)
		assert_true(metrics_bucket_bounds[i - 1] < metrics_bucket_bounds[i]);
	assert_int_equal(metrics_bucket(0), 0);
	assert_int_equal(metrics_bucket(-3), 0);
	assert_int_equal(metrics_bucket(NAN), 0);
	assert_int_equal(metrics_bucket(0.001), 0);        /* le is inclusive */
	assert_int_equal(metrics_bucket(0.0011), 1);
	assert_int_equal(metrics_bucket(0.3), 7);          /* (0.25, 0.5] */
	assert_int_equal(metrics_bucket(10), METRICS_BUCKETS - 2);
	assert_int_equal(metrics_bucket(10.001), METRICS_BUCKETS - 1);
	assert_int_equal(metrics_bucket(1e300), METRICS_BUCKETS - 1);
}

/* Each known action (egoi_actions.h, checked against the fixture by
 * test_egoi_actions) has its own series; anything else is "other". */
static void action_index_follows_table(void **state)
{
	(void)state;
	for (int i = 0; i < EGOI_ACTIONS; i++)
		assert_int_equal(metrics_action_index(egoi_actions[i]), i);
	assert_int_equal(metrics_action_index("email_sent"), METRICS_ACTIONS);
	assert_int_equal(metrics_action_index(""), METRICS_ACTIONS);
	assert_int_equal(metrics_action_index(NULL), METRICS_ACTIONS);
}

static void requests_and_histogram(void **state)
{
	char *text;

	(void)state;
	metrics_request(200, 0.0005);
	metrics_request(200, 0.003);
	metrics_request(401, 0.003);
	metrics_request(413, 7);
	metrics_request(299, 20);
	text = render();
	assert_true(sample(text, "egoi_router_requests_total{code=\"200\"}") == 2);
	assert_true(sample(text, "egoi_router_requests_total{code=\"401\"}") == 1);
	assert_true(sample(text, "egoi_router_requests_total{code=\"413\"}") == 1);
	assert_true(sample(text, "egoi_router_requests_total{code=\"503\"}") == 0);
	assert_true(sample(text, "egoi_router_requests_total{code=\"other\"}") == 1);
	assert_true(sample(text, "egoi_router_request_seconds_bucket{le=\"0.001\"}") == 1);
	assert_true(sample(text, "egoi_router_request_seconds_bucket{le=\"0.005\"}") == 3);
	assert_true(sample(text, "egoi_router_request_seconds_bucket{le=\"5\"}") == 3);
	assert_true(sample(text, "egoi_router_request_seconds_bucket{le=\"10\"}") == 4);
	assert_true(sample(text, "egoi_router_request_seconds_bucket{le=\"+Inf\"}") == 5);
	assert_true(sample(text, "egoi_router_request_seconds_count") == 5);
	assert_non_null(strstr(text, "\negoi_router_request_seconds_sum 27.006500000\n"));
	/* nothing delivered yet: an empty histogram is still complete */
	assert_true(sample(text, "egoi_router_delivery_seconds_bucket{le=\"+Inf\"}") == 0);
	assert_true(sample(text, "egoi_router_delivery_seconds_count") == 0);
	free(text);
}

static void events_decisions_and_errors(void **state)
{
	struct metrics_tally t;
	char *text;

	(void)state;
	metrics_tally_init(&t);
	metrics_tally_event(&t, "email_send");
	metrics_tally_event(&t, "email_send");
	metrics_tally_event(&t, "new_order");
	metrics_tally_event(&t, "made_up");
	metrics_tally_event(&t, NULL);
	metrics_tally_decision(&t, METRICS_FORWARD, "crm");
	metrics_tally_decision(&t, METRICS_FORWARD, "crm");
	metrics_tally_decision(&t, METRICS_WRITE, "crm");      /* same name, other kind */
	metrics_tally_decision(&t, METRICS_DROP, "no_rule");
	metrics_tally_decision(&t, METRICS_ERROR, "rule_error");
	metrics_tally_decision(&t, METRICS_ERROR, NULL);
	text = render();
	/* nothing is visible before the flush */
	assert_true(sample(text, "egoi_router_events_total{action=\"email_send\"}") == 0);
	free(text);
	metrics_tally_flush(&t);
	metrics_rule_error();
	metrics_rule_error();
	text = render();
	assert_true(sample(text, "egoi_router_events_total{action=\"email_send\"}") == 2);
	assert_true(sample(text, "egoi_router_events_total{action=\"new_order\"}") == 1);
	assert_true(sample(text, "egoi_router_events_total{action=\"other\"}") == 2);
	assert_true(sample(text, "egoi_router_events_total{action=\"push_open\"}") == 0);
	assert_int_equal(count_prefix(text, "egoi_router_events_total{"), METRICS_ACTIONS + 1);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"forward\",name=\"crm\"}") == 2);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"write\",name=\"crm\"}") == 1);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"drop\",name=\"no_rule\"}") ==
		    1);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"error\",name=\"rule_error\"}")
		    == 1);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"error\",name=\"?\"}") == 1);
	assert_true(sample(text, "egoi_router_rule_errors_total") == 2);
	assert_true(sample(text, "egoi_router_lua_state_waits_total") == 0);
	free(text);
	/* the tally is empty again after a flush */
	metrics_tally_flush(&t);
	text = render();
	assert_true(sample(text, "egoi_router_events_total{action=\"email_send\"}") == 2);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"forward\",name=\"crm\"}") == 2);
	free(text);
}

/* More distinct labels in one batch than a tally holds: nothing is lost. */
static void tally_overflow_flushes(void **state)
{
	struct metrics_tally t;
	char name[32], series[128], *text;

	(void)state;
	metrics_tally_init(&t);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < METRICS_TALLY_SLOTS * 2 + 5; i++) {
			snprintf(name, sizeof name, "path/%d.jsonl", i);
			metrics_tally_decision(&t, METRICS_WRITE, name);
		}
	metrics_tally_flush(&t);
	text = render();
	for (int i = 0; i < METRICS_TALLY_SLOTS * 2 + 5; i++) {
		snprintf(series, sizeof series,
			 "egoi_router_decisions_total{kind=\"write\",name=\"path/%d.jsonl\"}", i);
		assert_true(sample(text, series) == 3);
	}
	free(text);
}

/* The tally remembers its last look-ups by the name as given: a reused
 * buffer, names past the memo's length, and two names that clean to one
 * label all count where they belong. */
static void tally_memo_counts_by_name(void **state)
{
	struct metrics_tally t;
	char buf[128], longname[100], series[256], *text;

	(void)state;
	memset(longname, 'L', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	metrics_tally_init(&t);
	for (int i = 0; i < 30; i++) {
		snprintf(buf, sizeof buf, "%s", i % 3 ? "memo-b.jsonl" : "memo-a.jsonl");
		metrics_tally_decision(&t, METRICS_WRITE, buf);
		metrics_tally_decision(&t, METRICS_DROP, buf);   /* same name, other kind */
		metrics_tally_decision(&t, METRICS_WRITE, longname);
		metrics_tally_decision(&t, METRICS_DROP, i % 2 ? "memo\x01x" : "memo?x");
	}
	metrics_tally_flush(&t);
	text = render();
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"write\",name=\"memo-a.jsonl\"}") ==
		    10);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"write\",name=\"memo-b.jsonl\"}") ==
		    20);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"drop\",name=\"memo-a.jsonl\"}") ==
		    10);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"drop\",name=\"memo?x\"}") == 30);
	snprintf(series, sizeof series, "egoi_router_decisions_total{kind=\"write\",name=\"%s\"}",
		 longname);
	assert_true(sample(text, series) == 30);
	free(text);
}

static void labels_are_bounded(void **state)
{
	struct metrics_tally t;
	char name[32], *text;

	(void)state;
	metrics_tally_init(&t);
	for (int i = 0; i < METRICS_LABELS + 44; i++) {
		snprintf(name, sizeof name, "reason %d", i);
		metrics_tally_decision(&t, METRICS_DROP, name);
		metrics_delivery(name, METRICS_RETRY, -1);
	}
	/* known pairs keep their own series after the table is full */
	metrics_tally_decision(&t, METRICS_DROP, "reason 0");
	metrics_tally_decision(&t, METRICS_FORWARD, "late");
	metrics_delivery("reason 1", METRICS_RETRY, 0.2);
	metrics_delivery("reason 1", METRICS_DONE, 0.2);
	metrics_tally_flush(&t);
	text = render();
	assert_int_equal(count_prefix(text, "egoi_router_decisions_total{"), METRICS_LABELS + 2);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"drop\",name=\"reason 0\"}") ==
		    2);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"drop\",name=\"other\"}") == 44);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"forward\",name=\"other\"}") ==
		    1);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"drop\",name=\"reason 300\"}") <
		    0);
	assert_int_equal(count_prefix(text, "egoi_router_deliveries_total{"), METRICS_LABELS + 2);
	assert_true(sample(text,
			   "egoi_router_deliveries_total{name=\"reason 1\",outcome=\"retry\"}") == 2);
	assert_true(sample(text,
			   "egoi_router_deliveries_total{name=\"other\",outcome=\"retry\"}") == 44);
	assert_true(sample(text, "egoi_router_deliveries_total{name=\"other\",outcome=\"done\"}") ==
		    1);
	assert_true(sample(text, "egoi_router_delivery_seconds_count") == 2);
	free(text);
}

static void label_values_are_escaped(void **state)
{
	struct metrics_tally t;
	char *text;

	(void)state;
	metrics_tally_init(&t);
	metrics_tally_decision(&t, METRICS_DROP, "say \"hi\" \\ now\nplease");
	/* invalid UTF-8 and control bytes would make Prometheus refuse the whole scrape */
	metrics_tally_decision(&t, METRICS_WRITE, "a\xff\xc0\x80" "b\tc.jsonl");
	metrics_tally_decision(&t, METRICS_WRITE, "caf\xc3\xa9.jsonl");
	metrics_tally_flush(&t);
	text = render();
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"drop\","
				 "name=\"say \\\"hi\\\" \\\\ now?please\"}") == 1);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"write\","
				 "name=\"a???b?c.jsonl\"}") == 1);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"write\","
				 "name=\"caf\xc3\xa9.jsonl\"}") == 1);
	free(text);
}

static void gauges_appear_once_known(void **state)
{
	char *text;

	(void)state;
	text = render();
	assert_non_null(strstr(text, "# TYPE egoi_router_outbox_pending gauge\n"));
	assert_true(sample(text, "egoi_router_outbox_pending") < 0);
	assert_true(sample(text, "egoi_router_dead_letters") < 0);
	free(text);
	metrics_set_outbox(5, 2);
	metrics_set_outbox(-1, 3);    /* a failed count keeps the last value */
	text = render();
	assert_true(sample(text, "egoi_router_outbox_pending") == 5);
	assert_true(sample(text, "egoi_router_dead_letters") == 3);
	free(text);
}

/* The certificate's notAfter only once TLS serves one; reloads by result. */
static void tls_expiry_and_reloads(void **state)
{
	char *text;

	(void)state;
	text = render();
	assert_null(strstr(text, "egoi_router_tls_certificate_expiry_seconds"));
	assert_true(sample(text, "egoi_router_reloads_total{result=\"ok\"}") == 0);
	assert_true(sample(text, "egoi_router_reloads_total{result=\"refused\"}") == 0);
	free(text);
	metrics_set_tls_expiry(1900000000L);
	metrics_reload(1, NULL);
	metrics_reload(0, NULL);
	metrics_reload(0, NULL);
	text = render();
	assert_true(sample(text, "egoi_router_tls_certificate_expiry_seconds") == 1900000000.0);
	assert_true(sample(text, "egoi_router_reloads_total{result=\"ok\"}") == 1);
	assert_true(sample(text, "egoi_router_reloads_total{result=\"refused\"}") == 2);
	free(text);
	metrics_set_tls_expiry(-1);
	text = render();
	assert_null(strstr(text, "egoi_router_tls_certificate_expiry_seconds"));
	free(text);
}

static void lua_state_waits(void **state)
{
	char *text;

	(void)state;
	text = render();
	assert_true(sample(text, "egoi_router_lua_state_waits_total") == 0);
	assert_true(sample(text, "egoi_router_lua_state_wait_seconds_total") == 0);
	free(text);
	metrics_lua_state_wait(0.25);
	metrics_lua_state_wait(0.5);
	text = render();
	assert_true(sample(text, "egoi_router_lua_state_waits_total") == 2);
	assert_true(sample(text, "egoi_router_lua_state_wait_seconds_total") == 0.75);
	free(text);
}

static void url_host(void **state)
{
	char out[64], tiny[4];

	(void)state;
	assert_string_equal(metrics_url_host("https://CRM.Example/hook?x=1", out, sizeof out),
			    "crm.example");
	assert_string_equal(metrics_url_host("http://user:secret@h.example:8080/p", out,
					     sizeof out), "h.example");
	assert_string_equal(metrics_url_host("http://[::1]:9000/", out, sizeof out), "[::1]");
	/* Two '@' in the authority: libcurl refuses the URL, so delivery could
	 * not send it and forward() refuses it; it names no host. */
	assert_string_equal(metrics_url_host("http://a@b@host#frag", out, sizeof out), "?");
	assert_string_equal(metrics_url_host("http://u@host#frag", out, sizeof out), "host");
	assert_string_equal(metrics_url_host("ftp://host/", out, sizeof out), "?");
	assert_string_equal(metrics_url_host("http:/host/", out, sizeof out), "?");
	assert_string_equal(metrics_url_host("no-scheme", out, sizeof out), "?");
	assert_string_equal(metrics_url_host("http:///path", out, sizeof out), "?");
	assert_string_equal(metrics_url_host(NULL, out, sizeof out), "?");
	assert_string_equal(metrics_url_host("http://abcdef/", tiny, sizeof tiny), "abc");
}

/* --- the exposition format, parsed back --- */

struct family {
	char name[96];
	char type[16];
	int help, typed;
};

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
			return 0;
	return 1;
}

/* {k="v",...}: returns the length consumed, -1 if malformed. */
static int parse_labels(const char *s)
{
	const char *p = s;

	if (*p != '{')
		return 0;
	p++;
	while (*p != '}') {
		const char *k = p;

		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (!valid_name(k, (size_t)(p - k)) || p[0] != '=' || p[1] != '"')
			return -1;
		for (p += 2; *p != '"'; p++) {
			if (*p == '\0' || *p == '\n')
				return -1;
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return -1;
			}
		}
		p++;
		if (*p == ',')
			p++;
		else if (*p != '}')
			return -1;
	}
	return (int)(p + 1 - s);
}

static struct family *family_of(struct family *fams, size_t nfams, const char *name, size_t n)
{
	static const char *const suffixes[] = { "", "_bucket", "_sum", "_count" };

	for (size_t i = 0; i < nfams; i++)
		for (size_t j = 0; j < 4; j++) {
			size_t fl = strlen(fams[i].name), sl = strlen(suffixes[j]);

			if (j > 0 && strcmp(fams[i].type, "histogram") != 0)
				continue;
			if (fl + sl == n && strncmp(name, fams[i].name, fl) == 0 &&
			    strncmp(name + fl, suffixes[j], sl) == 0)
				return &fams[i];
		}
	return NULL;
}

static void exposition_format(void **state)
{
	static const char *const want[] = {
		"egoi_router_requests_total", "egoi_router_events_total",
		"egoi_router_decisions_total", "egoi_router_rule_errors_total",
		"egoi_router_deliveries_total", "egoi_router_outbox_pending",
		"egoi_router_dead_letters", "egoi_router_delivery_seconds",
		"egoi_router_request_seconds", "egoi_router_destination_state",
		"egoi_router_destination_backlog", "egoi_router_loops_refused_total",
		"egoi_router_refused_total", "egoi_router_tls_certificate_expiry_seconds",
		"egoi_router_reloads_total", "egoi_router_build_info",
		"egoi_router_lua_state_waits_total", "egoi_router_lua_state_wait_seconds_total",
		"process_start_time_seconds", "process_cpu_seconds_total",
		"process_resident_memory_bytes", "process_virtual_memory_bytes",
		"process_open_fds", "process_max_fds",
	};
	struct family fams[32];
	struct metrics_tally t;
	size_t nfams = 0, samples = 0;
	char *text, *save = NULL;

	(void)state;
	memset(fams, 0, sizeof fams);
	metrics_request(200, 0.01);
	metrics_tally_init(&t);
	metrics_tally_event(&t, "sms_send");
	metrics_tally_decision(&t, METRICS_WRITE, "sms/a \"b\".jsonl");
	metrics_tally_flush(&t);
	metrics_delivery("crm", METRICS_DONE, 0.04);
	metrics_set_outbox(1, 0);
	metrics_set_tls_expiry(1900000000L);
	metrics_reload(1, NULL);
	text = render();
	assert_true(text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
			char *name = line + 7, *sp = strchr(name, ' ');
			struct family *f;

			assert_non_null(sp);
			assert_true(valid_name(name, (size_t)(sp - name)));
			assert_true(sp[1] != '\0');
			f = NULL;
			for (size_t i = 0; i < nfams; i++)
				if (strlen(fams[i].name) == (size_t)(sp - name) &&
				    strncmp(fams[i].name, name, (size_t)(sp - name)) == 0)
					f = &fams[i];
			if (!f) {
				assert_true(nfams < 32);
				f = &fams[nfams++];
				memcpy(f->name, name, (size_t)(sp - name));
			}
			if (line[2] == 'H') {
				assert_int_equal(f->help, 0);      /* once per family */
				f->help = 1;
			} else {
				assert_int_equal(f->typed, 0);
				assert_true(strcmp(sp + 1, "counter") == 0 ||
					    strcmp(sp + 1, "gauge") == 0 ||
					    strcmp(sp + 1, "histogram") == 0);
				snprintf(f->type, sizeof f->type, "%s", sp + 1);
				f->typed = 1;
			}
			continue;
		}
		assert_true(line[0] != '#');
		{
			size_t n = strcspn(line, "{ ");
			int lab = parse_labels(line + n);
			struct family *f = family_of(fams, nfams, line, n);
			char *end;

			assert_true(valid_name(line, n));
			assert_true(lab >= 0);
			/* its family was declared (HELP and TYPE) before its samples */
			assert_non_null(f);
			assert_true(f->help && f->typed);
			assert_true(line[n + (size_t)lab] == ' ');
			strtod(line + n + (size_t)lab + 1, &end);
			assert_true(end > line + n + (size_t)lab + 1 && *end == '\0');
			samples++;
		}
	}
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		struct family *f = family_of(fams, nfams, want[i], strlen(want[i]));

		assert_non_null(f);
		assert_true(f->help && f->typed);
	}
	assert_int_equal(nfams, sizeof want / sizeof want[0]);
	assert_true(samples > METRICS_ACTIONS + 2 * (METRICS_BUCKETS + 2));
	free(text);
}

/* --- several threads --- */

#define THREADS 8
#define ROUNDS 20000

static void *counting_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct metrics_tally t;
	char mine[32];

	snprintf(mine, sizeof mine, "thread %d", id);
	metrics_tally_init(&t);
	for (int i = 0; i < ROUNDS; i++) {
		metrics_request(i % 2 ? 200 : 503, 0.002);
		metrics_tally_event(&t, "email_open");
		metrics_tally_event(&t, i % 3 ? "sms_send" : "bogus");
		metrics_tally_decision(&t, METRICS_FORWARD, "crm");
		metrics_tally_decision(&t, METRICS_DROP, mine);
		if (i % 10 == 9)
			metrics_tally_flush(&t);
		metrics_delivery(i % 4 ? "crm" : mine, METRICS_DONE, 0.02);
		metrics_rule_error();
	}
	metrics_tally_flush(&t);
	return NULL;
}

static void counts_are_exact_across_threads(void **state)
{
	pthread_t th[THREADS];
	unsigned long total = (unsigned long)THREADS * ROUNDS;
	unsigned long thirds = (unsigned long)THREADS * ((ROUNDS + 2) / 3);
	char series[128], *text;

	(void)state;
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, counting_thread, (void *)(intptr_t)i),
				 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	text = render();
	assert_true(sample(text, "egoi_router_requests_total{code=\"200\"}") == total / 2);
	assert_true(sample(text, "egoi_router_requests_total{code=\"503\"}") == total / 2);
	assert_true(sample(text, "egoi_router_request_seconds_count") == total);
	assert_true(sample(text, "egoi_router_request_seconds_bucket{le=\"0.001\"}") == 0);
	assert_true(sample(text, "egoi_router_request_seconds_bucket{le=\"0.005\"}") == total);
	assert_true(sample(text, "egoi_router_events_total{action=\"email_open\"}") == total);
	assert_true(sample(text, "egoi_router_events_total{action=\"other\"}") == thirds);
	assert_true(sample(text, "egoi_router_events_total{action=\"sms_send\"}") ==
		    total - thirds);
	assert_true(sample(text, "egoi_router_decisions_total{kind=\"forward\",name=\"crm\"}") ==
		    total);
	for (int i = 0; i < THREADS; i++) {
		snprintf(series, sizeof series,
			 "egoi_router_decisions_total{kind=\"drop\",name=\"thread %d\"}", i);
		assert_true(sample(text, series) == ROUNDS);
		snprintf(series, sizeof series,
			 "egoi_router_deliveries_total{name=\"thread %d\",outcome=\"done\"}", i);
		assert_true(sample(text, series) == ROUNDS / 4);
	}
	assert_true(sample(text, "egoi_router_deliveries_total{name=\"crm\",outcome=\"done\"}") ==
		    total - total / 4);
	assert_true(sample(text, "egoi_router_delivery_seconds_count") == total);
	assert_true(sample(text, "egoi_router_rule_errors_total") == total);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(bucket_math, setup),
		cmocka_unit_test_setup(action_index_follows_table, setup),
		cmocka_unit_test_setup(requests_and_histogram, setup),
		cmocka_unit_test_setup(events_decisions_and_errors, setup),
		cmocka_unit_test_setup(tally_overflow_flushes, setup),
		cmocka_unit_test_setup(tally_memo_counts_by_name, setup),
		cmocka_unit_test_setup(labels_are_bounded, setup),
		cmocka_unit_test_setup(label_values_are_escaped, setup),
		cmocka_unit_test_setup(gauges_appear_once_known, setup),
		cmocka_unit_test_setup(lua_state_waits, setup),
		cmocka_unit_test_setup(tls_expiry_and_reloads, setup),
		cmocka_unit_test_setup(url_host, setup),
		cmocka_unit_test_setup(exposition_format, setup),
		cmocka_unit_test_setup(counts_are_exact_across_threads, setup),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	metrics_reset();   /* frees the registered label names */
	return rc;
}
