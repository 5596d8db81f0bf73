/*
 * http_guard.c — see http_guard.h.
 *
 * The table: one entry per client address that has an open TLS connection
 * or a token bucket not yet full again, in HTTP_GUARD_BUCKETS chains under
 * one mutex (each operation is a few dozen instructions). An entry with no
 * open connection and a full bucket carries no state and is dropped when
 * its chain is next walked. At most HTTP_GUARD_MAX_ENTRIES entries exist;
 * past that an address is neither capped nor limited (counted in the log
 * once): failing open keeps legitimate senders working while an attacker
 * with that many addresses is beyond what a per-address guard can stop.
 *
 * Why an OpenSSL info callback for the cap: civetweb hands the accepted
 * socket to a worker, which runs SSL_accept before any civetweb callback.
 * SSL_CB_HANDSHAKE_START is reported at the start of SSL_accept, before it
 * reads, so a shutdown(SHUT_RDWR) there makes that very read see the end of
 * the stream: the handshake fails at once and the worker takes the next
 * connection. The count is decremented from the ex_data free callback,
 * which OpenSSL runs on SSL_free whatever ended the connection.
 */
#include "http_guard.h"
#include "clock.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "log.h"
#include "metrics.h"

#define HTTP_GUARD_BUCKETS 4096
#define HTTP_GUARD_MAX_ENTRIES 65536
#define HTTP_GUARD_MAX_EXEMPT 64
#define HTTP_GUARD_MAX_ALLOW 256
#define HTTP_GUARD_RATE_MAX 1000000L

struct guard_entry {
	LIST_ENTRY(guard_entry) link;   /* in its chain */
	uint32_t addr;            /* IPv4, network order (the build has no IPv6) */
	long open;                /* open TLS connections */
	double tokens;            /* rate limit bucket */
	double stamp;             /* clock_mono of the last refill */
};

struct guard_cidr {
	uint32_t net, mask;       /* host order */
};

/* The settings from router.conf, replaced whole by http_guard_update. */
struct http_guard_params {
	long cap;                 /* 0 = no cap */
	double rate, burst;       /* rate 0 = no limit */
	struct guard_cidr exempt[HTTP_GUARD_MAX_EXEMPT];
	int nexempt;
	struct guard_cidr allow[HTTP_GUARD_MAX_ALLOW];
	int nallow;               /* with allow_any 0: only these addresses */
	int allow_any;            /* allow_from not set */
};

struct http_guard {
	pthread_mutex_t mu;       /* guards everything below */
	struct http_guard_params p;
	size_t entries;
	int full_warned;
	LIST_HEAD(guard_chain, guard_entry) bucket[HTTP_GUARD_BUCKETS];
};

/* The two kinds of refusal, each logged through log_limited (log.h) under
 * its own key: one line per LOG_REPEAT_S, then a count. */
#define GUARD_CAP_REFUSED "over max_connections_per_address"
#define GUARD_ACL_REFUSED "not in allow_from"

/* What an SSL object carries while it counts against its address. */
struct guard_conn {
	struct http_guard *g;
	uint32_t addr;
};

static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static int guard_ctx_index = -1, guard_ssl_index = -1;
static _Thread_local int guard_cut_here;

/* Parses "N/s"; 0 or -1. */
static int http_guard_parse_rate(const char *s, long *out)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (strcmp(end, "/s") != 0 || v < 1 || v > HTTP_GUARD_RATE_MAX)
		return -1;
	*out = v;
	return 0;
}

/* Parses an IPv4 CIDR list (config.c has removed the blanks) into out. */
static int http_guard_parse_cidrs(const char *key, const char *list, struct guard_cidr *out, int max,
		       int *n, char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL;
	int rc = -1;

	*n = 0;
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(tok, '/');
		struct in_addr a;
		long bits = 32;

		if (slash) {
			*slash = '\0';
			bits = strtol(slash + 1, NULL, 10);
		}
		if (inet_pton(AF_INET, tok, &a) != 1) {
			snprintf(err, errlen, "%s: '%.64s' is not an IPv4 address (this build of "
				 "civetweb has no IPv6, so IPv6 entries cannot be honoured)",
				 key, tok);
			goto out;
		}
		if (*n == max) {
			snprintf(err, errlen, "%s: more than %d entries", key, max);
			goto out;
		}
		out[*n].mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
		out[*n].net = ntohl(a.s_addr) & out[*n].mask;
		(*n)++;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

int http_guard_check(const struct config *cfg, char *err, size_t errlen)
{
	struct guard_cidr tmp[256];
	long rate;
	int n;

	/* This civetweb build listens on IPv4 only: an IPv6 entry could never
	 * match, and a list that silently means less than it says is refused. */
	if (cfg->allow_from &&
	    http_guard_parse_cidrs("allow_from", cfg->allow_from, tmp, 256, &n, err, errlen) < 0)
		return -1;
	if (cfg->rate_limit_exempt &&
	    http_guard_parse_cidrs("rate_limit_exempt", cfg->rate_limit_exempt, tmp, HTTP_GUARD_MAX_EXEMPT,
			&n, err, errlen) < 0)
		return -1;
	if (cfg->rate_limit && http_guard_parse_rate(cfg->rate_limit, &rate) < 0) {
		snprintf(err, errlen, "rate_limit: '%.64s' is not N/s with N from 1 to %ld",
			 cfg->rate_limit, HTTP_GUARD_RATE_MAX);
		return -1;
	}
	return 0;
}

static void http_guard_indexes(void);

struct http_guard_params *http_guard_params_new(const struct config *cfg, char *err,
						size_t errlen)
{
	struct http_guard_params *p;
	long rate = 0;

	if (http_guard_check(cfg, err, errlen) < 0)
		return NULL;
	p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->cap = cfg->max_conns_per_address;
	if (cfg->rate_limit)
		http_guard_parse_rate(cfg->rate_limit, &rate);
	p->rate = (double)rate;
	p->burst = cfg->rate_limit_burst > 0 ? (double)cfg->rate_limit_burst : p->rate;
	p->allow_any = cfg->allow_from == NULL;
	/* Checked above: these fail only out of memory. */
	if ((cfg->rate_limit_exempt &&
	     http_guard_parse_cidrs("rate_limit_exempt", cfg->rate_limit_exempt, p->exempt,
			 HTTP_GUARD_MAX_EXEMPT, &p->nexempt, err, errlen) < 0) ||
	    (cfg->allow_from &&
	     http_guard_parse_cidrs("allow_from", cfg->allow_from, p->allow, HTTP_GUARD_MAX_ALLOW,
			 &p->nallow, err, errlen) < 0)) {
		free(p);
		return NULL;
	}
	return p;
}

void http_guard_params_free(struct http_guard_params *p)
{
	free(p);
}

void http_guard_update(struct http_guard *g, struct http_guard_params *p)
{
	if (!g) {
		free(p);
		return;
	}
	pthread_mutex_lock(&g->mu);
	g->p = *p;
	pthread_mutex_unlock(&g->mu);
	free(p);
}

struct http_guard *http_guard_new(const struct config *cfg, char *err, size_t errlen)
{
	struct http_guard_params *p = http_guard_params_new(cfg, err, errlen);
	struct http_guard *g;

	if (!p)
		return NULL;
	g = calloc(1, sizeof *g);
	if (!g) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&g->mu, NULL);
	g->p = *p;
	free(p);
	pthread_once(&guard_once, http_guard_indexes);
	return g;
}

void http_guard_free(struct http_guard *g)
{
	if (!g)
		return;
	http_guard_flush_log(g);
	for (int i = 0; i < HTTP_GUARD_BUCKETS; i++)
		while (!LIST_EMPTY(&g->bucket[i])) {
			struct guard_entry *e = LIST_FIRST(&g->bucket[i]);

			LIST_REMOVE(e, link);
			free(e);
		}
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* 1 when addr (network order) is in one of the n CIDRs. */
static int http_guard_in(const struct guard_cidr *list, int n, uint32_t addr)
{
	uint32_t h = ntohl(addr);

	for (int i = 0; i < n; i++)
		if ((h & list[i].mask) == list[i].net)
			return 1;
	return 0;
}

/* Under g->mu. */
static int http_guard_exempt(const struct http_guard *g, uint32_t addr)
{
	return http_guard_in(g->p.exempt, g->p.nexempt, addr);
}

/* allow_from lets addr in. Under g->mu. */
static int http_guard_allowed(const struct http_guard *g, uint32_t addr)
{
	return g->p.allow_any || http_guard_in(g->p.allow, g->p.nallow, addr);
}

static void http_guard_refill(const struct http_guard *g, struct guard_entry *e, double now)
{
	e->tokens += (now - e->stamp) * g->p.rate;
	if (e->tokens > g->p.burst)
		e->tokens = g->p.burst;
	e->stamp = now;
}

/* Entry for addr, made if create; drops the idle entries of its chain. Under g->mu. */
static struct guard_entry *http_guard_find(struct http_guard *g, uint32_t addr, int create,
				      double now)
{
	uint32_t h = addr * 2654435761u;
	struct guard_chain *chain = &g->bucket[(h >> 16) % HTTP_GUARD_BUCKETS];
	struct guard_entry *e, *next, *found = NULL;

	for (e = LIST_FIRST(chain); e; e = next) {
		next = LIST_NEXT(e, link);
		if (e->addr == addr) {
			found = e;
			continue;
		}
		if (g->p.rate > 0)
			http_guard_refill(g, e, now);
		if (e->open == 0 && (g->p.rate == 0 || e->tokens >= g->p.burst)) {
			LIST_REMOVE(e, link);
			free(e);
			g->entries--;
		}
	}
	if (found || !create)
		return found;
	if (g->entries >= HTTP_GUARD_MAX_ENTRIES) {
		if (!g->full_warned)
			log_msg(LOG_WARN, NULL, "http guard: %d client addresses tracked, more are "
				"neither capped nor rate limited", HTTP_GUARD_MAX_ENTRIES);
		g->full_warned = 1;
		return NULL;
	}
	found = calloc(1, sizeof *found);
	if (!found)
		return NULL;
	found->addr = addr;
	found->tokens = g->p.burst;
	found->stamp = now;
	LIST_INSERT_HEAD(chain, found, link);
	g->entries++;
	return found;
}

/* Logs one refusal, or counts it if a line of its kind was written less
 * than LOG_REPEAT_S ago. */
static void http_guard_log_refusal(const char *what, const char *addr)
{
	struct log_field f[] = { LOG_FS("remote", addr), LOG_FS("reason", what) };
	char key[64];

	snprintf(key, sizeof key, "connection refused: %s", what);
	log_limited(LOG_WARN, key, f, 2, "connection from %s refused: %s", addr, what);
}

/* Counts not yet written (of every log_limited key) are written now. */
void http_guard_flush_log(struct http_guard *g)
{
	(void)g;
	log_limited_flush();
}

/* A connection or request from addr refused by allow_from: counted, logged rate-limited. */
static void http_guard_acl_refused(struct http_guard *g, const char *addr)
{
	(void)g;
	metrics_refused(METRICS_REFUSED_ALLOW_FROM);
	http_guard_log_refusal(GUARD_ACL_REFUSED, addr);
}

int http_guard_allow_address(struct http_guard *g, const char *addr)
{
	struct in_addr a;
	int ok;

	if (!g)
		return 1;
	/* Not IPv4 (this build has none other): refused when a list is set. */
	ok = inet_pton(AF_INET, addr, &a) == 1;
	pthread_mutex_lock(&g->mu);
	ok = g->p.allow_any || (ok && http_guard_allowed(g, a.s_addr));
	pthread_mutex_unlock(&g->mu);
	if (!ok)
		http_guard_acl_refused(g, addr);
	return ok;
}

int http_guard_allow_request(struct http_guard *g, const char *addr, long *retry_after_s)
{
	struct in_addr a;
	struct guard_entry *e;
	double now;
	int ok = 1;

	if (!g || inet_pton(AF_INET, addr, &a) != 1)
		return 1;
	now = clock_mono();
	pthread_mutex_lock(&g->mu);
	if (g->p.rate == 0 || http_guard_exempt(g, a.s_addr))
		goto out;
	e = http_guard_find(g, a.s_addr, 1, now);
	if (e) {
		http_guard_refill(g, e, now);
		if (e->tokens >= 1.0) {
			e->tokens -= 1.0;
		} else {
			ok = 0;
			*retry_after_s = (long)ceil((1.0 - e->tokens) / g->p.rate);
			if (*retry_after_s < 1)
				*retry_after_s = 1;
		}
	}
out:
	pthread_mutex_unlock(&g->mu);
	if (!ok)
		metrics_refused(METRICS_REFUSED_RATE_LIMIT);
	return ok;
}

/* The peer's IPv4 address (v4-mapped IPv6 too), network order; 0 or -1. */
static int http_guard_peer_v4(int fd, uint32_t *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET) {
		*addr = ((const struct sockaddr_in *)(const void *)&ss)->sin_addr.s_addr;
		return 0;
	}
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)&ss)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(addr, &a->s6_addr[12], 4);
			return 0;
		}
	}
	return -1;
}

/* Why http_guard_info cuts a connection. */
enum guard_verdict { GUARD_PASS, GUARD_NOT_ALLOWED, GUARD_OVER_CAP };

/*
 * The start of a TLS handshake: allow_from first, then the cap. Every
 * connection is counted (c set), whatever the cap, so that a cap set or
 * lowered by a reload applies to what is already open. Under g->mu.
 */
static enum guard_verdict http_guard_admit(struct http_guard *g, uint32_t addr,
				      struct guard_entry **entry)
{
	struct guard_entry *e;

	*entry = NULL;
	if (!http_guard_allowed(g, addr))
		return GUARD_NOT_ALLOWED;
	e = http_guard_find(g, addr, 1, clock_mono());
	if (!e)
		return GUARD_PASS;   /* table full: neither counted nor capped */
	if (g->p.cap > 0 && e->open >= g->p.cap && !http_guard_exempt(g, addr))
		return GUARD_OVER_CAP;
	e->open++;
	*entry = e;
	return GUARD_PASS;
}

static void http_guard_info(const SSL *cssl, int where, int ret)
{
	SSL *ssl = (SSL *)(uintptr_t)cssl;   /* OpenSSL passes const; ex_data needs it not */
	struct http_guard *g;
	struct guard_conn *c;
	struct guard_entry *e;
	enum guard_verdict v;
	char text[INET_ADDRSTRLEN];
	uint32_t addr;
	int fd;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_START) || SSL_get_ex_data(ssl, guard_ssl_index))
		return;   /* a renegotiation: the connection is counted already */
	guard_cut_here = 0;
	g = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), guard_ctx_index);
	fd = SSL_get_fd(ssl);
	if (!g || fd < 0 || http_guard_peer_v4(fd, &addr) < 0)
		return;
	pthread_mutex_lock(&g->mu);
	v = http_guard_admit(g, addr, &e);
	pthread_mutex_unlock(&g->mu);
	if (v != GUARD_PASS) {
		shutdown(fd, SHUT_RDWR);
		guard_cut_here = 1;
		inet_ntop(AF_INET, &addr, text, sizeof text);
		if (v == GUARD_NOT_ALLOWED) {
			http_guard_acl_refused(g, text);
		} else {
			metrics_refused(METRICS_REFUSED_CONN_CAP);
			http_guard_log_refusal(GUARD_CAP_REFUSED, text);
		}
		return;
	}
	if (!e)
		return;
	c = malloc(sizeof *c);
	if (c) {
		c->g = g;
		c->addr = addr;
	}
	if (!c || !SSL_set_ex_data(ssl, guard_ssl_index, c)) {
		pthread_mutex_lock(&g->mu);
		e->open--;
		pthread_mutex_unlock(&g->mu);
		free(c);
	}
}

/* SSL_free, whatever the connection's fate: its address has one connection less. */
static void http_guard_conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp)
{
	struct guard_conn *c = ptr;
	struct guard_entry *e;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (!c)
		return;
	pthread_mutex_lock(&c->g->mu);
	e = http_guard_find(c->g, c->addr, 0, clock_mono());
	if (e && e->open > 0)
		e->open--;
	pthread_mutex_unlock(&c->g->mu);
	free(c);
}

static void http_guard_indexes(void)
{
	guard_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	guard_ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, http_guard_conn_free);
}

int http_guard_install(struct http_guard *g, void *ssl_ctx)
{
	SSL_CTX *ctx = ssl_ctx;

	if (guard_ctx_index < 0 || guard_ssl_index < 0 ||
	    !SSL_CTX_set_ex_data(ctx, guard_ctx_index, g))
		return -1;
	/* Replaces civetweb's own info callback, which does nothing. */
	SSL_CTX_set_info_callback(ctx, http_guard_info);
	return 0;
}

int http_guard_conn_was_cut(void)
{
	return guard_cut_here;
}

void http_guard_conn_clear(void)
{
	guard_cut_here = 0;
}
