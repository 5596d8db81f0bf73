/*
 * test_log.c — log lines: one line each, text and JSON forms, level filter,
 * no way for a message to forge a second line, and no control character,
 * line separator or invalid UTF-8 from event data written raw; typed
 * fields, the journald priority prefix, repeat counts, log_file reopen.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
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

/* --- fields --- */

static void field_lines(void)
{
	char big[3000];
	struct log_field f[] = {
		LOG_FS("method", "POST"),
		LOG_FI("status", 413),
		LOG_FD("duration_ms", 1.5),
		LOG_FS("path", hostile),
		LOG_FS("none", NULL),
		LOG_FS("big", big),
		LOG_FI("after_big", -7),
	};

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	log_setup(LOG_INFO, 1);
	log_fields(LOG_INFO, "rid-1", f, sizeof f / sizeof f[0], "request");
	log_setup(LOG_INFO, 0);
}

/* JSON: each field is a member of its type, hostile data stays escaped
 * (the line parses), a value too long is cut and the line still parses. */
static void test_json_fields_typed(void **state)
{
	char *out = capture(field_lines), err[256];
	yajl_val v, x;
	const char *status_path[] = { "status", NULL }, *dur_path[] = { "duration_ms", NULL };
	const char *m_path[] = { "method", NULL }, *p_path[] = { "path", NULL };
	const char *n_path[] = { "none", NULL }, *r_path[] = { "request_id", NULL };
	const char *msg_path[] = { "msg", NULL }, *a_path[] = { "after_big", NULL };

	(void)state;
	assert_int_equal(count_lines(out), 1);
	v = yajl_tree_parse(out, err, sizeof err);
	if (!v)
		fail_msg("not JSON (%s): %s", err, out);
	assert_string_equal(YAJL_GET_STRING(yajl_tree_get(v, msg_path, yajl_t_string)), "request");
	assert_string_equal(YAJL_GET_STRING(yajl_tree_get(v, r_path, yajl_t_string)), "rid-1");
	assert_string_equal(YAJL_GET_STRING(yajl_tree_get(v, m_path, yajl_t_string)), "POST");
	x = yajl_tree_get(v, status_path, yajl_t_number);
	assert_true(x && YAJL_IS_INTEGER(x));
	assert_int_equal(YAJL_GET_INTEGER(x), 413);
	x = yajl_tree_get(v, dur_path, yajl_t_number);
	assert_true(x && YAJL_IS_DOUBLE(x));
	assert_true(YAJL_GET_DOUBLE(x) > 1.49 && YAJL_GET_DOUBLE(x) < 1.51);
	x = yajl_tree_get(v, n_path, yajl_t_null);
	assert_non_null(x);
	x = yajl_tree_get(v, p_path, yajl_t_string);
	assert_true(x && YAJL_IS_STRING(x));
	/* escaped in the line (no raw ESC in out, below), decoded by a reader */
	assert_memory_equal(x->u.string, "a\x1b[2Jb", 6);
	x = yajl_tree_get(v, a_path, yajl_t_number);
	assert_true(x && YAJL_GET_INTEGER(x) == -7);
	assert_null(strchr(out, 0x1b));
	assert_null(strstr(out, "\xe2\x80\xa8"));
	yajl_tree_free(v);
	free(out);
}

static void text_field_lines(void)
{
	struct log_field f[] = {
		LOG_FS("path", "/hooks/egoi"), LOG_FI("status", 200), LOG_FD("duration_ms", 2),
		LOG_FS("error", "HTTP 503: \"down\" now"), LOG_FS("empty", ""), LOG_FS("n", NULL),
		LOG_FS("nl", "a\nb=c"),
	};

	log_setup(LOG_INFO, 0);
	log_fields(LOG_WARN, NULL, f, sizeof f / sizeof f[0], "delivery %d", 1);
}

/* Text: key=value after the message; a value with spaces, quotes or '='
 * is quoted with its quotes escaped; NULL is "-". */
static void test_text_fields(void **state)
{
	char *out = capture(text_field_lines);

	(void)state;
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, " warn delivery 1 path=/hooks/egoi status=200 duration_ms=2.000"
				    " error=\"HTTP 503: \\\"down\\\" now\" empty=\"\" n=- nl=\"a b=c\"\n"));
	free(out);
}

/* --- journald priority --- */

static void journal_lines(void)
{
	struct stat st;
	char js[64];

	assert_int_equal(fstat(2, &st), 0);
	snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_int_equal(setenv("JOURNAL_STREAM", js, 1), 0);
	log_setup(LOG_DEBUG, 0);
	log_msg(LOG_ERROR, NULL, "e");
	log_msg(LOG_WARN, NULL, "w");
	log_msg(LOG_INFO, NULL, "i");
	log_msg(LOG_DEBUG, NULL, "d");
	/* Another stream (stderr redirected elsewhere): no prefix. */
	assert_int_equal(setenv("JOURNAL_STREAM", "1:2", 1), 0);
	log_setup(LOG_DEBUG, 1);
	log_msg(LOG_ERROR, NULL, "plain");
	assert_int_equal(unsetenv("JOURNAL_STREAM"), 0);
	log_setup(LOG_INFO, 0);
	log_msg(LOG_ERROR, NULL, "plain too");
}

static void test_journal_priority_prefix(void **state)
{
	char *out = capture(journal_lines), *l;

	(void)state;
	assert_int_equal(count_lines(out), 6);
	assert_true(strncmp(out, "<3>20", 5) == 0);
	assert_non_null(strstr(out, " error e\n<4>20"));
	assert_non_null(strstr(out, " warn w\n<6>20"));
	assert_non_null(strstr(out, " info i\n<7>20"));
	l = strstr(out, " debug d\n");
	assert_non_null(l);
	assert_true(strncmp(l + 9, "{\"ts\":", 6) == 0);
	assert_non_null(strstr(out, "\"msg\":\"plain\"}\n20"));
	free(out);
}

/* --- repeats --- */

static void limited_lines(void)
{
	struct log_field f[] = { LOG_FS("destination", "http://a:80") };

	log_setup(LOG_INFO, 1);
	log_limited_reset();
	for (int i = 0; i < 5; i++)
		log_limited(LOG_WARN, "dead a", f, 1, "destination a refused, try %d", i);
	log_limited(LOG_WARN, "dead b", NULL, 0, "destination b refused");
	log_limited(LOG_DEBUG, "hidden", NULL, 0, "not at this level");
	log_limited_flush();
	log_limited_flush();   /* nothing more to say */
	log_limited(LOG_WARN, "dead a", f, 1, "destination a refused, try %d", 5);
	log_limited_flush();
	log_setup(LOG_INFO, 0);
}

/* The first line of a key is written, the next 4 within the period only
 * counted; the flush writes the last of them with the count, once. */
static void test_limited_counts(void **state)
{
	char *out = capture(limited_lines);

	(void)state;
	/* try 0, b, try 4 with its count, try 5 (counted: the period that
	 * began with try 0 is not over) with its count */
	assert_int_equal(count_lines(out), 4);
	assert_non_null(strstr(out, "\"msg\":\"destination a refused, try 0\",\"destination\":"));
	assert_null(strstr(out, "try 1"));
	assert_non_null(strstr(out, "\"msg\":\"destination b refused\"}"));
	assert_non_null(strstr(out, "\"msg\":\"destination a refused, try 4 (repeated 4 times)\","
				    "\"repeat_key\":\"dead a\",\"repeated\":4}"));
	assert_non_null(strstr(out, "try 5 (repeated 1 times)\",\"repeat_key\":\"dead a\","
				    "\"repeated\":1}"));
	assert_null(strstr(out, "hidden"));
	free(out);
}

/* --- log_file --- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 8192);

	assert_non_null(f);
	assert_non_null(buf);
	assert_true(fread(buf, 1, 8191, f) < 8191);
	fclose(f);
	return buf;
}

/* Lines go to log_file (0640); after a rename (logrotate) log_reopen makes
 * a new file at the path and later lines go there, none to the old one. A
 * symlink is refused. */
static void test_reopen_after_rename(void **state)
{
	char dir[] = "/tmp/test_log_file.XXXXXX", path[128], old[128], link[128], err[256];
	struct stat st;
	char *a, *b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/router.log", dir);
	snprintf(old, sizeof old, "%s/router.log.1", dir);
	snprintf(link, sizeof link, "%s/link.log", dir);
	log_setup(LOG_INFO, 0);
	assert_int_equal(log_open_file(path, 0, 0, 0, err, sizeof err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	log_msg(LOG_INFO, NULL, "before rotation");
	assert_int_equal(rename(path, old), 0);
	log_msg(LOG_INFO, NULL, "still the old file");
	assert_int_equal(log_reopen(), 0);
	log_msg(LOG_INFO, NULL, "after rotation");
	log_close_file();
	assert_int_equal(log_reopen(), 0);   /* stderr: nothing to reopen */
	a = slurp(old);
	b = slurp(path);
	assert_non_null(strstr(a, "before rotation"));
	assert_non_null(strstr(a, "still the old file"));
	assert_null(strstr(a, "after rotation"));
	assert_non_null(strstr(b, "reopened"));
	assert_non_null(strstr(b, "after rotation"));
	assert_null(strstr(b, "before"));
	free(a);
	free(b);
	assert_int_equal(symlink(old, link), 0);
	assert_int_equal(log_open_file(link, 0, 0, 0, err, sizeof err), -1);
	assert_non_null(strstr(err, "link.log"));
	unlink(link);
	unlink(old);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_format_and_filter),
		cmocka_unit_test(test_json_format_escapes),
		cmocka_unit_test(test_control_and_separators_escaped),
		cmocka_unit_test(test_long_lines_cut_whole),
		cmocka_unit_test(test_level_names),
		cmocka_unit_test(test_json_fields_typed),
		cmocka_unit_test(test_text_fields),
		cmocka_unit_test(test_journal_priority_prefix),
		cmocka_unit_test(test_limited_counts),
		cmocka_unit_test(test_reopen_after_rename),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
