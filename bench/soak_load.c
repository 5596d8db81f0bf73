/*
 * soak_load.c — the fixed-rate load generator of `make soak` (scripts/soak.sh).
 *
 *   soak-load --url URL --cacert FILE --bodies FILE --rate R --seconds S
 *             --connections C --stats FILE            (token: $SOAK_TOKEN)
 *
 * Posts the batches of BODIES (one {"events":[...]} per line, cycled
 * through) to URL over HTTPS keep-alive at R requests per second for S
 * seconds, then waits for the answers still in flight.
 *
 * Design:
 * - Open loop, as webhooks arrive: request k is due at start + k/R whatever
 *   the answers take, so a slow daemon shows as latency and as "behind"
 *   (due requests not yet sent), never as a quietly lower rate. At most C
 *   requests are in flight, on at most C connections that libcurl's multi
 *   handle keeps alive and reuses (the daemon holds one worker thread per
 *   open connection, so C bounds what we take from it). A request that is
 *   due while C are in flight waits for a free slot; it is sent late, not
 *   dropped, and the largest such backlog is reported.
 * - Wrk has no rate option, and its delay() makes a closed loop whose rate
 *   depends on latency: hence this small libcurl program.
 * - Every answer other than 200 and every transport error (connect, TLS,
 *   timeout: 10 s per request) is counted; the first of each is kept for
 *   the report. The server certificate is verified against --cacert.
 * - The daemon closes a connection idle for 5 s. At a moderate rate most of
 *   the C connections sit idle between bursts, and reusing one just as the
 *   daemon closes it fails the POST with EPIPE (a first run without the
 *   limit below had 2 "Send failure: Broken pipe" in 18,000 requests). A
 *   connection idle for more than LOAD_MAX_IDLE_S is therefore not reused
 *   but replaced, as a client with a shorter idle timeout than its server's
 *   should do.
 * - Five times a second the counters are written to STATS (a temporary file
 *   renamed over it, so a reader never sees half a line):
 *     sent=N ok=N non200=N errors=N inflight=N behind=N max_behind=N
 *   At the end one line goes to stdout, with latency from a 1 ms histogram:
 *     LOAD sent=.. ok=.. non200=.. errors=.. seconds=.. rate=.. p50_ms=..
 *          p99_ms=.. max_ms=.. max_behind=..
 *   and the first bad answer / error, if any, to stderr as LOAD_FIRST_BAD
 *   and LOAD_FIRST_ERROR lines. Exit status 0 when the run completed (bad
 *   answers included: the caller judges them), 1 on a set-up failure, 2 on
 *   bad usage. SIGINT/SIGTERM stop sending; answers in flight are awaited.
 *
 * Threads: one. All handles belong to it.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOAD_MAX_CONNECTIONS 64
#define LOAD_HIST_MS 10000          /* latency histogram: 1 ms buckets, last = 10 s+ */
#define LOAD_BAD_KEEP 200           /* bytes of the first bad answer's body kept */
#define LOAD_TIMEOUT_MS 10000L
#define LOAD_MAX_IDLE_S 3L          /* reuse a connection idle at most this long */
#define LOAD_STATS_S 0.2            /* seconds between writes of the stats file */

struct body {
	const char *p;
	size_t len;
};

struct slot {
	CURL *h;
	int busy;
	double started;
	char errbuf[CURL_ERROR_SIZE];
	char answer[LOAD_BAD_KEEP + 1];
	size_t answer_len;
};

struct load {
	const char *url, *cacert, *bodies_path, *stats_path, *token;
	double rate, seconds;
	int conns;
	char *bodies_buf;
	struct body *bodies;
	size_t nbodies, next_body;
	struct curl_slist *headers;
	CURLM *multi;
	struct slot slots[LOAD_MAX_CONNECTIONS];
	unsigned long sent, ok, non200, errors, max_behind;
	unsigned long hist[LOAD_HIST_MS + 1];
	double max_ms;
	char first_bad[LOAD_BAD_KEEP + 64];
	char first_error[CURL_ERROR_SIZE + 64];
};

static volatile sig_atomic_t load_stop;

static void on_signal(int sig)
{
	(void)sig;
	load_stop = 1;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Keeps the first LOAD_BAD_KEEP bytes of an answer's body, drops the rest. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct slot *s = arg;
	size_t len = size * n, room = LOAD_BAD_KEEP - s->answer_len;

	if (room > len)
		room = len;
	memcpy(s->answer + s->answer_len, p, room);
	s->answer_len += room;
	s->answer[s->answer_len] = '\0';
	return len;
}

/* Reads BODIES into memory, one entry per non-empty line. 0 or -1. */
static int load_bodies(struct load *l)
{
	FILE *f = NULL;
	long size;
	size_t n = 0, cap = 0;
	char *p, *end;
	int rc = -1;

	f = fopen(l->bodies_path, "rb");
	if (!f) {
		fprintf(stderr, "soak-load: %s: %s\n", l->bodies_path, strerror(errno));
		goto out;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "soak-load: %s: cannot get its size\n", l->bodies_path);
		goto out;
	}
	l->bodies_buf = malloc((size_t)size + 1);
	if (!l->bodies_buf || fread(l->bodies_buf, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "soak-load: %s: cannot read it\n", l->bodies_path);
		goto out;
	}
	l->bodies_buf[size] = '\n';
	end = l->bodies_buf + size + 1;
	for (p = l->bodies_buf; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl > p) {
			if (n == cap) {
				struct body *b;

				cap = cap ? 2 * cap : 64;
				b = realloc(l->bodies, cap * sizeof *b);
				if (!b) {
					fprintf(stderr, "soak-load: out of memory\n");
					goto out;
				}
				l->bodies = b;
			}
			l->bodies[n].p = p;
			l->bodies[n].len = (size_t)(nl - p);
			n++;
		}
		p = nl + 1;
	}
	if (n == 0) {
		fprintf(stderr, "soak-load: %s: no batches\n", l->bodies_path);
		goto out;
	}
	l->nbodies = n;
	rc = 0;
out:
	if (f)
		fclose(f);
	return rc;
}

/* Sets up one reusable easy handle per connection slot. 0 or -1. */
static int setup_handles(struct load *l)
{
	char hdr[512];

	if (snprintf(hdr, sizeof hdr, "X-Router-Token: %s", l->token) >= (int)sizeof hdr) {
		fprintf(stderr, "soak-load: SOAK_TOKEN is too long\n");
		return -1;
	}
	l->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!l->headers || !curl_slist_append(l->headers, hdr) ||
	    !curl_slist_append(l->headers, "Expect:")) {
		fprintf(stderr, "soak-load: out of memory\n");
		return -1;
	}
	l->multi = curl_multi_init();
	if (!l->multi ||
	    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)l->conns) != CURLM_OK ||
	    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)l->conns) != CURLM_OK) {
		fprintf(stderr, "soak-load: cannot set up a libcurl multi handle\n");
		return -1;
	}
	for (int i = 0; i < l->conns; i++) {
		struct slot *s = &l->slots[i];

		s->h = curl_easy_init();
		if (!s->h ||
		    curl_easy_setopt(s->h, CURLOPT_URL, l->url) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_CAINFO, l->cacert) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, l->headers) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_POST, 1L) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, LOAD_TIMEOUT_MS) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_MAXAGE_CONN, LOAD_MAX_IDLE_S) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s) != CURLE_OK ||
		    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s) != CURLE_OK) {
			fprintf(stderr, "soak-load: cannot set up a libcurl handle\n");
			return -1;
		}
	}
	return 0;
}

/* Sends the next batch on a free slot. 0 or -1 (no free slot or a curl failure). */
static int start_one(struct load *l, double now)
{
	struct slot *s = NULL;
	const struct body *b;

	for (int i = 0; i < l->conns && !s; i++)
		if (!l->slots[i].busy)
			s = &l->slots[i];
	if (!s)
		return -1;
	b = &l->bodies[l->next_body];
	l->next_body = (l->next_body + 1) % l->nbodies;
	s->errbuf[0] = '\0';
	s->answer_len = 0;
	s->answer[0] = '\0';
	if (curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len) != CURLE_OK ||
	    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, b->p) != CURLE_OK ||
	    curl_multi_add_handle(l->multi, s->h) != CURLM_OK) {
		fprintf(stderr, "soak-load: cannot start a request\n");
		return -1;
	}
	s->busy = 1;
	s->started = now;
	l->sent++;
	return 0;
}

/* Counts one finished transfer and frees its slot. */
static void finish_one(struct load *l, CURLMsg *m, double now)
{
	struct slot *s = NULL;
	long code = 0;
	double ms;
	size_t bucket;

	curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
	curl_multi_remove_handle(l->multi, m->easy_handle);
	s->busy = 0;
	ms = (now - s->started) * 1000.0;
	bucket = ms >= LOAD_HIST_MS ? LOAD_HIST_MS : (size_t)ms;
	l->hist[bucket]++;
	if (ms > l->max_ms)
		l->max_ms = ms;
	if (m->data.result != CURLE_OK) {
		l->errors++;
		if (!l->first_error[0])
			snprintf(l->first_error, sizeof l->first_error, "%s: %s",
				 curl_easy_strerror(m->data.result),
				 s->errbuf[0] ? s->errbuf : "(no detail)");
		return;
	}
	curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
	if (code == 200) {
		l->ok++;
		return;
	}
	l->non200++;
	if (!l->first_bad[0]) {
		for (size_t i = 0; i < s->answer_len; i++)
			if (s->answer[i] < ' ' || s->answer[i] == 0x7f)
				s->answer[i] = ' ';
		snprintf(l->first_bad, sizeof l->first_bad, "%ld %s", code, s->answer);
	}
}

static unsigned long inflight(const struct load *l)
{
	unsigned long n = 0;

	for (int i = 0; i < l->conns; i++)
		n += l->slots[i].busy != 0;
	return n;
}

/* Rewrites the stats file through a temporary name; failures are reported once. */
static void write_stats(struct load *l, unsigned long behind)
{
	static int warned;
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", l->stats_path) >= (int)sizeof tmp)
		return;
	f = fopen(tmp, "w");
	if (f) {
		fprintf(f, "sent=%lu ok=%lu non200=%lu errors=%lu inflight=%lu behind=%lu "
			"max_behind=%lu\n", l->sent, l->ok, l->non200, l->errors, inflight(l),
			behind, l->max_behind);
		if (fclose(f) == 0 && rename(tmp, l->stats_path) == 0)
			return;
	}
	if (!warned++)
		fprintf(stderr, "soak-load: cannot write %s: %s\n", l->stats_path, strerror(errno));
}

static double percentile(const struct load *l, double q)
{
	unsigned long total = 0, cum = 0;

	for (size_t i = 0; i <= LOAD_HIST_MS; i++)
		total += l->hist[i];
	if (total == 0)
		return 0;
	for (size_t i = 0; i <= LOAD_HIST_MS; i++) {
		cum += l->hist[i];
		if ((double)cum >= q * (double)total)
			return (double)i + 1;   /* upper edge of the bucket */
	}
	return LOAD_HIST_MS;
}

/* The paced loop: sends what is due, collects answers, writes stats. 0 or -1. */
static int run(struct load *l)
{
	double start = mono(), end = start + l->seconds, now = start, last_stats = 0;
	unsigned long behind = 0;
	int sending = 1;

	for (;;) {
		unsigned long due;
		int running, left, wait_ms;
		CURLMsg *m;

		now = mono();
		if (load_stop || now >= end)
			sending = 0;
		due = sending ? (unsigned long)((now - start) * l->rate) + 1 : l->sent;
		while (l->sent < due && inflight(l) < (unsigned long)l->conns)
			if (start_one(l, now) != 0)
				return -1;
		behind = due > l->sent ? due - l->sent : 0;
		if (behind > l->max_behind)
			l->max_behind = behind;
		if (curl_multi_perform(l->multi, &running) != CURLM_OK) {
			fprintf(stderr, "soak-load: curl_multi_perform failed\n");
			return -1;
		}
		now = mono();
		while ((m = curl_multi_info_read(l->multi, &left)))
			if (m->msg == CURLMSG_DONE)
				finish_one(l, m, now);
		if (now - last_stats >= LOAD_STATS_S) {
			write_stats(l, behind);
			last_stats = now;
		}
		if (!sending && inflight(l) == 0)
			break;
		/* Sleep until the next request is due (at most 100 ms), or an answer. */
		wait_ms = 100;
		if (sending && inflight(l) < (unsigned long)l->conns) {
			double next = start + (double)l->sent / l->rate;

			wait_ms = next <= now ? 0 : (int)((next - now) * 1000.0) + 1;
			if (wait_ms > 100)
				wait_ms = 100;
		}
		if (curl_multi_poll(l->multi, NULL, 0, wait_ms, NULL) != CURLM_OK) {
			fprintf(stderr, "soak-load: curl_multi_poll failed\n");
			return -1;
		}
	}
	write_stats(l, 0);
	now = mono() - start;
	printf("LOAD sent=%lu ok=%lu non200=%lu errors=%lu seconds=%.1f rate=%.1f p50_ms=%.0f "
	       "p99_ms=%.0f max_ms=%.1f max_behind=%lu\n", l->sent, l->ok, l->non200, l->errors,
	       now, now > 0 ? l->sent / now : 0, percentile(l, 0.50), percentile(l, 0.99),
	       l->max_ms, l->max_behind);
	if (l->first_bad[0])
		fprintf(stderr, "LOAD_FIRST_BAD %s\n", l->first_bad);
	if (l->first_error[0])
		fprintf(stderr, "LOAD_FIRST_ERROR %s\n", l->first_error);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: soak-load --url URL --cacert FILE --bodies FILE --rate R "
		"--seconds S --connections C --stats FILE   (token in $SOAK_TOKEN)\n");
}

/* Parses a positive number no larger than max into *out. 0 or -1. */
static int positive(const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > max)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static struct load l;
	struct sigaction sa;
	double conns = 0;
	int rc = 1;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];

		if (!strcmp(k, "--url"))
			l.url = v;
		else if (!strcmp(k, "--cacert"))
			l.cacert = v;
		else if (!strcmp(k, "--bodies"))
			l.bodies_path = v;
		else if (!strcmp(k, "--stats"))
			l.stats_path = v;
		else if (!strcmp(k, "--rate") && positive(v, 100000, &l.rate) == 0)
			;
		else if (!strcmp(k, "--seconds") && positive(v, 7 * 86400, &l.seconds) == 0)
			;
		else if (!strcmp(k, "--connections") &&
			 positive(v, LOAD_MAX_CONNECTIONS, &conns) == 0 && conns == (int)conns)
			l.conns = (int)conns;
		else {
			fprintf(stderr, "soak-load: bad argument %s %s\n", k, v);
			usage();
			return 2;
		}
	}
	l.token = getenv("SOAK_TOKEN");
	if (argc % 2 != 1 || !l.url || !l.cacert || !l.bodies_path || !l.stats_path ||
	    !l.rate || !l.seconds || !l.conns || !l.token) {
		usage();
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "soak-load: curl_global_init failed\n");
		return 1;
	}
	if (load_bodies(&l) != 0 || setup_handles(&l) != 0 || run(&l) != 0)
		goto out;
	rc = 0;
out:
	for (int i = 0; i < l.conns; i++)
		if (l.slots[i].h) {
			if (l.slots[i].busy)
				curl_multi_remove_handle(l.multi, l.slots[i].h);
			curl_easy_cleanup(l.slots[i].h);
		}
	if (l.multi)
		curl_multi_cleanup(l.multi);
	curl_slist_free_all(l.headers);
	free(l.bodies);
	free(l.bodies_buf);
	curl_global_cleanup();
	return rc;
}
