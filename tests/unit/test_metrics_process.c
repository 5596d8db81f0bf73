/*
 * test_metrics_process.c — the process_* metrics: a stat line with a
 * hostile command name parses by its fields; this process's values are
 * plausible; opening a file raises process_open_fds by one; the page
 * carries build_info and every process_* family with HELP and TYPE.
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
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "metrics_process.h"
#include "version.h"

/* Fields 1-24 of proc(5)'s stat, with a command name that holds ") (" and digits. */
static const char stat_line[] =
	"4242 (we) (ird 7) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
	"250 150 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0\n";

static void test_parse_stat(void **state)
{
	struct metrics_process p;

	(void)state;
	assert_int_equal(metrics_process_parse_stat(stat_line, 100, 4096, 1700000000.0, &p), 0);
	assert_true(p.cpu_s > 3.999 && p.cpu_s < 4.001);              /* (250 + 150) / 100 */
	assert_true(p.start_time_s > 1700000123.44 && p.start_time_s < 1700000123.46);
	assert_true(p.virtual_bytes == 104857600.0);
	assert_true(p.resident_bytes == 2560.0 * 4096);
	assert_int_equal(metrics_process_parse_stat("garbage", 100, 4096, 1.0, &p), -1);
	assert_int_equal(metrics_process_parse_stat("1 (x) S 1 2", 100, 4096, 1.0, &p), -1);
	assert_true(p.cpu_s < 0);
}

static void test_read_self(void **state)
{
	struct metrics_process p;
	double now = (double)time(NULL);

	(void)state;
	assert_int_equal(metrics_process_read(&p), 0);
	assert_true(p.start_time_s > now - 3600 && p.start_time_s <= now + 1);
	assert_true(p.cpu_s >= 0);
	assert_true(p.resident_bytes > 100 * 1024);
	assert_true(p.virtual_bytes >= p.resident_bytes);
	assert_true(p.open_fds >= 3);
	assert_true(p.max_fds >= (double)p.open_fds);
}

static void test_open_fds_counts_a_new_file(void **state)
{
	struct metrics_process a, b;
	int fd;

	(void)state;
	assert_int_equal(metrics_process_read(&a), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(metrics_process_read(&b), 0);
	assert_int_equal(b.open_fds, a.open_fds + 1);
	close(fd);
	assert_int_equal(metrics_process_read(&b), 0);
	assert_int_equal(b.open_fds, a.open_fds);
}

/* The value of the line starting with series + ' ', or -1. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');

		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
		if (!end)
			break;
		line = end + 1;
	}
	return -1;
}

static void test_page_has_every_family(void **state)
{
	static const char *const families[] = {
		"process_start_time_seconds", "process_cpu_seconds_total",
		"process_resident_memory_bytes", "process_virtual_memory_bytes",
		"process_open_fds", "process_max_fds",
	};
	char *text = NULL, series[128], type[160];
	size_t len = 0;

	(void)state;
	metrics_reset();
	assert_int_equal(metrics_render(&text, &len), 0);
	snprintf(series, sizeof series, "egoi_router_build_info{version=\"%s\"}",
		 EGOI_ROUTER_VERSION);
	assert_true(sample(text, series) == 1.0);
	assert_non_null(strstr(text, "# TYPE egoi_router_build_info gauge\n"));
	for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
		snprintf(type, sizeof type, "# TYPE %s %s\n", families[i],
			 strstr(families[i], "_total") ? "counter" : "gauge");
		if (!strstr(text, type))
			fail_msg("no '%s'", type);
		assert_true(sample(text, families[i]) >= 0);
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_stat),
		cmocka_unit_test(test_read_self),
		cmocka_unit_test(test_open_fds_counts_a_new_file),
		cmocka_unit_test(test_page_has_every_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
