/*
 * metrics_process.h — what /metrics says about the process itself, in the
 * names every Prometheus client library uses, so stock dashboards and
 * alerts work: egoi_router_build_info{version} 1, process_start_time_seconds,
 * process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds and process_max_fds.
 *
 * Read from /proc/self (stat, fd/) and /proc/stat (boot time) at each
 * scrape; nothing is kept between scrapes. A value that cannot be read is
 * left out of the page rather than reported as 0.
 *
 * Threads: every function may be called from any thread (no shared state).
 */
#ifndef EGOI_METRICS_PROCESS_H
#define EGOI_METRICS_PROCESS_H

struct util_buf;

struct metrics_process {
	double start_time_s;         /* unix seconds; < 0 unknown */
	double cpu_s;                /* user + system CPU seconds; < 0 unknown */
	double resident_bytes;       /* < 0 unknown */
	double virtual_bytes;        /* < 0 unknown */
	long open_fds;               /* -1 unknown */
	double max_fds;              /* soft RLIMIT_NOFILE; < 0 unknown */
};

/*
 * Parses the text of /proc/PID/stat (whose second field, the command name,
 * may hold spaces and parentheses) into the CPU, memory and start time
 * fields of out. ticks: clock ticks per second; page: bytes per page;
 * boot_time: unix seconds of the boot (/proc/stat btime). 0, or -1 when the
 * text is not a stat line (out's fields are then -1).
 */
int metrics_process_parse_stat(const char *text, long ticks, long page, double boot_time,
			       struct metrics_process *out);

/* Reads every field for this process. 0 when all were read, -1 when some
 * are unknown (those stay < 0). */
int metrics_process_read(struct metrics_process *out);

/* Appends build_info and the process_* families to b (text format 0.0.4). */
void metrics_process_render(struct util_buf *b);

#endif
