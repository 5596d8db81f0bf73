/*
 * tls_compat.c — OpenSSL 3 compatibility shim for Debian's civetweb 1.15.
 *
 * civetweb dlopen()s "libssl.so" and looks every function up by name.
 * OpenSSL 3 turned SSL_get_peer_certificate into a macro, so the look-up
 * fails and the first TLS connection jumps through a NULL pointer
 * (civetweb issue #1334). This file is built into build/lib/libssl.so with
 * SONAME "libssl.so", depending on the real libssl.so.3 and libcrypto.so.3.
 * The daemon links it first, so civetweb's dlopen("libssl.so") matches the
 * already-loaded object by SONAME and its dlsym() calls resolve through our
 * dependencies into the real OpenSSL. The same source, built with
 * SONAME "libcrypto.so", stands in for libcrypto.so on hosts without
 * libssl-dev (it then only carries the dependency on libcrypto.so.3).
 */
#ifdef TLS_COMPAT_SSL
#include <openssl/ssl.h>

/* ssl.h maps the old name onto the new one; we need the old symbol itself. */
#undef SSL_get_peer_certificate
X509 *SSL_get_peer_certificate(const SSL *ssl);

/* Returns a new reference the caller frees, as OpenSSL 1.1 did. */
X509 *SSL_get_peer_certificate(const SSL *ssl)
{
	return SSL_get1_peer_certificate(ssl);
}
#else
/* The crypto shim exports nothing of its own: its DT_NEEDED entry on
 * libcrypto.so.3 is what civetweb's dlsym() searches. */
int tls_compat_crypto_marker;
#endif
