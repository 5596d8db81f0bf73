/*
 * deliver_request.c — one forward as one libcurl easy handle (see
 * deliver_internal.h): where it goes, what it sends, what of the answer is
 * kept.
 *
 * Sent: the entry's method and body byte for byte, Content-Type (the
 * entry's, default application/json), X-Router-Delivery-Id (stable across
 * retries), X-Router-Attempt (1, 2, ...), X-Router-Hop (how many routers
 * the event has passed, see http_hop.h), then the rule's "Name: value"
 * lines that pass header_rule.h; the rule cannot override ours. "Expect:" is
 * sent empty so bodies over 1 KiB do not wait for 100 Continue.
 *
 * Kept: the Retry-After of the final response and at most DELIVER_SNIPPET
 * bytes of its body (for the dead letter's reason); the rest is discarded.
 * Only http and https are allowed, redirects are not followed (a 3xx is a
 * permanent failure).
 *
 * Threads: everything here runs on the delivery thread.
 */
#include "deliver_internal.h"

#include "header_rule.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "util.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DELIVER_CONNECT_CAP_MS 10000L

void deliver_claim_release(struct deliver_claim *c)
{
	if (!c || --c->live > 0)
		return;
	outbox_deliveries_free(c->items, c->count);
	free(c);
}

void deliver_request_free(struct deliver_request *r)
{
	if (!r)
		return;
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->host);
	free(r->error);
	deliver_claim_release(r->claim);
	free(r);
}

static size_t deliver_request_on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct deliver_request *x = arg;
	size_t len = size * n, room = DELIVER_SNIPPET - x->snippet_len;

	if (room > 0) {
		size_t take = len < room ? len : room;

		memcpy(x->snippet + x->snippet_len, buf, take);
		x->snippet_len += take;
	}
	return len;
}

static size_t deliver_request_on_header(char *buf, size_t size, size_t n, void *arg)
{
	static const char name[] = "Retry-After:";
	struct deliver_request *x = arg;
	size_t len = size * n, nl = sizeof name - 1;

	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say) starts afresh. */
		x->retry_after[0] = '\0';
	} else if (len > nl && len - nl < sizeof x->retry_after &&
		   strncasecmp(buf, name, nl) == 0) {
		/* Parsed when the attempt ends, against that moment's clock. */
		memcpy(x->retry_after, buf + nl, len - nl);
		x->retry_after[len - nl] = '\0';
	}
	return len;
}

/*
 * Whether a stored "Name: value" line may be sent: the rule forward()
 * applied (header_rule.h), checked again since the row may predate it.
 */
static int deliver_request_header_usable(const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);
	size_t nl, v;

	if (!colon)
		return 0;
	nl = (size_t)(colon - line);
	for (v = nl + 1; v < len && (line[v] == ' ' || line[v] == '\t'); v++)
		;
	return header_rule_check(line, nl, line + v, len - v) == NULL;
}

__attribute__((format(printf, 2, 3)))
static int deliver_request_slist_add(struct curl_slist **list, const char *fmt, ...)
{
	struct curl_slist *l;
	char *line = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	l = curl_slist_append(*list, line);
	free(line);
	if (!l)
		return -1;
	*list = l;
	return 0;
}

/* Our headers, then the entry's usable "Name: value" lines; others are skipped. */
static int deliver_request_build_headers(struct deliver_request *x)
{
	const struct outbox_delivery *e = x->e;
	const char *p = e->headers;
	const char *ctype = e->content_type && *e->content_type ? e->content_type
								: "application/json";

	if (deliver_request_slist_add(&x->headers, "Content-Type: %s", ctype) < 0 ||
	    deliver_request_slist_add(&x->headers, "X-Router-Delivery-Id: %s", e->delivery_id) < 0 ||
	    deliver_request_slist_add(&x->headers, "X-Router-Attempt: %ld", e->attempts + 1) < 0 ||
	    /* rows from before the hop column read 0: they left this router once */
	    deliver_request_slist_add(&x->headers, "X-Router-Hop: %ld", e->hop > 0 ? e->hop : 1L) < 0 ||
	    deliver_request_slist_add(&x->headers, "Expect:") < 0)
		return -1;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		size_t used = len;

		while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == ' '))
			len--;
		if (len > 0 && deliver_request_header_usable(p, len) &&
		    deliver_request_slist_add(&x->headers, "%.*s", (int)len, p) < 0)
			return -1;
		p += used + (eol ? 1 : 0);
	}
	return 0;
}

int deliver_request_setup(struct deliver_request *r, long timeout_ms)
{
	const struct outbox_delivery *e = r->e;
	long connect_ms = timeout_ms < DELIVER_CONNECT_CAP_MS ? timeout_ms : DELIVER_CONNECT_CAP_MS;
	int bad = 0;

	r->retry_after[0] = '\0';
	r->easy = curl_easy_init();
	if (!r->easy || deliver_request_build_headers(r) < 0)
		return -1;
	bad |= curl_easy_setopt(r->easy, CURLOPT_URL, e->url) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "egoi-router") != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_POST, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE,
				(curl_off_t)e->body_len) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, e->body ? e->body : "") != CURLE_OK;
	if (e->method && strcmp(e->method, "POST") != 0)
		bad |= curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, e->method) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, deliver_request_on_header) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, deliver_request_on_body) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r) != CURLE_OK;
	bad |= curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
	return bad ? -1 : 0;
}

int deliver_signing_key(const char *secret, unsigned char *out, size_t cap)
{
	if (!secret || strncmp(secret, "whsec_", 6) != 0)
		return -1;
	return (int)util_base64_decode(out, cap, secret + 6, strlen(secret + 6));
}

int deliver_sign(const unsigned char *key, size_t key_len, const char *id, long long timestamp,
		 const char *body, size_t body_len, char *out, size_t cap)
{
	unsigned char mac[UTIL_HMAC_SHA256_LEN];
	char prefix[96];
	int n;

	n = snprintf(prefix, sizeof prefix, "%s.%lld.", id, timestamp);
	if (n < 0 || (size_t)n >= sizeof prefix || cap < 3 + UTIL_BASE64_SIZE(sizeof mac))
		return -1;
	if (util_hmac_sha256(key, key_len, prefix, (size_t)n, body, body_len, mac) < 0)
		return -1;
	memcpy(out, "v1,", 3);
	util_base64_encode(out + 3, mac, sizeof mac);
	return 0;
}

int deliver_request_sign(struct deliver_request *r, const struct deliver_signer *s)
{
	const struct outbox_delivery *e = r->e;
	long long ts = (long long)time(NULL);
	char sig[128];

	if (s->key_len == 0)
		return 0;
	if (deliver_sign(s->key, s->key_len, e->delivery_id, ts, e->body ? e->body : "",
			 e->body_len, sig, sizeof sig) < 0 ||
	    deliver_request_slist_add(&r->headers, "webhook-id: %s", e->delivery_id) < 0 ||
	    deliver_request_slist_add(&r->headers, "webhook-timestamp: %lld", ts) < 0 ||
	    deliver_request_slist_add(&r->headers, "webhook-signature: %s", sig) < 0)
		return -1;
	return 0;
}

const char *deliver_request_snippet(struct deliver_request *r)
{
	for (size_t i = 0; i < r->snippet_len; i++) {
		unsigned char c = (unsigned char)r->snippet[i];

		if (c < 0x20 || c >= 0x7f)
			r->snippet[i] = c == '\n' || c == '\r' || c == '\t' ? ' ' : '?';
	}
	r->snippet[r->snippet_len] = '\0';
	return r->snippet;
}
