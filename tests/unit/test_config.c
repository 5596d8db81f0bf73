/*
 * test_config.c — router.conf parsing, validation, defaults and the example.
 *
 * Every test writes real files in a mkdtemp() directory. The example test
 * reads router.conf.example from the working directory (the repository root,
 * as `make unit` runs tests).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

static char tmpdir[64];
static char conf_path[128];
static char sub_dir[128];

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_config.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(conf_path, sizeof conf_path, "%s/router.conf", tmpdir);
	snprintf(sub_dir, sizeof sub_dir, "%s/adir", tmpdir);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unlink(conf_path);
	rmdir(sub_dir);
	return rmdir(tmpdir);
}

static void write_conf(const char *text, size_t len)
{
	FILE *f = fopen(conf_path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Writes text as the config file and loads it into cfg. */
static int load_text(struct config *cfg, const char *text, char *err, size_t errlen)
{
	write_conf(text, strlen(text));
	/* Garbage in cfg must not matter: config_load fills it from scratch. */
	memset(cfg, 0xA5, sizeof *cfg);
	err[0] = '\0';
	return config_load(cfg, conf_path, err, errlen);
}

static int is_zeroed(const struct config *cfg)
{
	static const struct config zero;

	return memcmp(cfg, &zero, sizeof zero) == 0;
}

static void assert_defaults(const struct config *c, int skip_strings_set_by_example)
{
	if (!skip_strings_set_by_example) {
		assert_string_equal(c->listen, "8443s");
		assert_string_equal(c->tls_certificate, "certs/server.pem");
		assert_string_equal(c->rules_path, "rules/example.lua");
		assert_string_equal(c->data_dir, "var");
		assert_string_equal(c->output_dir, "var/out");
		assert_null(c->rules_env);
	}
	assert_string_equal(c->tls_min_version, "1.2");
	assert_string_equal(c->write_sync, "none");
	assert_string_equal(c->endpoint, "/hooks/egoi");
	assert_int_equal(c->threads, 64);
	assert_int_equal(c->max_body, 10 * 1024 * 1024);
	assert_int_equal(c->max_events, 10000);
	assert_int_equal(c->forward_timeout_ms, 10000);
	assert_int_equal(c->forward_max_attempts, 0);
	assert_int_equal(c->forward_max_age_ms, 24L * 3600 * 1000);
	assert_int_equal(c->forward_backoff_max_ms, 600L * 1000);
	assert_int_equal(c->forward_concurrency, 16);
	assert_int_equal(c->lua_instruction_limit, 1000000);
	assert_int_equal(c->lua_memory_limit, 64 * 1024 * 1024);
	assert_int_equal(c->lua_time_limit_ms, 250);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_int_equal(c->log_json, 0);
}

static void test_defaults(void **state)
{
	struct config c;

	(void)state;
	memset(&c, 0xA5, sizeof c);
	assert_int_equal(config_defaults(&c), 0);
	assert_defaults(&c, 0);
	assert_null(c.tls_client_ca);
	assert_null(c.auth_token);
	assert_int_equal(c.auth_disabled, 0);
	assert_null(c.allow_from);
	assert_null(c.forward_signing_secret);
	assert_null(c.run_as_user);
	config_free(&c);
	assert_true(is_zeroed(&c));
}

static void test_full_file(void **state)
{
	static const char text[] =
		"\xEF\xBB\xBF# a full configuration\n"
		"\n"
		"   # an indented comment\n"
		"listen = 127.0.0.1:9443s,9080\n"
		"tls_certificate=/etc/egoi/cert.pem\n"
		"  tls_min_version   =   1.3  \n"
		"tls_client_ca = /etc/egoi/ca.pem\r\n"
		"endpoint = /in/egoi-v2\n"
		"auth_token = abc#def=ghi\n"
		"allow_from = 10.0.0.0/8 , 192.0.2.7, 2001:db8::/32\n"
		"rules = my rules/route.lua\n"
		"data_dir = /var/lib/egoi\n"
		"output_dir = /var/lib/egoi/out\n"
		"write_sync = batch\n"
		"threads = 1024\n"
		"max_body = 512k\n"
		"max_events = 1\n"
		"forward_timeout = 250ms\n"
		"forward_max_attempts = 3\n"
		"forward_max_age = 90m\n"
		"forward_backoff_max = 30s\n"
		"forward_concurrency = 1\n"
		"forward_signing_secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
		"lua_instruction_limit = 0\n"
		"lua_memory_limit = 1G\n"
		"lua_time_limit = 2s\n"
		"rules_env = CRM_URL, SLACK_URL\n"
		"log_level = debug\n"
		"log_format = json\n"
		"run_as_user = egoi\n";
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(load_text(&c, text, err, sizeof err), 0);
	assert_string_equal(c.listen, "127.0.0.1:9443s,9080");
	assert_string_equal(c.tls_certificate, "/etc/egoi/cert.pem");
	assert_string_equal(c.tls_min_version, "1.3");
	assert_string_equal(c.write_sync, "batch");
	assert_string_equal(c.tls_client_ca, "/etc/egoi/ca.pem");
	assert_string_equal(c.endpoint, "/in/egoi-v2");
	assert_string_equal(c.auth_token, "abc#def=ghi");
	assert_int_equal(c.auth_disabled, 0);
	assert_string_equal(c.allow_from, "10.0.0.0/8,192.0.2.7,2001:db8::/32");
	assert_string_equal(c.rules_path, "my rules/route.lua");
	assert_string_equal(c.data_dir, "/var/lib/egoi");
	assert_string_equal(c.output_dir, "/var/lib/egoi/out");
	assert_int_equal(c.threads, 1024);
	assert_int_equal(c.max_body, 512 * 1024);
	assert_int_equal(c.max_events, 1);
	assert_int_equal(c.forward_timeout_ms, 250);
	assert_int_equal(c.forward_max_attempts, 3);
	assert_int_equal(c.forward_max_age_ms, 90L * 60 * 1000);
	assert_int_equal(c.forward_backoff_max_ms, 30L * 1000);
	assert_int_equal(c.forward_concurrency, 1);
	assert_string_equal(c.forward_signing_secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	assert_int_equal(c.lua_instruction_limit, 0);
	assert_int_equal(c.lua_memory_limit, 1024L * 1024 * 1024);
	assert_int_equal(c.lua_time_limit_ms, 2000);
	assert_string_equal(c.rules_env, "CRM_URL, SLACK_URL");
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(c.log_json, 1);
	assert_string_equal(c.run_as_user, "egoi");
	config_free(&c);
}

/* Only auth_token set: everything else keeps its default. */
static void test_minimal_file(void **state)
{
	struct config c;
	char err[256];
	unsigned char want[UTIL_SHA256_LEN];

	(void)state;
	assert_int_equal(load_text(&c, "auth_token = t", err, sizeof err), 0);
	assert_defaults(&c, 0);
	assert_string_equal(c.auth_token, "t");
	/* the token check compares against this digest, made once here */
	assert_int_equal(util_sha256("t", 1, want), 0);
	assert_memory_equal(c.auth_token_sha256, want, sizeof want);
	assert_null(c.allow_from);
	config_free(&c);
}

struct bad_case {
	const char *text;
	int line;
	const char *reason;
};

static const struct bad_case bad_cases[] = {
	{ "auth_token = x\n\n# comment\n\n\n\nlistn = 8443s\n", 7, "unknown key 'listn'" },
	{ "threads = 4\nauth_token = x\n  threads = 5\n", 3,
	  "duplicate key 'threads' (first set on line 1)" },
	{ "auth_token = x\nthreads 4\n", 2, "expected 'key = value'" },
	{ "auth_token = x\n = 4\n", 2, "missing key before '='" },
	{ "auth_token = x\nlisten =   \n", 2, "empty value for 'listen'" },
	{ "threads = 4x\n", 1, "threads: '4x' is not a whole number" },
	{ "threads = 0x10\n", 1, "threads: '0x10' is not a whole number" },
	{ "threads = 99999999999999999999999\n", 1,
	  "threads: '99999999999999999999999' is not a whole number" },
	{ "threads = 0\n", 1, "threads: 0 is out of range (1 to 1024)" },
	{ "threads = 1025\n", 1, "threads: 1025 is out of range (1 to 1024)" },
	{ "threads = -1\n", 1, "threads: -1 is out of range (1 to 1024)" },
	{ "max_events = 0\n", 1, "max_events: 0 is out of range (1 to 1000000)" },
	{ "lua_instruction_limit = -5\n", 1,
	  "lua_instruction_limit: -5 is out of range (0 to 9223372036854775807)" },
	{ "forward_timeout = 10x\n", 1,
	  "forward_timeout: '10x' is not a duration (a whole number with ms, s, m or h)" },
	{ "forward_timeout = -1s\n", 1,
	  "forward_timeout: '-1s' is not a duration (a whole number with ms, s, m or h)" },
	{ "forward_timeout = 2h\n", 1, "forward_timeout: 2h is out of range (1ms to 1h)" },
	{ "forward_timeout = 0\n", 1, "forward_timeout: 0 is out of range (1ms to 1h)" },
	{ "forward_max_age = 999ms\n", 1,
	  "forward_max_age: 999ms is out of range (1s to 720h)" },
	{ "max_body = 10MB\n", 1,
	  "max_body: '10MB' is not a size (a whole number, optionally with k, M or G)" },
	{ "max_body = 2G\n", 1, "max_body: 2G is out of range (1 to 1G)" },
	{ "lua_memory_limit = 65G\n", 1, "lua_memory_limit: 65G is out of range (0 to 64G)" },
	{ "lua_time_limit = 2h\n", 1, "lua_time_limit: 2h is out of range (0 to 1h)" },
	{ "rules_env = CRM_URL,, X\n", 1,
	  "rules_env: 'CRM_URL,, X' is not a comma-separated list of variable names" },
	{ "rules_env = A B\n", 1, "rules_env: 'A B' is not a comma-separated list of variable names" },
	{ "rules_env = 9LIVES\n", 1, "rules_env: '9LIVES' is not a comma-separated list of variable names" },
	{ "tls_min_version = 1.1\n", 1, "tls_min_version: '1.1' is not one of 1.2, 1.3" },
	{ "write_sync = always\n", 1, "write_sync: 'always' is not one of none, batch" },
	{ "log_level = verbose\n", 1,
	  "log_level: 'verbose' is not one of debug, info, warn, error" },
	{ "log_format = xml\n", 1, "log_format: 'xml' is not one of text, json" },
	{ "endpoint = hooks/egoi\n", 1, "endpoint must start with '/'" },
	{ "endpoint = /metrics\n", 1, "endpoint '/metrics' is reserved or not a plain path "
	  "(not /healthz, /readyz or /metrics, no spaces, ?, #, $ or *, at most 256 bytes)" },
	{ "endpoint = /readyz\n", 1, "endpoint '/readyz' is reserved or not a plain path "
	  "(not /healthz, /readyz or /metrics, no spaces, ?, #, $ or *, at most 256 bytes)" },
	{ "endpoint = /hooks/e?x\n", 1, "endpoint '/hooks/e?x' is reserved or not a plain path "
	  "(not /healthz, /readyz or /metrics, no spaces, ?, #, $ or *, at most 256 bytes)" },
	{ "auth_token = x\nforward_signing_secret = hunter2hunter2\n", 2,
	  "forward_signing_secret must start with 'whsec_'" },
	{ "forward_signing_secret = whsec_hunter2!\n", 1,
	  "forward_signing_secret must be 'whsec_' followed by base64" },
	{ "forward_signing_secret = whsec_\n", 1,
	  "forward_signing_secret must be 'whsec_' followed by base64" },
	{ "forward_signing_secret = whsec_abc\n", 1,
	  "forward_signing_secret must be 'whsec_' followed by base64" },
	{ "allow_from = 10.0.0.0/33\n", 1, "allow_from: bad prefix length '/33' for 10.0.0.0" },
	{ "allow_from = ::1/129\n", 1, "allow_from: bad prefix length '/129' for ::1" },
	{ "allow_from = 10.0.0.0/\n", 1, "allow_from: bad prefix length '/' for 10.0.0.0" },
	{ "allow_from = 10.0.0.0/8,,192.0.2.1\n", 1, "allow_from: empty entry in the list" },
	{ "allow_from = example.com\n", 1,
	  "allow_from: 'example.com' is not an IPv4 or IPv6 address" },
	{ "auth_token = x\nthreads = env:EGOI_TEST_SURELY_UNSET\n", 2,
	  "environment variable EGOI_TEST_SURELY_UNSET is not set" },
	{ "auth_token = env:\n", 1, "environment variable name missing after 'env:'" },
};

static void test_errors_name_line(void **state)
{
	(void)state;
	unsetenv("EGOI_TEST_SURELY_UNSET");
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *bc = &bad_cases[i];
		char err[512], want[512];
		struct config c;

		snprintf(want, sizeof want, "%s:%d: %s", conf_path, bc->line, bc->reason);
		if (load_text(&c, bc->text, err, sizeof err) != -1 || strcmp(err, want) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, err, want);
		assert_true(is_zeroed(&c));
		assert_null(strstr(err, "hunter2"));
		config_free(&c);
	}
}

static void test_nul_byte_rejected(void **state)
{
	static const char text[] = "auth_token = x\nlisten = 84\0" "3s\n";
	char err[256], want[256];
	struct config c;

	(void)state;
	write_conf(text, sizeof text - 1);
	assert_int_equal(config_load(&c, conf_path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: line contains a NUL byte", conf_path);
	assert_string_equal(err, want);
	config_free(&c);
}

/*
 * A line longer than CONFIG_LINE_MAX, a file larger than CONFIG_FILE_MAX and
 * an endless device fail with file and line named, after reading at most
 * the cap (/dev/zero used to grow the line buffer without end).
 */
static void test_size_caps(void **state)
{
	char err[256], want[256];
	struct config c;
	size_t n = 0;
	char *text = malloc(CONFIG_FILE_MAX + 4096);

	(void)state;
	assert_non_null(text);
	/* line 2 is a comment one byte too long: even a comment is capped */
	n = (size_t)sprintf(text, "auth_token = x\n#");
	memset(text + n, 'a', CONFIG_LINE_MAX);
	n += CONFIG_LINE_MAX;
	text[n++] = '\n';
	write_conf(text, n);
	assert_int_equal(config_load(&c, conf_path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: line is longer than %d bytes", conf_path,
		 CONFIG_LINE_MAX);
	assert_string_equal(err, want);
	config_free(&c);

	/* exactly CONFIG_LINE_MAX bytes is still a line */
	n = (size_t)sprintf(text, "auth_token = x\n#");
	memset(text + n, 'a', CONFIG_LINE_MAX - 1);
	n += CONFIG_LINE_MAX - 1;
	text[n++] = '\n';
	write_conf(text, n);
	assert_int_equal(config_load(&c, conf_path, err, sizeof err), 0);
	config_free(&c);

	/* many short lines past the file cap */
	n = (size_t)sprintf(text, "auth_token = x\n");
	while (n < CONFIG_FILE_MAX + 100)
		n += (size_t)sprintf(text + n, "# just a comment\n");
	write_conf(text, n);
	assert_int_equal(config_load(&c, conf_path, err, sizeof err), -1);
	assert_non_null(strstr(err, conf_path));
	assert_non_null(strstr(err, "file is larger than"));
	config_free(&c);

	/* a device that never ends */
	assert_int_equal(config_load(&c, "/dev/zero", err, sizeof err), -1);
	assert_string_equal(err, "/dev/zero:1: line contains a NUL byte");
	config_free(&c);
	free(text);
}

static void test_auth_token_required(void **state)
{
	char err[256], want[256];
	struct config c;

	(void)state;
	snprintf(want, sizeof want,
		 "%s: auth_token is required (set a secret, or 'none' to disable auth)", conf_path);
	assert_int_equal(load_text(&c, "threads = 4\n", err, sizeof err), -1);
	assert_string_equal(err, want);
	assert_true(is_zeroed(&c));
	assert_int_equal(load_text(&c, "", err, sizeof err), -1);
	assert_string_equal(err, want);
	/* A commented-out token does not count. */
	assert_int_equal(load_text(&c, "# auth_token = x\n", err, sizeof err), -1);
	assert_string_equal(err, want);
}

static void test_auth_none(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(load_text(&c, "auth_token = none\n", err, sizeof err), 0);
	assert_int_equal(c.auth_disabled, 1);
	assert_null(c.auth_token);
	config_free(&c);

	assert_int_equal(load_text(&c, "auth_token = None\n", err, sizeof err), 0);
	assert_int_equal(c.auth_disabled, 0);
	assert_string_equal(c.auth_token, "None");
	config_free(&c);
}

/* outbox: sqlite by default, a postgresql:// URI (also from env:), nothing
 * else; the error never repeats the value (it may hold a password). */
static void test_outbox_target(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(load_text(&c, "auth_token = t\n", err, sizeof err), 0);
	assert_string_equal(c.outbox, "sqlite");
	config_free(&c);
	setenv("EGOI_TEST_OUTBOX", "postgresql://u:pw@db.example/egoi", 1);
	assert_int_equal(load_text(&c, "auth_token = t\noutbox = env:EGOI_TEST_OUTBOX\n", err,
				   sizeof err), 0);
	assert_string_equal(c.outbox, "postgresql://u:pw@db.example/egoi");
	config_free(&c);
	assert_int_equal(load_text(&c, "auth_token = t\noutbox = mysql://u:s3cret@x/y\n", err,
				   sizeof err), -1);
	assert_non_null(strstr(err, "outbox must be sqlite or a postgresql:// URI"));
	assert_null(strstr(err, "s3cret"));
	unsetenv("EGOI_TEST_OUTBOX");
}

static void test_unreadable_file(void **state)
{
	char err[256], want[512], missing[160];
	struct config c;

	(void)state;
	snprintf(missing, sizeof missing, "%s/nope.conf", tmpdir);
	memset(&c, 0xA5, sizeof c);
	assert_int_equal(config_load(&c, missing, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: cannot open (%s)", missing, strerror(ENOENT));
	assert_string_equal(err, want);
	assert_true(is_zeroed(&c));

	assert_int_equal(mkdir(sub_dir, 0700), 0);
	assert_int_equal(config_load(&c, sub_dir, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: cannot read (%s)", sub_dir, strerror(EISDIR));
	assert_string_equal(err, want);
	assert_int_equal(rmdir(sub_dir), 0);
	config_free(&c);
}

static void test_env_values(void **state)
{
	char err[512], want[512];
	struct config c;

	(void)state;
	assert_int_equal(setenv("EGOI_TEST_TOKEN", "s3cret from env", 1), 0);
	assert_int_equal(setenv("EGOI_TEST_THREADS", "8", 1), 0);
	assert_int_equal(setenv("EGOI_TEST_SIGNING", "whsec_c2VjcmV0", 1), 0);
	assert_int_equal(load_text(&c, "auth_token = env:EGOI_TEST_TOKEN\n"
				   "threads = env:EGOI_TEST_THREADS\n"
				   "forward_signing_secret = env:EGOI_TEST_SIGNING\n",
				   err, sizeof err), 0);
	assert_string_equal(c.auth_token, "s3cret from env");
	assert_int_equal(c.threads, 8);
	assert_string_equal(c.forward_signing_secret, "whsec_c2VjcmV0");
	config_free(&c);

	/* Unset and empty variables are errors naming the line. */
	assert_int_equal(unsetenv("EGOI_TEST_TOKEN"), 0);
	snprintf(want, sizeof want, "%s:2: environment variable EGOI_TEST_TOKEN is not set",
		 conf_path);
	assert_int_equal(load_text(&c, "threads = 3\nauth_token = env:EGOI_TEST_TOKEN\n",
				   err, sizeof err), -1);
	assert_string_equal(err, want);
	assert_int_equal(setenv("EGOI_TEST_TOKEN", "", 1), 0);
	assert_int_equal(load_text(&c, "threads = 3\nauth_token = env:EGOI_TEST_TOKEN\n",
				   err, sizeof err), -1);
	assert_string_equal(err, want);

	/* A bad secret from the environment is reported without its value. */
	assert_int_equal(setenv("EGOI_TEST_SIGNING", "sk_topsecretvalue", 1), 0);
	assert_int_equal(load_text(&c, "auth_token = none\n"
				   "forward_signing_secret = env:EGOI_TEST_SIGNING\n",
				   err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: forward_signing_secret must start with 'whsec_'",
		 conf_path);
	assert_string_equal(err, want);
	assert_null(strstr(err, "topsecret"));

	/* Disabling auth must be written in the file, not hidden in a variable. */
	assert_int_equal(setenv("EGOI_TEST_TOKEN", "none", 1), 0);
	assert_int_equal(load_text(&c, "auth_token = env:EGOI_TEST_TOKEN\n", err, sizeof err), -1);
	assert_non_null(strstr(err, ":1: auth_token: "));

	/* Non-secret values from the environment are validated like literals. */
	assert_int_equal(setenv("EGOI_TEST_THREADS", "0", 1), 0);
	assert_int_equal(load_text(&c, "auth_token = x\nthreads = env:EGOI_TEST_THREADS\n",
				   err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: threads: 0 is out of range (1 to 1024)", conf_path);
	assert_string_equal(err, want);
	config_free(&c);
	unsetenv("EGOI_TEST_TOKEN");
	unsetenv("EGOI_TEST_THREADS");
	unsetenv("EGOI_TEST_SIGNING");
}

static void test_parse_duration(void **state)
{
	static const struct { const char *in; long ms; } good[] = {
		{ "0", 0 }, { "10", 10000 }, { "250ms", 250 }, { "10s", 10000 },
		{ "5m", 300000 }, { "24h", 86400000 }, { "007s", 7000 },
		{ "9223372036854775807ms", LONG_MAX },
	};
	static const char *const bad[] = {
		"", "-1", "+1", "-1ms", " 1", "1 s", "1.5s", "10sec", "ms", "s", "10S", "10H",
		"10d", "1e3", "0x10", "10ms ", "9223372036854775808ms", "9223372036854775807s",
		"2562047788015216h", "99999999999999999999999999",
	};
	long ms;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		ms = -1;
		assert_int_equal(config_parse_duration_ms(good[i].in, &ms), 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ms = 42;
		if (config_parse_duration_ms(bad[i], &ms) != -1)
			fail_msg("duration '%s' accepted", bad[i]);
		assert_int_equal(ms, 42);
	}
}

static void test_parse_size(void **state)
{
	static const struct { const char *in; size_t n; } good[] = {
		{ "0", 0 }, { "512", 512 }, { "64k", 65536 }, { "64K", 65536 },
		{ "10M", 10485760 }, { "10m", 10485760 }, { "1G", 1073741824 },
		{ "1g", 1073741824 }, { "18446744073709551615", SIZE_MAX },
		{ "17179869183G", (size_t)17179869183ULL << 30 },
	};
	static const char *const bad[] = {
		"", "-1", "+1", "k", "1.5M", "10MB", "10 M", " 10", "1T", "1b", "0x10",
		"18446744073709551616", "17179869184G", "18014398509481984k",
		"99999999999999999999999999",
	};
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		n = 1;
		assert_int_equal(config_parse_size(good[i].in, &n), 0);
		assert_true(n == good[i].n);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		n = 42;
		if (config_parse_size(bad[i], &n) != -1)
			fail_msg("size '%s' accepted", bad[i]);
		assert_int_equal(n, 42);
	}
}

/* Reads a whole file into a heap string; *len gets its length. */
static char *example_text(size_t *len)
{
	char *buf = NULL;
	FILE *m = open_memstream(&buf, len);

	assert_non_null(m);
	config_print_example(m);
	assert_int_equal(fclose(m), 0);
	return buf;
}

static void test_example_in_sync(void **state)
{
	size_t want_len = 0, got_len = 0;
	char *want, *got;

	(void)state;
	want = tu_read_file("router.conf.example", &want_len);
	if (!want)
		fail_msg("router.conf.example not readable from the working directory "
			 "(run tests from the repository root): %s", strerror(errno));
	got = example_text(&got_len);
	if (got_len != want_len || memcmp(got, want, got_len) != 0)
		fail_msg("router.conf.example is out of date; regenerate it from "
			 "config_print_example");
	free(got);
	free(want);
}

/* The example loads as is, and so does every commented-out line in it. */
static void test_example_loads(void **state)
{
	size_t len, n = 0;
	char *text, *all, *p, err[512];
	struct config c;

	(void)state;
	assert_int_equal(setenv("EGOI_ROUTER_TOKEN", "example-token", 1), 0);
	assert_int_equal(setenv("EGOI_ROUTER_SIGNING_SECRET", "whsec_c2VjcmV0", 1), 0);
	assert_int_equal(setenv("EGOI_API_KEY", "example-egoi-key", 1), 0);
	assert_int_equal(setenv("EGOI_ROUTER_ADMIN_TOKEN", "admin-secret", 1), 0);
	text = example_text(&len);
	if (load_text(&c, text, err, sizeof err) != 0)
		fail_msg("example does not load: %s", err);
	assert_string_equal(c.listen, "127.0.0.1:8443s");
	assert_string_equal(c.auth_token, "example-token");
	assert_defaults(&c, 1);
	assert_null(c.allow_from);
	assert_string_equal(c.rules_env, "CRM_URL, SLACK_URL");  /* what make run's rules read */
	assert_null(c.egoi_api_key);  /* the egoi commands then read EGOI_API_KEY */
	assert_null(c.public_url);
	assert_string_equal(c.egoi_api_base, "https://api.egoiapp.com");
	assert_int_equal(c.egoi_api_timeout_ms, 70000);
	config_free(&c);

	/* Uncomment every "# key = value" line. */
	all = calloc(1, len + 1);
	assert_non_null(all);
	for (p = text; *p; ) {
		char *eol = strchr(p, '\n');
		size_t l = eol ? (size_t)(eol - p + 1) : strlen(p);
		size_t key = p[0] == '#' && p[1] == ' ' ? strspn(p + 2, "abcdefghijklmnopqrstuvwxyz_") : 0;

		if (key > 0 && strncmp(p + 2 + key, " = ", 3) == 0) {
			memcpy(all + n, p + 2, l - 2);
			n += l - 2;
		} else {
			memcpy(all + n, p, l);
			n += l;
		}
		p += l;
	}
	if (load_text(&c, all, err, sizeof err) != 0)
		fail_msg("uncommented example does not load: %s", err);
	assert_defaults(&c, 1);
	assert_string_equal(c.allow_from, "10.0.0.0/8,192.0.2.7");
	assert_non_null(c.tls_client_ca);
	assert_non_null(c.run_as_user);
	assert_string_equal(c.egoi_api_key, "example-egoi-key");  /* env:EGOI_API_KEY */
	assert_string_equal(c.public_url, "https://hooks.example.com/hooks/egoi");
	assert_string_equal(c.forward_signing_secret, "whsec_c2VjcmV0");
	assert_string_equal(c.admin_listen, "127.0.0.1:9464");
	assert_string_equal(c.admin_token, "admin-secret");
	config_free(&c);
	free(all);
	free(text);
	unsetenv("EGOI_ROUTER_TOKEN");
	unsetenv("EGOI_ROUTER_SIGNING_SECRET");
	unsetenv("EGOI_ROUTER_ADMIN_TOKEN");
}

static void test_print_keys(void **state)
{
	static const char *const names[] = {
		"listen", "tls_certificate", "tls_key", "tls_min_version", "tls_client_ca", "endpoint",
		"auth_token", "allow_from", "rules", "data_dir", "outbox", "outbox_reserve", "output_dir",
		"write_sync", "threads",
		"max_body", "max_events", "max_forward_body", "max_batch_forward_bytes", "max_hops",
		"forward_timeout", "forward_max_attempts",
		"forward_max_age", "forward_backoff_max", "forward_concurrency", "forward_signing_secret",
		"lua_instruction_limit", "lua_memory_limit", "lua_states", "lua_time_limit", "rules_env",
		"log_level", "log_format", "log_file",
		"run_as_user", "max_connections_per_address", "min_body_rate", "rate_limit",
		"rate_limit_burst", "rate_limit_exempt",
		"egoi_api_key", "egoi_api_base", "egoi_api_timeout", "public_url",
		"admin_listen", "admin_token",
	};
	const size_t nnames = sizeof names / sizeof names[0];
	char *buf = NULL, *line, *save = NULL;
	size_t len, lines = 0;
	FILE *m = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(m);
	config_print_keys(m);
	assert_int_equal(fclose(m), 0);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		assert_true(lines < nnames);
		/* One line per key, in table order, name first. */
		assert_memory_equal(line, "  ", 2);
		assert_memory_equal(line + 2, names[lines], strlen(names[lines]));
		assert_true(line[2 + strlen(names[lines])] == ' ');
		if (strcmp(names[lines], "auth_token") == 0)
			assert_non_null(strstr(line, "(required)"));
		if (strcmp(names[lines], "threads") == 0)
			assert_non_null(strstr(line, "(default 64)  HTTP worker threads"));
		if (strcmp(names[lines], "max_body") == 0)
			assert_non_null(strstr(line, "(default 10M)"));
		/* the help's prose names every level of log.h */
		for (int lvl = 0; strcmp(names[lines], "log_level") == 0 && lvl < LOG_LEVELS; lvl++)
			assert_non_null(strstr(line, log_level_name((enum log_level)lvl)));
		lines++;
	}
	assert_int_equal(lines, nnames);
	free(buf);
}

static void test_free_partial(void **state)
{
	struct config c;

	(void)state;
	config_free(NULL);
	memset(&c, 0, sizeof c);
	config_free(&c);
	assert_true(is_zeroed(&c));

	c.listen = strdup("8443s");
	c.auth_token = strdup("x");
	c.forward_signing_secret = strdup("whsec_c2VjcmV0");
	assert_non_null(c.listen);
	config_free(&c);
	assert_true(is_zeroed(&c));
	config_free(&c); /* twice is harmless: config_free zeroes */

	assert_int_equal(config_defaults(&c), 0);
	config_free(&c);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_minimal_file),
		cmocka_unit_test(test_errors_name_line),
		cmocka_unit_test(test_nul_byte_rejected),
		cmocka_unit_test(test_size_caps),
		cmocka_unit_test(test_auth_token_required),
		cmocka_unit_test(test_auth_none),
		cmocka_unit_test(test_outbox_target),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_env_values),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_example_in_sync),
		cmocka_unit_test(test_example_loads),
		cmocka_unit_test(test_print_keys),
		cmocka_unit_test(test_free_partial),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
