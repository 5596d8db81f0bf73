/*
 * test_log.c — log lines: one line each, text and JSON forms, level filter,
 * no way for a message to forge a second line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs the logging calls of fn with stderr sent to a file; returns what was written. */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	char *buf = calloc(1, 8192);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0 && buf);
	assert_int_equal(dup2(fd, 2), 2);
	fn();
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	n = read(fd, buf, 8191);
	assert_true(n >= 0);
	close(fd);
	unlink(path);
	return buf;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void text_lines(void)
{
	log_setup(LOG_INFO, 0);
	log_msg(LOG_DEBUG, NULL, "hidden %d", 1);
	log_msg(LOG_INFO, "req-1", "hello %s", "world");
	log_msg(LOG_ERROR, NULL, "two\nlines\rhere");
}

static void test_text_format_and_filter(void **state)
{
	char *out = capture(text_lines);

	(void)state;
	assert_int_equal(count_lines(out), 2);
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, " info [req-1] hello world\n"));
	assert_non_null(strstr(out, " error two lines here\n"));
	assert_true(strncmp(out, "20", 2) == 0);   /* starts with the UTC timestamp */
	free(out);
}

static void json_lines(void)
{
	log_setup(LOG_DEBUG, 1);
	log_msg(LOG_DEBUG, "r\"2", "quote \" backslash \\ tab \t end");
	log_setup(LOG_INFO, 0);
}

static void test_json_format_escapes(void **state)
{
	char *out = capture(json_lines);

	(void)state;
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"level\":\"debug\""));
	assert_non_null(strstr(out, "\"request_id\":\"r\\\"2\""));
	assert_non_null(strstr(out, "\"msg\":\"quote \\\" backslash \\\\ tab \\u0009 end\"}\n"));
	free(out);
}

static void test_level_names(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("warn"), LOG_WARN);
	assert_int_equal(log_level_parse("error"), LOG_ERROR);
	assert_int_equal(log_level_parse("verbose"), -1);
	log_setup(LOG_WARN, 0);
	assert_false(log_enabled(LOG_INFO));
	assert_true(log_enabled(LOG_ERROR));
	log_setup(LOG_INFO, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_format_and_filter),
		cmocka_unit_test(test_json_format_escapes),
		cmocka_unit_test(test_level_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
