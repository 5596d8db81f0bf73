/*
 * tls_cert.c — the published certificate chain and key (see tls_cert.h).
 *
 * Why a certificate callback and not a new SSL_CTX: civetweb owns its
 * SSL_CTX (versions, ciphers, client verification, the guard's info
 * callback) and gives no way to swap it. The callback runs on every
 * handshake after the ClientHello is read (after civetweb's SNI callback,
 * which may reset the SSL object's certificate to the context's) and sets
 * the certificate on the SSL object alone, which is safe while other
 * handshakes run; changing the shared SSL_CTX under them would not be.
 */
#include "tls_cert.h"
#include "log.h"
#include "metrics.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_cert_pair {
	X509 *leaf;
	STACK_OF(X509) *chain;   /* intermediates, possibly empty */
	EVP_PKEY *key;
	long not_after;          /* unix seconds */
	char sha256[65];
};

static pthread_mutex_t tls_cert_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cert_pair *tls_cert_current;   /* under tls_cert_lock */
static atomic_long tls_cert_not_after = -1;

static void tls_cert_pair_free(struct tls_cert_pair *p)
{
	if (!p)
		return;
	X509_free(p->leaf);
	sk_X509_pop_free(p->chain, X509_free);
	EVP_PKEY_free(p->key);
	free(p);
}

/* OpenSSL's last error as text, or what when it queued none. */
static void tls_cert_ssl_error(char *err, size_t errlen, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256];

	if (e) {
		ERR_error_string_n(e, buf, sizeof buf);
		snprintf(err, errlen, "%s: %s (%s)", path, what, buf);
	} else {
		snprintf(err, errlen, "%s: %s", path, what);
	}
	ERR_clear_error();
}

static BIO *tls_cert_open(const char *path, char *err, size_t errlen)
{
	BIO *bio;

	errno = 0;
	bio = BIO_new_file(path, "r");
	if (!bio) {
		/* the system's reason says more than OpenSSL's "no such file" */
		snprintf(err, errlen, "%s: cannot be read: %s", path,
			 errno ? strerror(errno) : "unknown error");
		ERR_clear_error();
	}
	return bio;
}

/* Leaf, then every further certificate in the file as the chain. */
static int tls_cert_read_chain(struct tls_cert_pair *p, const char *path, char *err,
			       size_t errlen)
{
	BIO *bio = tls_cert_open(path, err, errlen);
	X509 *x;
	int rc = -1;

	if (!bio)
		goto out;
	p->leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!p->leaf) {
		tls_cert_ssl_error(err, errlen, "no PEM certificate in it", path);
		goto out;
	}
	p->chain = sk_X509_new_null();
	if (!p->chain) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(p->chain, x)) {
			X509_free(x);
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	/* The loop ends on "no start line" at the end of the file: not an error. */
	ERR_clear_error();
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

static int tls_cert_read_key(struct tls_cert_pair *p, const char *path, char *err, size_t errlen)
{
	BIO *bio = tls_cert_open(path, err, errlen);
	int rc = -1;

	if (!bio)
		goto out;
	/* No passphrase callback: an encrypted key is refused, never prompted for. */
	p->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	if (!p->key) {
		tls_cert_ssl_error(err, errlen, "no unencrypted PEM private key in it", path);
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	return rc;
}

/* Validity now, notAfter as unix seconds, the leaf's fingerprint. */
static int tls_cert_dates(struct tls_cert_pair *p, const char *path, char *err, size_t errlen)
{
	const ASN1_TIME *nb = X509_get0_notBefore(p->leaf), *na = X509_get0_notAfter(p->leaf);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct tm tm;
	char when[64] = "";
	BIO *mem;

	mem = BIO_new(BIO_s_mem());
	if (mem && ASN1_TIME_print(mem, X509_cmp_current_time(nb) > 0 ? nb : na) == 1)
		BIO_read(mem, when, (int)sizeof when - 1);
	BIO_free(mem);
	if (X509_cmp_current_time(nb) > 0) {
		snprintf(err, errlen, "%s: the certificate is not valid yet (notBefore %s)", path, when);
		return -1;
	}
	if (X509_cmp_current_time(na) < 0) {
		snprintf(err, errlen, "%s: the certificate has expired (notAfter %s)", path, when);
		return -1;
	}
	if (ASN1_TIME_to_tm(na, &tm) != 1) {
		snprintf(err, errlen, "%s: unreadable notAfter", path);
		return -1;
	}
	p->not_after = (long)timegm(&tm);
	if (X509_digest(p->leaf, EVP_sha256(), md, &mdlen) != 1) {
		snprintf(err, errlen, "%s: cannot compute the fingerprint", path);
		return -1;
	}
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(p->sha256 + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static struct tls_cert_pair *tls_cert_read(const char *cert_path, const char *key_path,
					   char *err, size_t errlen)
{
	struct tls_cert_pair *p = calloc(1, sizeof *p);

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!key_path)
		key_path = cert_path;
	if (tls_cert_read_chain(p, cert_path, err, errlen) < 0 ||
	    tls_cert_read_key(p, key_path, err, errlen) < 0)
		goto fail;
	if (X509_check_private_key(p->leaf, p->key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: the private key does not match the certificate %s",
			 key_path, cert_path);
		goto fail;
	}
	if (tls_cert_dates(p, cert_path, err, errlen) < 0)
		goto fail;
	return p;
fail:
	tls_cert_pair_free(p);
	return NULL;
}

int tls_cert_check(const char *cert_path, const char *key_path, long *not_after, char *err,
		   size_t errlen)
{
	struct tls_cert_pair *p = tls_cert_read(cert_path, key_path, err, errlen);

	if (p && not_after)
		*not_after = p->not_after;
	tls_cert_pair_free(p);
	return p ? 0 : -1;
}

int tls_cert_load(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	struct tls_cert_pair *p = tls_cert_read(cert_path, key_path, err, errlen), *old;

	if (!p)
		return -1;
	pthread_mutex_lock(&tls_cert_lock);
	old = tls_cert_current;
	tls_cert_current = p;
	pthread_mutex_unlock(&tls_cert_lock);
	atomic_store(&tls_cert_not_after, p->not_after);
	metrics_set_tls_expiry(p->not_after);
	/* No handshake can be reading it: they hold the lock while they do. */
	tls_cert_pair_free(old);
	return 0;
}

int tls_cert_reload(const char *cert_path, const char *key_path)
{
	char err[1024], fp[65];
	long was = tls_cert_expiry();
	time_t until;
	struct tm tm;
	char when[32] = "?";

	if (was < 0)
		return 0;   /* no TLS listener: nothing to re-read */
	if (tls_cert_load(cert_path, key_path, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, NULL, "SIGHUP: certificate refused, the previous one keeps "
			"serving: %s", err);
		return -1;
	}
	tls_cert_fingerprint(fp);
	until = (time_t)tls_cert_expiry();
	if (gmtime_r(&until, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_msg(LOG_INFO, NULL, "SIGHUP: certificate %s reloaded (sha256 %s, expires %s); new "
		"handshakes use it", cert_path, fp, when);
	return 0;
}

int tls_cert_active(void)
{
	return atomic_load(&tls_cert_not_after) >= 0;
}

/* Each handshake: the published pair onto this SSL object (OpenSSL up-refs it). */
static int tls_cert_cb(SSL *ssl, void *arg)
{
	int ok = 0;

	(void)arg;
	pthread_mutex_lock(&tls_cert_lock);
	if (tls_cert_current)
		ok = SSL_use_cert_and_key(ssl, tls_cert_current->leaf, tls_cert_current->key,
					  tls_cert_current->chain, 1) == 1;
	pthread_mutex_unlock(&tls_cert_lock);
	return ok;
}

int tls_cert_install(void *ssl_ctx)
{
	SSL_CTX *ctx = ssl_ctx;
	int rc = -1;

	pthread_mutex_lock(&tls_cert_lock);
	/* The context holds the first pair too, so that whatever OpenSSL checks
	 * before a handshake finds a certificate; handshakes use the callback's. */
	if (tls_cert_current &&
	    SSL_CTX_use_cert_and_key(ctx, tls_cert_current->leaf, tls_cert_current->key,
				     tls_cert_current->chain, 1) == 1) {
		SSL_CTX_set_cert_cb(ctx, tls_cert_cb, NULL);
		rc = 0;
	}
	pthread_mutex_unlock(&tls_cert_lock);
	ERR_clear_error();
	return rc;
}

long tls_cert_expiry(void)
{
	return atomic_load(&tls_cert_not_after);
}

void tls_cert_fingerprint(char out[65])
{
	pthread_mutex_lock(&tls_cert_lock);
	snprintf(out, 65, "%s", tls_cert_current ? tls_cert_current->sha256 : "");
	pthread_mutex_unlock(&tls_cert_lock);
}

void tls_cert_free(void)
{
	pthread_mutex_lock(&tls_cert_lock);
	tls_cert_pair_free(tls_cert_current);
	tls_cert_current = NULL;
	pthread_mutex_unlock(&tls_cert_lock);
	atomic_store(&tls_cert_not_after, -1);
	metrics_set_tls_expiry(-1);
}
