/*
 * test_config_reload.c — what a SIGHUP reload changes: the keys a new
 * config changes live, the keys that need a restart (their running value
 * put back), the deep copy, and the published snapshot's references.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_reload.h"

static int has(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

static void set_string(char **field, const char *v)
{
	free(*field);
	*field = v ? strdup(v) : NULL;
	assert_true(!v || *field);
}

static void base(struct config *c)
{
	assert_int_equal(config_defaults(c), 0);
	set_string(&c->auth_token, "old-token");
}

static void nothing_changed_is_an_empty_diff(void **state)
{
	struct config a, b;
	struct config_reload_diff d;

	(void)state;
	base(&a);
	memset(a.auth_token_sha256, 0xa5, sizeof a.auth_token_sha256);
	assert_int_equal(config_copy(&b, &a), 0);
	/* the token's digest goes with the token */
	assert_memory_equal(b.auth_token_sha256, a.auth_token_sha256, sizeof a.auth_token_sha256);
	assert_int_equal(config_reload_diff(&a, &b, &d), 0);
	assert_int_equal(d.nchanged, 0);
	assert_int_equal(d.nrestart, 0);
	config_free(&a);
	config_free(&b);
}

static void live_keys_change_and_restart_keys_keep_their_value(void **state)
{
	struct config a, b;
	struct config_reload_diff d;

	(void)state;
	base(&a);
	assert_int_equal(config_copy(&b, &a), 0);
	set_string(&b.auth_token, "new-token");
	b.max_events = a.max_events + 1;
	b.log_level = a.log_level + 1;
	b.lua_time_limit_ms = a.lua_time_limit_ms + 5;
	set_string(&b.listen, "127.0.0.1:9999s");
	b.threads = a.threads + 4;
	set_string(&b.data_dir, "/elsewhere");
	set_string(&b.run_as_user, "nobody");
	assert_int_equal(config_reload_diff(&a, &b, &d), 0);
	assert_int_equal(d.nchanged, 4);
	assert_true(has(d.changed, d.nchanged, "auth_token"));
	assert_true(has(d.changed, d.nchanged, "max_events"));
	assert_true(has(d.changed, d.nchanged, "log_level"));
	assert_true(has(d.changed, d.nchanged, "lua_time_limit"));
	assert_int_equal(d.nrestart, 4);
	assert_true(has(d.restart, d.nrestart, "listen"));
	assert_true(has(d.restart, d.nrestart, "threads"));
	assert_true(has(d.restart, d.nrestart, "data_dir"));
	assert_true(has(d.restart, d.nrestart, "run_as_user"));
	/* The new config now holds the running values of the restart keys... */
	assert_string_equal(b.listen, a.listen);
	assert_int_equal(b.threads, a.threads);
	assert_string_equal(b.data_dir, a.data_dir);
	assert_null(b.run_as_user);
	/* ...and the new ones of the live keys. */
	assert_string_equal(b.auth_token, "new-token");
	assert_int_equal(b.max_events, a.max_events + 1);
	config_free(&a);
	config_free(&b);
}

/* auth_token = none is a change of auth_token, both ways. */
static void disabling_auth_is_a_change(void **state)
{
	struct config a, b;
	struct config_reload_diff d;

	(void)state;
	base(&a);
	assert_int_equal(config_copy(&b, &a), 0);
	set_string(&b.auth_token, NULL);
	b.auth_disabled = 1;
	assert_int_equal(config_reload_diff(&a, &b, &d), 0);
	assert_int_equal(d.nchanged, 1);
	assert_string_equal(d.changed[0], "auth_token");
	assert_int_equal(config_reload_diff(&b, &a, &d), 0);
	assert_int_equal(d.nchanged, 1);
	config_free(&a);
	config_free(&b);
}

static void the_key_table_marks_live_and_restart_keys(void **state)
{
	static const char *const live[] = { "auth_token", "max_body", "max_events", "max_hops",
					    "min_body_rate", "lua_instruction_limit",
					    "lua_memory_limit", "lua_time_limit", "rules",
					    "rules_env", "log_level", "log_format",
					    "tls_certificate", "tls_key", "allow_from", "rate_limit",
					    "rate_limit_burst", "rate_limit_exempt",
					    "max_connections_per_address", "forward_timeout",
					    "forward_max_attempts", "forward_max_age",
					    "forward_backoff_max", "forward_concurrency",
					    "forward_signing_secret" };
	static const char *const restart[] = { "listen", "threads", "data_dir", "run_as_user",
					       "output_dir", "endpoint", "tls_client_ca" };

	(void)state;
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
		assert_true(config_key_is_live(live[i]));
	for (size_t i = 0; i < sizeof restart / sizeof restart[0]; i++)
		assert_false(config_key_is_live(restart[i]));
	assert_false(config_key_is_live("no_such_key"));
}

/* A request's snapshot outlives a publish; the last release frees it. */
static void snapshot_lives_while_a_request_holds_it(void **state)
{
	struct config a;
	struct config_snap *s1, *s2, *held, *now;

	(void)state;
	base(&a);
	assert_null(config_snap_acquire());
	s1 = config_snap_copy(&a, 1);
	assert_non_null(s1);
	config_snap_publish(s1);
	held = config_snap_acquire();
	assert_ptr_equal(held, s1);
	assert_int_equal(atomic_load(&held->refs), 2);
	set_string(&a.auth_token, "second");
	s2 = config_snap_copy(&a, 2);
	assert_non_null(s2);
	config_snap_publish(s2);
	/* The request still reads its own config, whole. */
	assert_int_equal(atomic_load(&held->refs), 1);
	assert_string_equal(held->cfg.auth_token, "old-token");
	now = config_snap_acquire();
	assert_ptr_equal(now, s2);
	assert_string_equal(now->cfg.auth_token, "second");
	assert_int_equal(now->generation, 2);
	config_snap_release(held);   /* frees s1 (ASan would see a leak otherwise) */
	config_snap_release(now);
	config_snap_clear();
	assert_null(config_snap_acquire());
	config_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(nothing_changed_is_an_empty_diff),
		cmocka_unit_test(live_keys_change_and_restart_keys_keep_their_value),
		cmocka_unit_test(disabling_auth_is_a_change),
		cmocka_unit_test(the_key_table_marks_live_and_restart_keys),
		cmocka_unit_test(snapshot_lives_while_a_request_holds_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
