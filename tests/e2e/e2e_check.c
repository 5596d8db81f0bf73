/*
 * e2e_check.c — `egoi-router check` as a preflight: one line per check
 * ("ok  WHAT ..." on stdout, "FAIL WHAT ..." on stderr), exit 0 only when
 * every line is ok. Each failure `run` would hit at start-up is caught
 * here first: a missing certificate, a key that is not the certificate's,
 * an expired certificate, a port out of range or a suffix civetweb does
 * not take, an unknown run_as_user, a data_dir the daemon's user cannot
 * write.
 */
#include "e2e/e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

static const char check_lua[] = "function route(e, m) drop('x') end\n";

/* Runs check on the test's config; returns the exit code, out/err owned by the caller. */
static int check_run(struct e2e *t, char **out, char **err)
{
	const char *argv[] = { harness_bin(), "check", "-c", t->h.conf, NULL };

	return harness_run(&t->h, argv, NULL, 20000, out, err);
}

/* With extra config lines, check exits 1 and stderr has want. */
static void check_fails_with(struct e2e *t, const char *extra, const char *want)
{
	char *out = NULL, *err = NULL;
	int rc;

	snprintf(t->h.extra, sizeof t->h.extra, "%s", extra);
	assert_int_equal(harness_write_rules(&t->h, check_lua, NULL), 0);
	assert_int_equal(harness_write_config(&t->h), 0);
	rc = check_run(t, &out, &err);
	if (rc != 1 || !err || !strstr(err, want))
		fprintf(stderr, "[e2e] check: rc %d, want \"%s\" in stderr:\n%s\nstdout:\n%s\n", rc,
			want, err ? err : "", out ? out : "");
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err, want));
	/* the other checks still ran: the rules were compiled */
	assert_non_null(strstr(out, "ok  rules "));
	free(out);
	free(err);
}

/* PEM of a self-signed EC certificate valid from now + from_days to now + to_days, and its key. */
static void check_write_cert(const char *path, long from_days, long to_days)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;

	assert_non_null(key);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400));
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
						    (const unsigned char *)"127.0.0.1", -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	X509_free(x);
	EVP_PKEY_free(key);
}

/* Every check named on its own line, exit 0; with an outbox, its counts. */
static void check_prints_each_check(void **state)
{
	struct e2e *t = *state;
	char *out = NULL, *err = NULL, want[HARNESS_PATH + 64];

	assert_int_equal(harness_write_rules(&t->h, check_lua, NULL), 0);
	assert_int_equal(harness_write_config(&t->h), 0);
	int rc = check_run(t, &out, &err);
	if (rc != 0)
		fprintf(stderr, "[e2e] check: %d\nstdout:\n%s\nstderr:\n%s\n", rc, out, err);
	assert_int_equal(rc, 0);
	snprintf(want, sizeof want, "ok  config %s\n", t->h.conf);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "ok  listen 127.0.0.1:%ds (TLS)\n", t->h.port);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "ok  certificate "));
	assert_non_null(strstr(out, " (expires "));
	assert_non_null(strstr(out, " day"));
	snprintf(want, sizeof want, "ok  data_dir %s (", t->h.data_dir);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "ok  output_dir %s (", t->h.output_dir);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "ok  outbox %s (created at start-up)\n", t->h.db);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "ok  rules %s (compiled, init() ran)\n", t->h.rules);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "%s: ok\n", t->h.conf);
	assert_non_null(strstr(out, want));
	assert_null(strstr(out, "FAIL"));
	/* check creates nothing: the outbox is made by run */
	assert_int_not_equal(access(t->h.db, F_OK), 0);
	free(out);
	free(err);

	/* once the daemon made it, the outbox is opened and counted */
	e2e_boot(t, check_lua, NULL);
	e2e_stop_ok(t);
	assert_int_equal(check_run(t, &out, &err), 0);
	snprintf(want, sizeof want, "ok  outbox %s (0 pending, 0 dead letters)\n", t->h.db);
	if (!strstr(out, want))
		fprintf(stderr, "[e2e] want \"%s\" in:\n%s\n", want, out);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "ok  data_dir %s (writable by ", t->h.data_dir);
	assert_non_null(strstr(out, want));
	free(out);
	free(err);
	e2e_pass(t);
}

static void check_fails_on_missing_certificate(void **state)
{
	struct e2e *t = *state;
	char extra[HARNESS_PATH + 64];

	snprintf(extra, sizeof extra, "tls_certificate = %s/nope.pem\n", t->h.dir);
	check_fails_with(t, extra, "FAIL certificate ");
	check_fails_with(t, extra, "nope.pem: cannot be read: No such file or directory");
	e2e_pass(t);
}

/* A certificate file whose key is another certificate's. */
static void check_fails_on_key_mismatch(void **state)
{
	struct e2e *t = *state;
	char a[HARNESS_PATH + 16], b[HARNESS_PATH + 16], mixed[HARNESS_PATH + 16];
	char extra[HARNESS_PATH + 64];
	EVP_PKEY *key;
	X509 *x;
	FILE *f;

	snprintf(a, sizeof a, "%s/a.pem", t->h.dir);
	snprintf(b, sizeof b, "%s/b.pem", t->h.dir);
	snprintf(mixed, sizeof mixed, "%s/mixed.pem", t->h.dir);
	check_write_cert(a, 0, 30);
	check_write_cert(b, 0, 30);
	/* a's certificate, b's key, read and written again with OpenSSL */
	f = fopen(a, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	f = fopen(b, "r");
	assert_non_null(f);
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_true(x && key);
	f = fopen(mixed, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	X509_free(x);
	EVP_PKEY_free(key);
	snprintf(extra, sizeof extra, "tls_certificate = %s\n", mixed);
	check_fails_with(t, extra, "the private key does not match the certificate");
	/* the good one passes, and says when it expires */
	snprintf(t->h.extra, sizeof t->h.extra, "tls_certificate = %s\n", a);
	assert_int_equal(harness_write_config(&t->h), 0);
	char *out = NULL, *err = NULL;
	assert_int_equal(check_run(t, &out, &err), 0);
	assert_non_null(strstr(out, "ok  certificate "));
	/* whole days left, rounded down: 29 unless the check ran within the second */
	assert_true(strstr(out, ", 29 days)") || strstr(out, ", 30 days)"));
	free(out);
	free(err);
	e2e_pass(t);
}

static void check_fails_on_expired_certificate(void **state)
{
	struct e2e *t = *state;
	char pem[HARNESS_PATH + 16], extra[HARNESS_PATH + 64];

	snprintf(pem, sizeof pem, "%s/expired.pem", t->h.dir);
	check_write_cert(pem, -30, -1);
	snprintf(extra, sizeof extra, "tls_certificate = %s\n", pem);
	check_fails_with(t, extra, "the certificate has expired (notAfter ");
	check_write_cert(pem, 2, 30);
	check_fails_with(t, extra, "the certificate is not valid yet (notBefore ");
	e2e_pass(t);
}

static void check_fails_on_bad_listen(void **state)
{
	struct e2e *t = *state;

	check_fails_with(t, "listen = 127.0.0.1:99999s\n",
			 "FAIL listen 127.0.0.1:99999s: port 99999 is not 1 to 65535");
	check_fails_with(t, "listen = 127.0.0.1:0s\n", "port 0 is not 1 to 65535");
	check_fails_with(t, "listen = 127.0.0.1:8443x\n",
			 "'x' after the port: only 's' (TLS) or 'r' (redirect to TLS)");
	check_fails_with(t, "listen = 127.0.0.1:8443s,:8444\n", "FAIL listen :8444: no address before ':'");
	check_fails_with(t, "listen = 127.0.0.1:8080r\n", "there is none ('s')");
	check_fails_with(t, "listen = [::1]:8443s\n", "this civetweb build has no IPv6");
	e2e_pass(t);
}

static void check_fails_on_unknown_user(void **state)
{
	struct e2e *t = *state;

	check_fails_with(t, "run_as_user = e2e-no-such-user\n",
			 "FAIL run_as_user e2e-no-such-user: no such user");
	e2e_pass(t);
}

/*
 * A data_dir the daemon's user cannot write. As root: run_as_user nobody
 * and a data_dir below a directory only root may enter (the check runs as
 * nobody, so root's own access does not hide it). As another user: below
 * a directory without write permission.
 */
static void check_fails_on_unwritable_data_dir(void **state)
{
	struct e2e *t = *state;
	char locked[HARNESS_PATH + 16], extra[2 * HARNESS_PATH + 64];

	snprintf(locked, sizeof locked, "%s/locked", t->h.dir);
	if (geteuid() == 0) {
		assert_int_equal(mkdir(locked, 0700), 0);
		snprintf(extra, sizeof extra, "run_as_user = nobody\ndata_dir = %s/data\n", locked);
		check_fails_with(t, extra, "FAIL data_dir ");
		check_fails_with(t, extra, "/locked/data: Permission denied (as nobody)");
	} else {
		assert_int_equal(mkdir(locked, 0500), 0);
		snprintf(extra, sizeof extra, "data_dir = %s/data\n", locked);
		check_fails_with(t, extra, "FAIL data_dir ");
		check_fails_with(t, extra, "Permission denied");
		assert_int_equal(chmod(locked, 0700), 0);
	}
	/* an existing directory that refuses a file */
	snprintf(extra, sizeof extra, "data_dir = %s\n", t->h.conf);
	check_fails_with(t, extra, ": not a directory");
	e2e_pass(t);
}

const struct CMUnitTest e2e_check_tests[] = {
	E2E_TEST(check_prints_each_check),
	E2E_TEST(check_fails_on_missing_certificate),
	E2E_TEST(check_fails_on_key_mismatch),
	E2E_TEST(check_fails_on_expired_certificate),
	E2E_TEST(check_fails_on_bad_listen),
	E2E_TEST(check_fails_on_unknown_user),
	E2E_TEST(check_fails_on_unwritable_data_dir),
};
const size_t e2e_check_count = sizeof(e2e_check_tests) / sizeof(e2e_check_tests[0]);
