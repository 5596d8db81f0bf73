/*
 * tls_load.c — see tls_load.h. civetweb loads ssl_certificate with
 * SSL_CTX_use_certificate_chain_file and SSL_CTX_use_PrivateKey_file on
 * the same file, then SSL_CTX_check_private_key: the same calls here, so
 * what passes here is what the listener accepts.
 */
#include "tls_load.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* "FILE: what (OpenSSL's last reason)"; the error queue is emptied. */
static void tls_load_fail(char *err, size_t errlen, const char *path, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256] = "";

	if (e)
		ERR_error_string_n(e, reason, sizeof reason);
	ERR_clear_error();
	snprintf(err, errlen, "%s: %s%s%s", path, what, *reason ? ": " : "", reason);
}

/* The file opens for reading: 0, or -1 with "FILE: strerror". */
static int tls_load_readable(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* An ASN1_TIME as unix seconds; -1 when it does not convert. */
static int tls_load_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

int tls_load_check(const char *cert_path, const char *key_path, time_t now,
		   struct tls_load_info *info, char *err, size_t errlen)
{
	const char *key = key_path ? key_path : cert_path;
	SSL_CTX *ctx = NULL;
	X509 *leaf;
	int rc = -1;

	memset(info, 0, sizeof *info);
	ERR_clear_error();
	/* OpenSSL's "system library" reason does not say which errno: try first */
	if (tls_load_readable(cert_path, err, errlen) < 0 || tls_load_readable(key, err, errlen) < 0)
		goto out;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		tls_load_fail(err, errlen, cert_path, "cannot create a TLS context");
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		tls_load_fail(err, errlen, cert_path, "no usable PEM certificate");
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL compares the key with the certificate as it loads it */
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			tls_load_fail(err, errlen, key,
				      "the private key does not match the certificate");
		else
			tls_load_fail(err, errlen, key, "no usable PEM private key");
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_load_fail(err, errlen, key, "the private key does not match the certificate");
		goto out;
	}
	leaf = SSL_CTX_get0_certificate(ctx);
	if (!leaf || tls_load_time(X509_get0_notBefore(leaf), &info->not_before) < 0 ||
	    tls_load_time(X509_get0_notAfter(leaf), &info->not_after) < 0) {
		tls_load_fail(err, errlen, cert_path, "cannot read the certificate's validity");
		goto out;
	}
	X509_NAME_oneline(X509_get_subject_name(leaf), info->subject, sizeof info->subject);
	if (info->not_after < now) {
		struct tm tm;
		char when[32];

		gmtime_r(&info->not_after, &tm);
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
		snprintf(err, errlen, "%s: certificate expired on %s", cert_path, when);
		goto out;
	}
	if (info->not_before > now) {
		struct tm tm;
		char when[32];

		gmtime_r(&info->not_before, &tm);
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
		snprintf(err, errlen, "%s: certificate not valid before %s", cert_path, when);
		goto out;
	}
	rc = 0;
out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}
