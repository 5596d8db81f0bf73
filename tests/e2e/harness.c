/*
 * harness.c — process, TLS client, file and database plumbing for the
 * end-to-end tests (see harness.h for the contract).
 *
 * The TLS client lives in harness_client.c, the database and JSON text
 * helpers in harness_data.c.
 *
 * Processes are started with posix_spawn, never fork: the test process runs
 * civetweb threads (the receiver), and posix_spawn keeps the child free of
 * their locks. The daemon's stdout and stderr are appended to one log file
 * so a restart keeps the first run's lines.
 *
 * Threads: test thread only.
 */
#include "e2e/harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char suite_dir[128];
static char suite_cert[HARNESS_PATH];
static char suite_bin[PATH_MAX];

void harness_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double harness_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "harness: remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void harness_rmrf(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *harness_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - n < 4096) {
			char *nb = realloc(buf, cap + 65536 + 1);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				goto out;
			}
			buf = nb;
			cap += 65536;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
out:
	fclose(f);
	return buf;
}

int harness_write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = -1;

	if (f == NULL) {
		fprintf(stderr, "harness: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fwrite(text, 1, len, f) == len)
		rc = 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

/* Spawns argv with stdin/stdout/stderr redirected; returns the pid or -1. */
static pid_t harness_spawn(const char *const argv[], const char *in, const char *out,
			   const char *err, int append, char *const envp[])
{
	posix_spawn_file_actions_t fa;
	int oflags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
	pid_t pid = -1;
	int rc;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	if (posix_spawn_file_actions_addopen(&fa, 0, in != NULL ? in : "/dev/null", O_RDONLY, 0) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 1, out, oflags, 0644) != 0 ||
	    (err != NULL ? posix_spawn_file_actions_addopen(&fa, 2, err, oflags, 0644)
			 : posix_spawn_file_actions_adddup2(&fa, 1, 2)) != 0)
		goto out;
	rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv,
			 envp != NULL ? envp : environ);
	if (rc != 0) {
		fprintf(stderr, "harness: spawn %s: %s\n", argv[0], strerror(rc));
		pid = -1;
	}
out:
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* Waits for pid up to timeout_ms; the wait status, or -1 on timeout. */
static int harness_wait_pid(pid_t pid, long timeout_ms)
{
	int status;

	for (long waited = 0;; waited += 50) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (waited >= timeout_ms)
			return -1;
		harness_sleep_ms(50);
	}
}

int harness_run(const struct harness *h, const char *const argv[], const char *stdin_path,
		long timeout_ms, char **out, char **err)
{
	char outp[HARNESS_PATH + 16], errp[HARNESS_PATH + 16];
	const char *dir = h != NULL ? h->dir : suite_dir;
	pid_t pid;
	int status;

	snprintf(outp, sizeof(outp), "%s/cmd.out", dir);
	snprintf(errp, sizeof(errp), "%s/cmd.err", dir);
	pid = harness_spawn(argv, stdin_path, outp, errp, 0, NULL);
	if (pid < 0)
		return -1;
	status = harness_wait_pid(pid, timeout_ms);
	if (status == -1) {
		fprintf(stderr, "harness: %s did not finish in %ld ms\n", argv[0], timeout_ms);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (out != NULL)
		*out = harness_read_file(outp, NULL);
	if (err != NULL)
		*err = harness_read_file(errp, NULL);
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* --- suite --- */

int harness_suite_init(void)
{
	const char *bin = getenv("EGOI_ROUTER_BIN");
	char keyp[HARNESS_PATH + 16], pem[HARNESS_PATH + 16];
	char *cert = NULL, *key = NULL, *both = NULL;
	size_t clen = 0, klen = 0;
	int rc = -1;

	if (bin == NULL || bin[0] == '\0')
		bin = "build/egoi-router";
	if (realpath(bin, suite_bin) == NULL || access(suite_bin, X_OK) != 0) {
		fprintf(stderr, "e2e: daemon binary %s not found (set EGOI_ROUTER_BIN or run make)\n", bin);
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	snprintf(suite_dir, sizeof(suite_dir), "/tmp/egoi-e2e-XXXXXX");
	if (mkdtemp(suite_dir) == NULL) {
		suite_dir[0] = '\0';
		return -1;
	}
	snprintf(suite_cert, sizeof(suite_cert), "%s/cert.pem", suite_dir);
	snprintf(keyp, sizeof(keyp), "%s/key.pem", suite_dir);
	snprintf(pem, sizeof(pem), "%s/server.pem", suite_dir);
	const char *argv[] = {
		"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
		"-keyout", keyp, "-out", suite_cert, NULL,
	};
	char *err = NULL;
	if (harness_run(NULL, argv, NULL, 30000, NULL, &err) != 0) {
		fprintf(stderr, "e2e: openssl req failed: %s\n", err != NULL ? err : "");
		goto out;
	}
	cert = harness_read_file(suite_cert, &clen);
	key = harness_read_file(keyp, &klen);
	if (cert == NULL || key == NULL || (both = malloc(clen + klen + 1)) == NULL)
		goto out;
	memcpy(both, cert, clen);
	memcpy(both + clen, key, klen);
	rc = harness_write_file(pem, both, clen + klen);
out:
	free(err);
	free(cert);
	free(key);
	free(both);
	return rc;
}

void harness_suite_free(void)
{
	if (getenv("E2E_KEEP") == NULL)
		harness_rmrf(suite_dir);
	curl_global_cleanup();
}

const char *harness_bin(void)
{
	return suite_bin;
}

const char *harness_cert(void)
{
	return suite_cert;
}

/* --- one test --- */

int harness_init(struct harness *h)
{
	unsigned char rnd[16];
	FILE *f;

	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "%s/t-XXXXXX", suite_dir);
	if (mkdtemp(h->dir) == NULL)
		return -1;
	snprintf(h->conf, sizeof(h->conf), "%s/router.conf", h->dir);
	snprintf(h->rules, sizeof(h->rules), "%s/rules.lua", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/daemon.log", h->dir);
	snprintf(h->data_dir, sizeof(h->data_dir), "%s/data", h->dir);
	snprintf(h->output_dir, sizeof(h->output_dir), "%s/out", h->dir);
	snprintf(h->db, sizeof(h->db), "%s/data/outbox.db", h->dir);
	f = fopen("/dev/urandom", "rb");
	if (f == NULL || fread(rnd, 1, sizeof(rnd), f) != sizeof(rnd)) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(h->token + 2 * i, 3, "%02x", rnd[i]);
	return 0;
}

void harness_log_tail(const struct harness *h, int lines)
{
	size_t len = 0;
	char *log = harness_read_file(h->log, &len);
	size_t start = len;
	int seen = 0;

	if (log == NULL) {
		fprintf(stderr, "[e2e] no daemon log at %s\n", h->log);
		return;
	}
	while (start > 0 && seen <= lines) {
		start--;
		if (log[start] == '\n' && start + 1 < len)
			seen++;
	}
	if (seen > lines)
		start++;
	fprintf(stderr, "[e2e] --- daemon log tail (%s) ---\n%s[e2e] --- end of log ---\n", h->log,
		log + start);
	free(log);
}

void harness_cleanup(struct harness *h)
{
	if (h->pid > 0) {
		fprintf(stderr, "[e2e] daemon still running at cleanup; stopping it\n");
		harness_stop(h, 5000, NULL);
	}
	if (!h->passed)
		harness_log_tail(h, 40);
	if (getenv("E2E_KEEP") == NULL)
		harness_rmrf(h->dir);
	else
		fprintf(stderr, "[e2e] kept %s\n", h->dir);
}

int harness_write_rules_marks(struct harness *h, const char *lua, const char *const *marks,
			      const char *const *values, size_t n)
{
	size_t cap = strlen(lua) * 2 + 4096, len = 0;
	char *out = malloc(cap);
	int rc = -1;

	if (out == NULL)
		return -1;
	for (const char *p = lua; *p != '\0';) {
		const char *m = NULL;
		size_t which = 0;
		for (size_t i = 0; i < n; i++) {
			const char *hit = strstr(p, marks[i]);
			if (hit != NULL && (m == NULL || hit < m)) {
				m = hit;
				which = i;
			}
		}
		size_t chunk = m != NULL ? (size_t)(m - p) : strlen(p);
		const char *val = m != NULL && values[which] != NULL ? values[which] : "";
		size_t vlen = strlen(val);
		if (len + chunk + vlen + 1 > cap)
			goto out;
		memcpy(out + len, p, chunk);
		len += chunk;
		if (m == NULL)
			break;
		memcpy(out + len, val, vlen);
		len += vlen;
		p = m + strlen(marks[which]);
	}
	rc = harness_write_file(h->rules, out, len);
out:
	free(out);
	return rc;
}

int harness_write_rules(struct harness *h, const char *lua, const char *recv_url)
{
	const char *marks[] = { "@RECV@" }, *values[] = { recv_url };

	return harness_write_rules_marks(h, lua, marks, values, 1);
}

int harness_free_port(void)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* True when key is one of the space-separated words of h->omit. */
static int harness_omitted(const struct harness *h, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = h->omit; (p = strstr(p, key)) != NULL; p += klen)
		if ((p == h->omit || p[-1] == ' ') && (p[klen] == '\0' || p[klen] == ' '))
			return 1;
	return 0;
}

/* True when h->extra sets key (a line "key =" or "key="). */
static int harness_extra_has(const struct harness *h, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = h->extra; *p != '\0';) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, key, klen) == 0 && (p[klen] == ' ' || p[klen] == '=' || p[klen] == '\t'))
			return 1;
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return 0;
}

int harness_write_config(struct harness *h)
{
	char pem[HARNESS_PATH + 16], listen[64], admin[64], text[8192];
	size_t n = 0;

	if (h->port <= 0)
		h->port = harness_free_port();
	if (h->port <= 0)
		return -1;
	snprintf(pem, sizeof(pem), "%s/server.pem", suite_dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%ds", h->port);
	const char *defaults[][2] = {
		{ "listen", listen },
		{ "tls_certificate", pem },
		{ "auth_token", h->token },
		{ "rules", h->rules },
		{ "data_dir", h->data_dir },
		{ "output_dir", h->output_dir },
		{ "threads", "8" },
		{ "forward_timeout", "2s" },
		{ "forward_max_attempts", "3" },
		{ "log_level", "debug" },
	};
	n += (size_t)snprintf(text + n, sizeof(text) - n, "# written by the e2e harness\n");
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (!harness_extra_has(h, defaults[i][0]) && !harness_omitted(h, defaults[i][0]) &&
		    n < sizeof(text))
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s = %s\n", defaults[i][0],
					      defaults[i][1]);
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", h->admin_port);
	if (h->admin_port > 0 && !harness_extra_has(h, "admin_listen") && n < sizeof(text))
		n += (size_t)snprintf(text + n, sizeof(text) - n, "admin_listen = %s\n", admin);
	if (n < sizeof(text))
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", h->extra);
	if (n >= sizeof(text))
		return -1;
	return harness_write_file(h->conf, text, n);
}

int harness_use_dirs(struct harness *h, const char *base)
{
	int a = snprintf(h->data_dir, sizeof(h->data_dir), "%s/data", base);
	int b = snprintf(h->output_dir, sizeof(h->output_dir), "%s/out", base);
	int c = snprintf(h->db, sizeof(h->db), "%s/data/outbox.db", base);

	if (a < 0 || b < 0 || c < 0 || (size_t)c >= sizeof(h->db)) {
		fprintf(stderr, "harness: %s: path too long\n", base);
		return -1;
	}
	return 0;
}

/* Environment for the daemon: ours plus E2E_TOKEN (for `env:` secrets). */
static char **harness_daemon_env(const struct harness *h, char *tokvar, size_t toklen)
{
	size_t n = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (env == NULL)
		return NULL;
	snprintf(tokvar, toklen, "E2E_TOKEN=%s", h->token);
	for (size_t i = 0, j = 0; i < n; i++)
		if (strncmp(environ[i], "E2E_TOKEN=", 10) != 0)
			env[j++] = environ[i];
	for (size_t j = 0;; j++)
		if (env[j] == NULL) {
			env[j] = tokvar;
			break;
		}
	return env;
}

int harness_start(struct harness *h)
{
	char tokvar[128];
	char **env = harness_daemon_env(h, tokvar, sizeof(tokvar));
	const char *argv[] = { suite_bin, "run", "-c", h->conf, NULL };
	int rc = -1;

	if (env == NULL)
		return -1;
	for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
		if (attempt > 0)
			h->port = 0;
		if (attempt > 0 && h->admin_port > 0)
			h->admin_port = harness_free_port();
		if (harness_write_config(h) != 0)
			break;
		h->pid = harness_spawn(argv, NULL, h->log, NULL, 1, env);
		if (h->pid <= 0) {
			h->pid = 0;
			break;
		}
		for (long waited = 0;; waited += 50) {
			struct harness_response r;
			int status;
			if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
				fprintf(stderr, "[e2e] daemon exited during start-up (status %d)\n", status);
				h->pid = 0;
				break;
			}
			if ((h->admin_port > 0 ? harness_admin_get(h, "/healthz", NULL, &r)
					       : harness_request(h, "GET", "/healthz", NULL, NULL, NULL,
								 0, 0, &r)) == 0 &&
			    r.status == 200) {
				harness_response_free(&r);
				rc = 0;
				break;
			}
			harness_response_free(&r);
			if (waited >= 10000) {
				fprintf(stderr, "[e2e] daemon not healthy after 10 s\n");
				harness_stop(h, 5000, NULL);
				goto out;
			}
			harness_sleep_ms(50);
		}
	}
out:
	free(env);
	return rc;
}

int harness_stop(struct harness *h, long timeout_ms, double *secs)
{
	double t0 = harness_now();
	int status;

	if (h->pid <= 0)
		return -1;
	kill(h->pid, SIGTERM);
	status = harness_wait_pid(h->pid, timeout_ms);
	if (status == -1) {
		fprintf(stderr, "[e2e] daemon ignored SIGTERM for %ld ms: SIGKILL\n", timeout_ms);
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	}
	if (secs != NULL)
		*secs = harness_now() - t0;
	h->pid = 0;
	return status;
}

void harness_kill(struct harness *h)
{
	if (h->pid <= 0)
		return;
	kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
	h->pid = 0;
}

int harness_running(struct harness *h)
{
	int status;

	if (h->pid <= 0)
		return 0;
	if (waitpid(h->pid, &status, WNOHANG) != h->pid)
		return 1;
	if (WIFSIGNALED(status))
		fprintf(stderr, "[e2e] daemon died of signal %d\n", WTERMSIG(status));
	else
		fprintf(stderr, "[e2e] daemon exited with status %d\n", WEXITSTATUS(status));
	h->pid = 0;
	return 0;
}
