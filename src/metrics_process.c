/*
 * metrics_process.c — the process_* metrics and build_info (see
 * metrics_process.h).
 *
 * /proc/self/stat fields (proc(5)), counted from 1: 2 comm in parentheses,
 * 14 utime and 15 stime in clock ticks, 22 starttime in clock ticks after
 * boot, 23 vsize in bytes, 24 rss in pages. The command name can contain
 * ") " itself, so fields are counted from the last ')'.
 */
#include "metrics_process.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util_buf.h"
#include "version.h"

/* Fields 3.. of stat after the comm; index of each wanted one in that list. */
#define MP_FIELD(n) ((n) - 3)

static void metrics_process_unknown(struct metrics_process *out)
{
	out->start_time_s = -1;
	out->cpu_s = -1;
	out->resident_bytes = -1;
	out->virtual_bytes = -1;
	out->open_fds = -1;
	out->max_fds = -1;
}

int metrics_process_parse_stat(const char *text, long ticks, long page, double boot_time,
			       struct metrics_process *out)
{
	unsigned long long f[MP_FIELD(24) + 1];
	const char *p = text ? strrchr(text, ')') : NULL;
	int n = 0;

	out->start_time_s = out->cpu_s = out->resident_bytes = out->virtual_bytes = -1;
	if (!p || ticks <= 0 || page <= 0)
		return -1;
	p++;
	/* field 3 (state) is a letter: skip it, then read numbers */
	while (*p == ' ')
		p++;
	if (!*p)
		return -1;
	p++;
	f[n++] = 0;
	while (n <= MP_FIELD(24)) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(p, &end, 10);  /* some fields (priority, nice) may be negative */
		if (end == p || errno)
			return -1;
		f[n++] = (unsigned long long)(v < 0 ? 0 : v);
		p = end;
	}
	out->cpu_s = (double)(f[MP_FIELD(14)] + f[MP_FIELD(15)]) / (double)ticks;
	out->virtual_bytes = (double)f[MP_FIELD(23)];
	out->resident_bytes = (double)f[MP_FIELD(24)] * (double)page;
	if (boot_time > 0)
		out->start_time_s = boot_time + (double)f[MP_FIELD(22)] / (double)ticks;
	return 0;
}

/* Reads a small /proc file whole; NUL-terminated, 0 or -1. */
static int metrics_process_slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n > 0 ? 0 : -1;
}

/* The "btime" line of /proc/stat: unix seconds of the boot, or -1. */
static double metrics_process_boot_time(void)
{
	char line[256];
	double t = -1;
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "btime ", 6) == 0) {
			t = strtod(line + 6, NULL);
			break;
		}
	fclose(f);
	return t;
}

/* Entries of /proc/self/fd, not counting the one reading them; -1 unknown. */
static long metrics_process_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;
	int self;

	if (!d)
		return -1;
	self = dirfd(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != self)
			n++;
	closedir(d);
	return n;
}

int metrics_process_read(struct metrics_process *out)
{
	char stat[1024];
	struct rlimit rl;
	int rc = 0;

	metrics_process_unknown(out);
	if (metrics_process_slurp("/proc/self/stat", stat, sizeof stat) < 0 ||
	    metrics_process_parse_stat(stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE),
				       metrics_process_boot_time(), out) < 0)
		rc = -1;
	out->open_fds = metrics_process_count_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		out->max_fds = rl.rlim_cur == RLIM_INFINITY ? 1e300 : (double)rl.rlim_cur;
	if (out->start_time_s < 0 || out->open_fds < 0 || out->max_fds < 0)
		rc = -1;
	return rc;
}

static void metrics_process_gauge(struct util_buf *b, const char *name, const char *type,
				  const char *help, double v)
{
	if (v < 0)
		return;
	util_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
			name, v);
}

void metrics_process_render(struct util_buf *b)
{
	struct metrics_process p;

	util_buf_printf(b, "# HELP egoi_router_build_info The running version; always 1.\n"
			   "# TYPE egoi_router_build_info gauge\n"
			   "egoi_router_build_info{version=\"%s\"} 1\n", EGOI_ROUTER_VERSION);
	(void)metrics_process_read(&p);  /* what is unknown is left out */
	metrics_process_gauge(b, "process_start_time_seconds", "gauge",
			      "Start time of the process since unix epoch in seconds.",
			      p.start_time_s);
	metrics_process_gauge(b, "process_cpu_seconds_total", "counter",
			      "Total user and system CPU time spent in seconds.", p.cpu_s);
	metrics_process_gauge(b, "process_resident_memory_bytes", "gauge",
			      "Resident memory size in bytes.", p.resident_bytes);
	metrics_process_gauge(b, "process_virtual_memory_bytes", "gauge",
			      "Virtual memory size in bytes.", p.virtual_bytes);
	metrics_process_gauge(b, "process_open_fds", "gauge", "Number of open file descriptors.",
			      (double)p.open_fds);
	metrics_process_gauge(b, "process_max_fds", "gauge",
			      "Maximum number of open file descriptors.", p.max_fds);
}
