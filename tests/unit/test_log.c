/*
 * test_log.c — log lines: one line each, text and JSON forms, level filter,
 * no way for a message to forge a second line, and no control character,
 * line separator or invalid UTF-8 from event data written raw.
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

#include <yajl/yajl_tree.h>

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

/* What an event or a rule can put in a message: ESC sequences, DEL, a C1
 * control, U+2028/U+2029, invalid and cut UTF-8; valid text stays as is. */
static const char hostile[] = "a\x1b[2Jb\x7f" "c\xc2\x85" "d\xe2\x80\xa8" "e\xe2\x80\xa9"
			      "f\xff" "g\xed\xa0\x80" "h\xc3\xa9" "i\xe2\x82";

static void hostile_lines(void)
{
	log_setup(LOG_INFO, 0);
	log_msg(LOG_WARN, "r\x1b" "1", "rule error on event 1 (%s): x", hostile);
	log_setup(LOG_INFO, 1);
	log_msg(LOG_WARN, "r\x1b" "1", "rule error on event 1 (%s): x", hostile);
	log_setup(LOG_INFO, 0);
}

static void test_control_and_separators_escaped(void **state)
{
	char *out = capture(hostile_lines), *nl;
	char errbuf[256];

	(void)state;
	assert_int_equal(count_lines(out), 2);
	nl = strchr(out, '\n');
	*nl = '\0';
	/* the text line: nothing below 0x20, no DEL, no C1, no U+2028/9, no bad byte */
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		assert_true(*p >= 0x20 && *p != 0x7f && *p != 0xff && *p != 0xed);
	assert_null(strstr(out, "\xc2\x85"));
	assert_null(strstr(out, "\xe2\x80\xa8"));
	assert_null(strstr(out, "\xe2\x80\xa9"));
	assert_non_null(strstr(out, " warn [r\\x1b1] rule error on event 1 (a\\x1b[2Jb\\x7f"
				    "c\\u0085d\\u2028e\\u2029f\\xffg\\xed\\xa0\\x80h\xc3\xa9i\\xe2\\x82): x"));
	/* the JSON line parses, and its msg says the same */
	yajl_val v = yajl_tree_parse(nl + 1, errbuf, sizeof errbuf);

	assert_non_null(v);
	const char *msg_path[] = { "msg", NULL }, *rid_path[] = { "request_id", NULL };
	yajl_val msg = yajl_tree_get(v, msg_path, yajl_t_string);
	yajl_val rid = yajl_tree_get(v, rid_path, yajl_t_string);

	assert_non_null(msg);
	assert_non_null(rid);
	assert_string_equal(YAJL_GET_STRING(rid), "r\x1b" "1");
	assert_string_equal(YAJL_GET_STRING(msg),
			    "rule error on event 1 (a\x1b[2Jb\x7f" "c\xc2\x85" "d\xe2\x80\xa8"
			    "e\xe2\x80\xa9" "f\\xffg\\xed\\xa0\\x80h\xc3\xa9i\\xe2\\x82): x");
	/* and no raw separator or control character in the JSON text either */
	assert_null(strstr(nl + 1, "\xe2\x80\xa8"));
	assert_null(strstr(nl + 1, "\x1b"));
	yajl_tree_free(v);
	free(out);
}

static void long_line(void)
{
	char big[3000];

	/* 999 three-byte characters: a cut must fall between two of them */
	for (int i = 0; i < 999; i++)
		memcpy(big + 3 * i, "\xe2\x82\xac", 3);
	big[2997] = '\0';
	log_setup(LOG_INFO, 1);
	log_msg(LOG_INFO, NULL, "%s", big);   /* cut at the message buffer */
	for (int i = 0; i < 999; i++)
		memcpy(big + 3 * i, "\xe2\x80\xa8", 3);
	log_setup(LOG_INFO, 0);
	log_msg(LOG_INFO, NULL, "%s", big);   /* escapes cut at the line buffer */
	log_setup(LOG_INFO, 0);
}

static void test_long_lines_cut_whole(void **state)
{
	char *out = capture(long_line), *nl, *end;
	char errbuf[256];

	(void)state;
	assert_int_equal(count_lines(out), 2);
	nl = strchr(out, '\n');
	*nl = '\0';
	yajl_val v = yajl_tree_parse(out, errbuf, sizeof errbuf);   /* valid UTF-8 JSON */

	assert_non_null(v);
	yajl_tree_free(v);
	end = strchr(nl + 1, '\n');
	assert_non_null(end);
	assert_true(end - (nl + 1) > 3000);
	assert_true(end - (nl + 1) < 4096);
	assert_memory_equal(end - 6, "\\u2028", 6);   /* the last escape is whole */
	assert_null(strstr(nl + 1, "\\x"));
	free(out);
}

static void test_level_names(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("warn"), LOG_WARN);
	assert_int_equal(log_level_parse("error"), LOG_ERROR);
	assert_int_equal(log_level_parse("verbose"), -1);
	/* one table: every name parses back to its level, the list shows them all */
	{
		char list[64];

		log_level_list(list, sizeof list);
		assert_string_equal(list, "debug, info, warn, error");
		for (int lvl = 0; lvl < LOG_LEVELS; lvl++) {
			assert_non_null(log_level_name((enum log_level)lvl));
			assert_int_equal(log_level_parse(log_level_name((enum log_level)lvl)), lvl);
			assert_non_null(strstr(list, log_level_name((enum log_level)lvl)));
		}
		assert_null(log_level_name(LOG_LEVELS));
		log_level_list(list, 8);
		assert_string_equal(list, "debug, ");
	}
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
		cmocka_unit_test(test_control_and_separators_escaped),
		cmocka_unit_test(test_long_lines_cut_whole),
		cmocka_unit_test(test_level_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
