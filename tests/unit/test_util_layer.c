/*
 * test_util_layer.c — src/util.c (mkdir -p, FNV-1a, HMAC-SHA256, hex, base64)
 * and src/util_buf.c (the capped growable buffer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"
#include "util.h"
#include "util_buf.h"

static void test_mkdir_p_creates_and_accepts_existing(void **state)
{
	char base[] = "/tmp/egoi-util-XXXXXX", path[256], err[256] = "";
	struct stat sb;

	(void)state;
	assert_non_null(mkdtemp(base));
	snprintf(path, sizeof path, "%s/a/b/c", base);
	assert_int_equal(util_mkdir_p(path, 0, NULL, NULL, err, sizeof err), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0750);
	/* again: everything exists */
	assert_int_equal(util_mkdir_p(path, 0, NULL, NULL, err, sizeof err), 0);
	/* with sync, a trailing slash */
	snprintf(path, sizeof path, "%s/a/d/e/", base);
	assert_int_equal(util_mkdir_p(path, 1, NULL, NULL, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/a/d/e", base);
	assert_int_equal(stat(path, &sb), 0);
	/* a file where a directory should be */
	snprintf(path, sizeof path, "%s/file", base);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	assert_int_equal(util_mkdir_p(path, 0, NULL, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a directory"));
	snprintf(path, sizeof path, "%s/file/sub", base);
	assert_int_equal(util_mkdir_p(path, 0, NULL, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot create"));
	assert_int_equal(util_mkdir_p("", 0, NULL, NULL, err, sizeof err), -1);
	assert_int_equal(util_mkdir_p(NULL, 0, NULL, NULL, err, sizeof err), -1);
	tu_rmtree(base);
}

struct made_log {
	char dirs[4][256];
	int n, fail_at;
};

static int log_made(const char *dir, void *arg, char *err, size_t errlen)
{
	struct made_log *m = arg;

	if (m->n == m->fail_at) {
		snprintf(err, errlen, "hook refused %s", dir);
		return -1;
	}
	snprintf(m->dirs[m->n++], sizeof m->dirs[0], "%s", dir);
	return 0;
}

/* The hook sees exactly the directories made, in order, and can stop it. */
static void test_mkdir_p_hook_sees_each_new_directory(void **state)
{
	char base[] = "/tmp/egoi-util-XXXXXX", path[256], want[256], err[256] = "";
	struct made_log m = { .fail_at = -1 };
	struct stat sb;

	(void)state;
	assert_non_null(mkdtemp(base));
	snprintf(path, sizeof path, "%s/x", base);
	assert_int_equal(util_mkdir_p(path, 0, NULL, NULL, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/x/y/z", base);
	assert_int_equal(util_mkdir_p(path, 1, log_made, &m, err, sizeof err), 0);
	assert_int_equal(m.n, 2);   /* x existed */
	snprintf(want, sizeof want, "%s/x/y", base);
	assert_string_equal(m.dirs[0], want);
	assert_string_equal(m.dirs[1], path);
	/* a refusal stops the walk: the next directory is not made */
	m.n = 0;
	m.fail_at = 0;
	snprintf(path, sizeof path, "%s/p/q", base);
	assert_int_equal(util_mkdir_p(path, 0, log_made, &m, err, sizeof err), -1);
	assert_non_null(strstr(err, "hook refused"));
	assert_int_not_equal(stat(path, &sb), 0);
	tu_rmtree(base);
}

static void test_fnv1a_known_values(void **state)
{
	(void)state;
	/* FNV-1a 64 reference values: "" is the basis, "a" and "foobar". */
	assert_true(util_fnv1a(UTIL_FNV1A_BASIS, "", 0) == 0xcbf29ce484222325ULL);
	assert_true(util_fnv1a(UTIL_FNV1A_BASIS, "a", 1) == 0xaf63dc4c8601ec8cULL);
	assert_true(util_fnv1a(UTIL_FNV1A_BASIS, "foobar", 6) == 0x85944171f73967e8ULL);
	/* continuing a hash is hashing the concatenation */
	assert_true(util_fnv1a(util_fnv1a(UTIL_FNV1A_BASIS, "foo", 3), "bar", 3) ==
		    util_fnv1a(UTIL_FNV1A_BASIS, "foobar", 6));
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* RFC 4231 test case 2, whole and split in two. */
/* FIPS 180-2's examples: "abc" and the empty string. */
static void test_sha256_known_digests(void **state)
{
	unsigned char md[UTIL_SHA256_LEN];
	char got[2 * UTIL_SHA256_LEN + 1];

	(void)state;
	assert_int_equal(util_sha256("abc", 3, md), 0);
	hex(md, sizeof md, got);
	assert_string_equal(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(util_sha256("", 0, md), 0);
	hex(md, sizeof md, got);
	assert_string_equal(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hmac_sha256_rfc4231(void **state)
{
	static const char want[] =
		"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
	unsigned char mac[UTIL_HMAC_SHA256_LEN];
	char got[2 * UTIL_HMAC_SHA256_LEN + 1];

	(void)state;
	assert_int_equal(util_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, NULL, 0,
					  mac), 0);
	hex(mac, sizeof mac, got);
	assert_string_equal(got, want);
	memset(mac, 0, sizeof mac);
	assert_int_equal(util_hmac_sha256("Jefe", 4, "what do ya ", 11, "want for nothing?", 17,
					  mac), 0);
	hex(mac, sizeof mac, got);
	assert_string_equal(got, want);
}

static void *hmac_thread(void *arg)
{
	unsigned char mac[UTIL_HMAC_SHA256_LEN];
	int *ok = arg;

	for (int i = 0; i < 200; i++)
		if (util_hmac_sha256("k", 1, "data", 4, NULL, 0, mac) != 0)
			*ok = 0;
	return NULL;
}

/* The algorithm is fetched once; first use from several threads at once. */
static void test_hmac_sha256_threads(void **state)
{
	pthread_t t[4];
	int ok = 1;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hmac_thread, &ok), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_true(ok);
}

static void test_base64_round_trip_and_strictness(void **state)
{
	char enc[UTIL_BASE64_SIZE(6)];
	unsigned char dec[16];

	(void)state;
	/* RFC 4648 test vectors */
	assert_int_equal(util_base64_encode(enc, "", 0), 0);
	assert_string_equal(enc, "");
	assert_int_equal(util_base64_encode(enc, "f", 1), 4);
	assert_string_equal(enc, "Zg==");
	assert_int_equal(util_base64_encode(enc, "foob", 4), 8);
	assert_string_equal(enc, "Zm9vYg==");
	assert_int_equal(util_base64_encode(enc, "foobar", 6), 8);
	assert_string_equal(enc, "Zm9vYmFy");

	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zm9vYg==", 8), 4);
	assert_memory_equal(dec, "foob", 4);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zm9vYmE=", 8), 5);
	assert_memory_equal(dec, "fooba", 5);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zm9vYmFy", 8), 6);
	assert_int_equal(util_base64_decode(NULL, 0, "Zm9vYg==", 8), 4);   /* check only */
	assert_int_equal(util_base64_decode(dec, 5, "Zm9vYmFy", 8), -1);  /* does not fit */
	/* refused: empty, not a multiple of 4, bad characters, padding inside or too long */
	assert_int_equal(util_base64_decode(dec, sizeof dec, "", 0), -1);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zm9", 3), -1);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zm9v Yg=", 8), -1);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zm9-YmFy", 8), -1);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zg==Zg==", 8), -1);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Z===", 4), -1);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "====", 4), -1);
	assert_int_equal(util_base64_decode(dec, sizeof dec, "Zm9v\nYmFy", 9), -1);
}

static void test_hex_lowercase_and_terminated(void **state)
{
	const unsigned char in[] = { 0x00, 0x0f, 0xa5, 0xff };
	char out[2 * sizeof in + 2];

	(void)state;
	memset(out, 'X', sizeof out);
	util_hex(out, in, sizeof in);
	assert_string_equal(out, "000fa5ff");
	assert_int_equal(out[2 * sizeof in + 1], 'X');   /* nothing past the NUL */
	util_hex(out, in, 0);
	assert_string_equal(out, "");
}

static void test_dec_matches_printf_at_the_edges(void **state)
{
	const unsigned long long vals[] = { 0, 9, 10, 99, 100, 200, 4294967295ULL,
					    18446744073709551615ULL };
	char out[UTIL_DEC_SIZE + 1], want[32];

	(void)state;
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		memset(out, 'X', sizeof out);
		snprintf(want, sizeof want, "%llu", vals[i]);
		assert_int_equal(util_dec(out, vals[i]), strlen(want));
		assert_string_equal(out, want);
	}
	assert_int_equal(out[UTIL_DEC_SIZE], 'X');   /* the largest fits with its NUL */
}

static void test_copy_cuts_and_terminates(void **state)
{
	char out[6];

	(void)state;
	memset(out, 'X', sizeof out);
	util_copy(out, sizeof out, "abc");
	assert_string_equal(out, "abc");
	util_copy(out, sizeof out, "abcdefgh");
	assert_string_equal(out, "abcde");   /* cap - 1 bytes, then the NUL */
	util_copy(out, 1, "abc");
	assert_string_equal(out, "");
}

static void test_buf_grows_and_stays_terminated(void **state)
{
	struct util_buf b = { 0 };
	char big[10000];

	(void)state;
	assert_int_equal(util_buf_add(&b, "", 0), 0);
	assert_non_null(b.p);
	assert_string_equal(b.p, "");
	assert_int_equal(util_buf_printf(&b, "%s=%d;", "a", 1), 0);
	memset(big, 'x', sizeof big);
	assert_int_equal(util_buf_add(&b, big, sizeof big), 0);
	/* a printf longer than the room left: grown, then written whole */
	assert_int_equal(util_buf_printf(&b, "%.*s!", 9000, big), 0);
	assert_int_equal(b.len, 4 + sizeof big + 9001);
	assert_memory_equal(b.p, "a=1;xxx", 7);
	assert_int_equal(b.p[b.len - 1], '!');
	assert_int_equal(b.p[b.len], '\0');
	assert_true(b.cap > b.len);
	assert_false(b.failed);
	util_buf_free(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
}

static void test_buf_limit_fails_and_sticks(void **state)
{
	struct util_buf b = { .max = 10 };

	(void)state;
	assert_int_equal(util_buf_add(&b, "0123456789", 10), 0);   /* exactly max */
	assert_true(b.cap <= b.max + 1);                             /* capped allocation */
	assert_int_equal(util_buf_add(&b, "a", 1), -1);
	assert_true(b.failed);
	assert_true(b.over);
	assert_string_equal(b.p, "0123456789");                      /* left as it was */
	/* sticky: even what would fit now fails */
	assert_int_equal(util_buf_printf(&b, "%s", ""), -1);
	assert_int_equal(util_buf_reserve(&b, 0), -1);
	/* reset: empty and usable again, the storage kept */
	{
		char *kept = b.p;

		util_buf_reset(&b);
		assert_false(b.failed);
		assert_int_equal(b.len, 0);
		assert_ptr_equal(b.p, kept);
		assert_string_equal(b.p, "");
		assert_int_equal(util_buf_add(&b, "ok", 2), 0);
		assert_string_equal(b.p, "ok");
	}
	util_buf_free(&b);
	assert_false(b.failed);
	assert_int_equal(b.max, 10);
	/* a printf over the limit appends nothing */
	assert_int_equal(util_buf_printf(&b, "%d", 12345), 0);
	assert_int_equal(util_buf_printf(&b, "%d", 123456), -1);
	assert_string_equal(b.p, "12345");
	util_buf_free(&b);
	/* a size that would overflow */
	assert_int_equal(util_buf_reserve(&b, (size_t)-1), -1);
	util_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mkdir_p_creates_and_accepts_existing),
		cmocka_unit_test(test_mkdir_p_hook_sees_each_new_directory),
		cmocka_unit_test(test_fnv1a_known_values),
		cmocka_unit_test(test_sha256_known_digests),
		cmocka_unit_test(test_hmac_sha256_rfc4231),
		cmocka_unit_test(test_hmac_sha256_threads),
		cmocka_unit_test(test_base64_round_trip_and_strictness),
		cmocka_unit_test(test_hex_lowercase_and_terminated),
		cmocka_unit_test(test_dec_matches_printf_at_the_edges),
		cmocka_unit_test(test_copy_cuts_and_terminates),
		cmocka_unit_test(test_buf_grows_and_stays_terminated),
		cmocka_unit_test(test_buf_limit_fails_and_sticks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
