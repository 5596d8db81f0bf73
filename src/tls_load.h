/*
 * tls_load.h — loading a certificate chain and its private key the way
 * the TLS listener does (an OpenSSL SSL_CTX: the chain file, then the key,
 * then the check that they belong together), to say whether they would
 * serve and until when. Used by `egoi-router check`; written to take the
 * key file separately (certbot's fullchain.pem + privkey.pem) or from the
 * certificate file itself (key_path NULL), so a reload can use it too.
 *
 * Threads: no shared state; OpenSSL 3 initialises itself on first use.
 */
#ifndef EGOI_TLS_LOAD_H
#define EGOI_TLS_LOAD_H

#include <stddef.h>
#include <time.h>

struct tls_load_info {
	time_t not_before, not_after;   /* the leaf certificate's validity */
	char subject[256];              /* its subject, one line */
};

/*
 * Loads cert_path (PEM chain, leaf first) and the key from key_path, or
 * from cert_path when key_path is NULL. Fails (-1 with err naming the file
 * and OpenSSL's reason) when a file is missing or unreadable, the key does
 * not match the certificate, or the certificate is expired or not yet
 * valid at now. 0 with info filled otherwise.
 */
int tls_load_check(const char *cert_path, const char *key_path, time_t now,
		   struct tls_load_info *info, char *err, size_t errlen);

#endif
