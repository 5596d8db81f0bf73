/*
 * harness.h — runs the real egoi-router binary for end-to-end scenarios.
 *
 * Suite level: harness_suite_init finds the binary ($EGOI_ROUTER_BIN, else
 * build/egoi-router), makes a suite temp dir and generates a throw-away
 * certificate for 127.0.0.1 with openssl (nothing is committed).
 *
 * Test level: a struct harness is one temp dir holding router.conf, the
 * rules, data_dir, output_dir and the daemon's log. harness_start spawns
 * "$EGOI_ROUTER_BIN run -c router.conf" on a free port and waits for
 * GET /healthz over verified TLS; harness_stop sends SIGTERM and reaps it.
 * Requests go through libcurl with the generated certificate as the only CA.
 *
 * Every wait is a bounded polling loop. Nothing here calls cmocka: functions
 * report failure by return value and a message on stderr, the tests assert.
 * Threads: test thread only (the receiver and harness_load have their own
 * threads, see receiver.h and harness_load.c), except harness_request,
 * harness_post and harness_metric, which several client threads may call at
 * once (each call uses its own curl handle and only reads the struct harness).
 */
#ifndef E2E_HARNESS_H
#define E2E_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#define HARNESS_PATH 512

struct harness {
	char dir[256];                 /* this test's temp dir */
	char conf[HARNESS_PATH];       /* dir/router.conf */
	char rules[HARNESS_PATH];      /* dir/rules.lua */
	char log[HARNESS_PATH];        /* dir/daemon.log (stdout+stderr, appended) */
	char data_dir[HARNESS_PATH];   /* dir/data */
	char output_dir[HARNESS_PATH]; /* dir/out */
	char db[HARNESS_PATH];         /* dir/data/outbox.db */
	char token[65];                /* random auth_token for this test */
	char extra[2048];              /* config lines that add to / override the defaults */
	char omit[256];                /* harness default keys (space-separated) not written,
					* so the daemon's own defaults apply to them */
	int port;                      /* HTTPS port of the daemon */
	int admin_port;                /* > 0: admin_listen = 127.0.0.1:admin_port is written,
					* harness_start waits for its /healthz and
					* harness_metric scrapes it */
	pid_t pid;                     /* running daemon, or 0 */
	int passed;                    /* set by the test when it reached its end */
};

struct harness_response {
	long status;                   /* HTTP status, 0 when no answer */
	char *body;                    /* NUL-terminated, owned */
	size_t len;
};

/* --- suite --- */

/* 0 on success; -1 (message on stderr) when the binary or openssl is missing. */
int harness_suite_init(void);
void harness_suite_free(void);
const char *harness_bin(void);
/* The generated CA/server certificate (PEM, certificate only). */
const char *harness_cert(void);

/* --- one test --- */

/* Makes the temp dir and a random token. 0 or -1. */
int harness_init(struct harness *h);

/* Stops a daemon still running (SIGKILL after a bounded SIGTERM), prints the
 * log tail when !h->passed, removes the temp dir unless $E2E_KEEP is set. */
void harness_cleanup(struct harness *h);

/* Writes the rules file; every "@RECV@" in lua is replaced by recv_url
 * (recv_url may be NULL when the rules do not use it). 0 or -1. */
int harness_write_rules(struct harness *h, const char *lua, const char *recv_url);

/* The same with n marks of our choosing: every marks[i] is replaced by
 * values[i] (NULL = empty), e.g. "@A@" and "@B@" for two destinations. */
int harness_write_rules_marks(struct harness *h, const char *lua, const char *const *marks,
			      const char *const *values, size_t n);

/* Writes router.conf (picking a free port if none yet). The harness defaults
 * are listen, tls_certificate, auth_token, rules, data_dir, output_dir,
 * threads 8, forward_timeout 2s, forward_max_attempts 3, log_level debug;
 * a key present in h->extra replaces its default, a key named in h->omit
 * is left out. 0 or -1. */
int harness_write_config(struct harness *h);

/* Puts data_dir (and so the outbox db) and output_dir under base instead of
 * the test dir (base/data, base/out), e.g. on a small mounted filesystem.
 * Call before harness_start. 0, or -1 when a path does not fit. */
int harness_use_dirs(struct harness *h, const char *base);

/* Spawns the daemon and waits (<= 10 s) for /healthz to answer 200 over TLS.
 * Retries with a new port (up to 3 times) if the daemon exits during start-up,
 * which is what a lost race for the free port looks like. 0 or -1. */
int harness_start(struct harness *h);

/* SIGTERM, then waits up to timeout_ms. Returns the raw wait status, or -1 on
 * timeout (the daemon is then SIGKILLed and reaped). *secs = time to exit. */
int harness_stop(struct harness *h, long timeout_ms, double *secs);

/* SIGKILL and reap (simulated crash). */
void harness_kill(struct harness *h);

/* 1 while the daemon runs; 0 when there is none or it has exited (it is
 * then reaped, h->pid cleared and its wait status printed on stderr). */
int harness_running(struct harness *h);

/* Prints the last `lines` lines of the daemon log to stderr. */
void harness_log_tail(const struct harness *h, int lines);

/*
 * One HTTPS request to the daemon on a fresh connection. path includes any
 * query string. content_type NULL = no Content-Type header. headers: extra
 * "Name: value" strings, NULL-terminated, or NULL. with_token adds
 * X-Router-Token. 0 when an answer arrived, -1 otherwise; free with
 * harness_response_free.
 */
int harness_request(const struct harness *h, const char *method, const char *path,
		    const char *content_type, const char *const *headers, const char *body,
		    size_t len, int with_token, struct harness_response *resp);

/*
 * One plain-HTTP GET of path on the admin listener (h->admin_port), fresh
 * connection; headers as for harness_request. 0 when an answer arrived,
 * -1 otherwise; free with harness_response_free.
 */
int harness_admin_get(const struct harness *h, const char *path, const char *const *headers,
		      struct harness_response *resp);

/* A TCP port on 127.0.0.1 free at the time of the call, or -1. */
int harness_free_port(void);

/* Value of one metric series from GET /metrics (the admin listener's when
 * h->admin_port is set): series is the text before
 * the value on its line, e.g. "egoi_router_outbox_pending" or
 * "egoi_router_destination_state{name=\"http://127.0.0.1:8080\"}". 0 when
 * found; -1 when the scrape failed or the series is absent. */
int harness_metric(const struct harness *h, const char *series, double *value);

/*
 * One kept-alive HTTPS connection to the daemon, reused from request to
 * request. harness_conn_request GETs path when body is NULL, else POSTs
 * body as JSON with the token; 0 when an answer arrived (free resp with
 * harness_response_free, also on -1), and *reused = 1 when it went over
 * the connection already open, 0 when a new one had to be made. h is
 * borrowed. NULL on failure; harness_conn_free accepts NULL.
 */
struct harness_conn;
struct harness_conn *harness_conn_new(const struct harness *h);
int harness_conn_request(struct harness_conn *k, const char *path, const char *body, size_t len,
			 struct harness_response *resp, int *reused);
void harness_conn_free(struct harness_conn *k);

/* POST endpoint, application/json, with the token. */
int harness_post(const struct harness *h, const char *body, size_t len,
		 struct harness_response *resp);
void harness_response_free(struct harness_response *resp);

/* Parses {"accepted":N,"rejected":M}; 0 or -1. */
int harness_counts(const struct harness_response *resp, long *accepted, long *rejected);

/* --- files, processes, database --- */

/* Whole file, NUL-terminated, or NULL. */
char *harness_read_file(const char *path, size_t *len);
int harness_write_file(const char *path, const char *text, size_t len);

/*
 * Runs argv (argv[0] a path) with cwd unchanged, stdin from stdin_path (NULL =
 * /dev/null), for at most timeout_ms. *out / *err receive stdout / stderr
 * (owned by the caller). Returns the exit code, or -1 (killed, timeout,
 * spawn failure).
 */
int harness_run(const struct harness *h, const char *const argv[], const char *stdin_path,
		long timeout_ms, char **out, char **err);

/* First column of the first row of sql on data_dir/outbox.db opened
 * read-only; -1 (message on stderr) on error or no row. */
long harness_sql_long(const struct harness *h, const char *sql);
/* Same, as text (owned by the caller), or NULL. */
char *harness_sql_text(const struct harness *h, const char *sql);

/* Polls sql every 50 ms until it yields want; 0 when it did within timeout_ms. */
int harness_sql_wait(const struct harness *h, const char *sql, long want, long timeout_ms);

/* --- background load (harness_load.c) --- */

struct harness_load;

/*
 * Starts nthreads (1-16) client threads that POST batches to the daemon one
 * after another until harness_load_stop (at most 4096 each). Request n of
 * thread k carries `events` events {"action":"email_open","bid":"k-n"}.
 * Even-numbered threads keep their connection alive, odd ones open a new
 * one per request. h is borrowed (port, token) and must outlive the load.
 * NULL on failure. Free with harness_load_free.
 */
struct harness_load *harness_load_start(const struct harness *h, int nthreads, int events);

/* Requests answered 200 so far, all threads together. */
long harness_load_ok(const struct harness_load *l);

/* Asks the threads to stop after their current request and joins them. */
void harness_load_stop(struct harness_load *l);

/* After harness_load_stop: the number of threads, how many requests thread
 * k made, and the HTTP status of its request n (0 = no answer: refused,
 * cut or timed out; -1 = no such request). */
int harness_load_threads(const struct harness_load *l);
long harness_load_count(const struct harness_load *l, int k);
long harness_load_status(const struct harness_load *l, int k, long n);

/* After harness_load_stop: how many requests were not answered 200; *total
 * (total may be NULL) gets how many were made in all. */
long harness_load_not_200(const struct harness_load *l, long *total);

/* Stops (if needed) and frees; l may be NULL. */
void harness_load_free(struct harness_load *l);

/* --- JSON text helpers (independent of the daemon's parser) --- */

struct harness_span {
	size_t off, len;
};

/* Locates the elements of the top-level "events" array of a valid JSON text,
 * as byte spans. Returns their count (at most max stored), or -1. */
int harness_event_spans(const char *text, size_t len, struct harness_span *spans, size_t max);

/* A copy of text[0..len) without whitespace outside strings. */
char *harness_minify(const char *text, size_t len);

/* Sleeps ms milliseconds. */
void harness_sleep_ms(long ms);

#endif
