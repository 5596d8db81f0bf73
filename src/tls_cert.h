/*
 * tls_cert.h — the intake's TLS certificate chain and private key, loaded
 * at start-up and re-read on SIGHUP without a restart.
 *
 * civetweb is given no certificate of its own: its SSL_CTX gets a
 * certificate callback (tls_cert_install, from the init_ssl hook) that, at
 * the start of each handshake, puts the pair published last onto that
 * connection's SSL object. OpenSSL takes its own references there, so a
 * connection keeps the pair it started with for as long as it lives, and
 * the replaced pair is freed once no handshake is reading it. A pair that
 * does not load (missing file, no key, key not matching, expired, not yet
 * valid) is refused with the reason and the published one keeps serving.
 *
 * Threads: tls_cert_load, tls_cert_reload, tls_cert_install and tls_cert_free on the main
 * thread; the certificate callback on civetweb's workers (one mutex held
 * while a handshake copies the pair's references); tls_cert_expiry from any.
 */
#ifndef EGOI_TLS_CERT_H
#define EGOI_TLS_CERT_H

#include <stddef.h>
#include <time.h>

/*
 * Reads the chain (leaf first, then intermediates) from cert_path and the
 * key from key_path (NULL: from cert_path too), checks that they belong
 * together and that the leaf is valid now, and publishes them for the
 * next handshakes. 0, or -1 with the reason in err (nothing changes).
 */
int tls_cert_load(const char *cert_path, const char *key_path, char *err, size_t errlen);

/* SIGHUP: tls_cert_load when a pair is published (else nothing), the
 * outcome logged (the reason when refused). 0, or -1 when refused. */
int tls_cert_reload(const char *cert_path, const char *key_path);

/* The same checks without publishing (`check`, a reload before it commits);
 * *not_after (may be NULL) gets the leaf's notAfter as unix seconds. */
int tls_cert_check(const char *cert_path, const char *key_path, long *not_after, char *err,
		   size_t errlen);

/* 1 once a pair has been published (the intake serves TLS), else 0. */
int tls_cert_active(void);

/* Hooks an SSL_CTX (civetweb's, as void *) to serve the published pair.
 * 0, or -1 when nothing is published or OpenSSL refused. */
int tls_cert_install(void *ssl_ctx);

/* notAfter of the published leaf as unix seconds, or -1 when none. */
long tls_cert_expiry(void);

/* SHA-256 of the published leaf as lowercase hex (65 bytes), "" when none. */
void tls_cert_fingerprint(char out[65]);

/* Drops the published pair (after the intake stopped). */
void tls_cert_free(void);

#endif
