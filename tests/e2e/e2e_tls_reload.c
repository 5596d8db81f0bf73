/*
 * e2e_tls_reload.c — certificate renewal without a restart: SIGHUP under a
 * steady load swaps the certificate and key (separate files, as certbot
 * writes them) with no failed request, the next handshake shows the new
 * certificate, and certificates that do not load (key mismatch, missing
 * file, expired, not yet valid) are refused with the reason while the old
 * one keeps serving. The certificates are made here with libcrypto, signed
 * by the suite's CA (harness_cert), so every harness client trusts them.
 */
#include "e2e/e2e.h"

#include <arpa/inet.h>
#include <libgen.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DAY (24L * 3600L)

/* Polls the daemon log (<= timeout_ms) for needle appearing at least n times. */
static int tls_log_count(const struct e2e *t, const char *needle, int n, long timeout_ms)
{
	for (long waited = 0; waited <= timeout_ms; waited += 50) {
		char *text = harness_read_file(t->h.log, NULL);
		int seen = 0;

		for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
			seen++;
		free(text);
		if (seen >= n)
			return 1;
		harness_sleep_ms(50);
	}
	return 0;
}

/* The suite CA's certificate and key (the key beside harness_cert()). */
static int tls_ca(X509 **ca, EVP_PKEY **cakey)
{
	char dir[HARNESS_PATH], keyp[HARNESS_PATH + 16];
	FILE *f;

	snprintf(dir, sizeof dir, "%s", harness_cert());
	snprintf(keyp, sizeof keyp, "%s/key.pem", dirname(dir));
	*ca = NULL;
	*cakey = NULL;
	if ((f = fopen(harness_cert(), "r")) != NULL) {
		*ca = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	if ((f = fopen(keyp, "r")) != NULL) {
		*cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	return *ca && *cakey ? 0 : -1;
}

/*
 * Writes a P-256 key to key_path and a certificate for 127.0.0.1 valid
 * from now+nb to now+na seconds, signed by the suite CA, to cert_path,
 * followed by the CA certificate (a chain, as certbot's fullchain.pem).
 * 0 or -1.
 */
static int tls_make_cert(const char *cert_path, const char *key_path, long nb, long na)
{
	X509 *ca = NULL, *x = X509_new();
	EVP_PKEY *cakey = NULL, *key = EVP_EC_gen("P-256");
	X509_EXTENSION *san = NULL;
	X509V3_CTX v3;
	FILE *f = NULL;
	int rc = -1;

	if (!x || !key || tls_ca(&ca, &cakey) < 0)
		goto out;
	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	san = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
	if (!san || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)rand() + 2) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), nb) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), na) ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				       (const unsigned char *)"localhost", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 ||
	    X509_set_pubkey(x, key) != 1 || X509_add_ext(x, san, -1) != 1 ||
	    X509_sign(x, cakey, EVP_sha256()) <= 0)
		goto out;
	if ((f = fopen(cert_path, "w")) == NULL || PEM_write_X509(f, x) != 1 ||
	    PEM_write_X509(f, ca) != 1)
		goto out;
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = fopen(key_path, "w");
	if (!f || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	rc = 0;
out:
	if (f && fclose(f) != 0)
		rc = -1;
	X509_EXTENSION_free(san);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	return rc;
}

/* SHA-256 of the first certificate in a PEM file, lowercase hex; notAfter too. */
static int tls_file_fingerprint(const char *path, char out[65], long *not_after)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct tm tm;
	int rc = -1;

	if (f)
		fclose(f);
	if (!x || X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32 ||
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		goto out;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	if (not_after)
		*not_after = (long)timegm(&tm);
	rc = 0;
out:
	X509_free(x);
	return rc;
}

/* A new TLS handshake with the daemon: the leaf it served, as SHA-256 hex. */
static int tls_served_fingerprint(const struct e2e *t, char out[65])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)t->h.port) };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	X509 *peer = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!ctx || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
		goto out;
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
		goto out;
	peer = SSL_get1_peer_certificate(ssl);
	if (!peer || X509_digest(peer, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
		goto out;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	SSL_shutdown(ssl);
	rc = 0;
out:
	X509_free(peer);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Boots with dir/live.pem + dir/live.key (separate files) from a fresh pair. */
static void tls_boot(struct e2e *t, char *crt, char *key, size_t cap, char fp[65])
{
	char extra[2 * HARNESS_PATH + 64];

	snprintf(crt, cap, "%s/live.pem", t->h.dir);
	snprintf(key, cap, "%s/live.key", t->h.dir);
	assert_int_equal(tls_make_cert(crt, key, -60, 30 * DAY), 0);
	assert_int_equal(tls_file_fingerprint(crt, fp, NULL), 0);
	snprintf(extra, sizeof extra, "tls_certificate = %s\ntls_key = %s\n", crt, key);
	e2e_boot(t, "function route(e, m) write('seen.txt', {line = 'x'}) end\n", extra);
}

/* Waits (bounded) until the load has had `more` further answers of 200. */
static void tls_load_advance(const struct harness_load *l, long more)
{
	long want = harness_load_ok(l) + more;

	for (int i = 0; i < 400 && harness_load_ok(l) < want; i++)
		harness_sleep_ms(25);
	assert_true(harness_load_ok(l) >= want);
}

static void sighup_swaps_the_certificate_under_load(void **state)
{
	struct e2e *t = *state;
	char crt[HARNESS_PATH + 16], key[HARNESS_PATH + 16], next[HARNESS_PATH + 16],
		nextkey[HARNESS_PATH + 16], fp_a[65], fp_b[65], got[65], want[96];
	long not_after = 0, failed = 0, total = 0;
	double v = 0;
	struct harness_load *l;

	tls_boot(t, crt, key, sizeof crt, fp_a);
	assert_int_equal(tls_served_fingerprint(t, got), 0);
	assert_string_equal(got, fp_a);
	assert_int_equal(tls_file_fingerprint(crt, fp_a, &not_after), 0);
	assert_int_equal(harness_metric(&t->h, "egoi_router_tls_certificate_expiry_seconds", &v), 0);
	assert_int_equal((long)v, not_after);

	l = harness_load_start(&t->h, 6, 2);
	assert_non_null(l);
	tls_load_advance(l, 30);
	/* certbot's way: the renewed files replace the old ones, then SIGHUP. */
	snprintf(next, sizeof next, "%s/next.pem", t->h.dir);
	snprintf(nextkey, sizeof nextkey, "%s/next.key", t->h.dir);
	assert_int_equal(tls_make_cert(next, nextkey, -60, 60 * DAY), 0);
	assert_int_equal(tls_file_fingerprint(next, fp_b, &not_after), 0);
	assert_string_not_equal(fp_a, fp_b);
	assert_int_equal(rename(nextkey, key), 0);
	assert_int_equal(rename(next, crt), 0);
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	snprintf(want, sizeof want, "reloaded (sha256 %s", fp_b);
	assert_true(tls_log_count(t, want, 1, 5000));
	assert_int_equal(tls_served_fingerprint(t, got), 0);
	assert_string_equal(got, fp_b);
	tls_load_advance(l, 30);
	harness_load_stop(l);
	for (int k = 0; k < harness_load_threads(l); k++)
		for (long n = 0; n < harness_load_count(l, k); n++, total++)
			if (harness_load_status(l, k, n) != 200) {
				fprintf(stderr, "[e2e] thread %d request %ld: %ld\n", k, n,
					harness_load_status(l, k, n));
				failed++;
			}
	harness_load_free(l);
	fprintf(stderr, "[e2e] %ld requests across the swap, %ld failed\n", total, failed);
	assert_int_equal(failed, 0);
	assert_int_equal(harness_metric(&t->h, "egoi_router_tls_certificate_expiry_seconds", &v), 0);
	assert_int_equal((long)v, not_after);
	assert_int_equal(harness_metric(&t->h, "egoi_router_reloads_total{result=\"ok\"}", &v), 0);
	assert_int_equal((long)v, 1);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* One broken swap: refused with `reason` logged, the old certificate still served. */
static void tls_refused(struct e2e *t, const char *reason, int nth, const char *fp_old)
{
	char got[65];
	double v = 0;

	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	assert_true(tls_log_count(t, "reload refused, the previous config and rules keep serving",
				  nth, 5000));
	if (!tls_log_count(t, reason, 1, 0))
		fprintf(stderr, "[e2e] no \"%s\" in the log\n", reason);
	assert_true(tls_log_count(t, reason, 1, 0));
	assert_int_equal(tls_served_fingerprint(t, got), 0);
	assert_string_equal(got, fp_old);
	assert_int_equal(harness_metric(&t->h, "egoi_router_reloads_total{result=\"refused\"}", &v),
			 0);
	assert_int_equal((long)v, nth);
}

static void broken_certificates_are_refused_and_the_old_one_serves(void **state)
{
	struct e2e *t = *state;
	char crt[HARNESS_PATH + 16], key[HARNESS_PATH + 16], other[HARNESS_PATH + 16],
		otherkey[HARNESS_PATH + 16], fp[65];
	static const char one[] = "{\"events\":[{\"action\":\"email_open\"}]}";
	long not_after = 0;
	double v = 0;
	struct harness_response resp;

	tls_boot(t, crt, key, sizeof crt, fp);
	assert_int_equal(tls_file_fingerprint(crt, fp, &not_after), 0);
	snprintf(other, sizeof other, "%s/other.pem", t->h.dir);
	snprintf(otherkey, sizeof otherkey, "%s/other.key", t->h.dir);

	/* A new certificate beside the old key. */
	assert_int_equal(tls_make_cert(other, otherkey, -60, 60 * DAY), 0);
	assert_int_equal(rename(other, crt), 0);
	tls_refused(t, "the private key does not match the certificate", 1, fp);
	/* The key file gone. */
	assert_int_equal(rename(otherkey, key), 0);
	assert_int_equal(unlink(key), 0);
	tls_refused(t, "live.key: cannot be read", 2, fp);
	/* Expired yesterday, and valid only from tomorrow (each with its key). */
	assert_int_equal(tls_make_cert(crt, key, -2 * DAY, -DAY), 0);
	tls_refused(t, "the certificate has expired", 3, fp);
	assert_int_equal(tls_make_cert(crt, key, DAY, 2 * DAY), 0);
	tls_refused(t, "the certificate is not valid yet", 4, fp);

	resp = e2e_post_expect(t, one, sizeof(one) - 1, 200);
	harness_response_free(&resp);
	assert_int_equal(harness_metric(&t->h, "egoi_router_tls_certificate_expiry_seconds", &v), 0);
	assert_int_equal((long)v, not_after);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_tls_reload_tests[] = {
	E2E_TEST(sighup_swaps_the_certificate_under_load),
	E2E_TEST(broken_certificates_are_refused_and_the_old_one_serves),
};
const size_t e2e_tls_reload_count = sizeof(e2e_tls_reload_tests) / sizeof(e2e_tls_reload_tests[0]);
