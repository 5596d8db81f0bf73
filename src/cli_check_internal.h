/*
 * cli_check_internal.h — the parts of `egoi-router check` (cli_check.h)
 * shared by its files: cli_check.c (the order, config, certificate, user,
 * outbox, rules), cli_check_listen.c (listen specs), cli_check_dirs.c
 * (data_dir and output_dir as the daemon's user, in a child process).
 *
 * Threads: main thread (and the child, which is single-threaded).
 */
#ifndef EGOI_CLI_CHECK_INTERNAL_H
#define EGOI_CLI_CHECK_INTERNAL_H

#include "config.h"
#include "privs.h"

/* Prints "ok  WHAT DETAIL" or "FAIL WHAT DETAIL" on stdout. */
__attribute__((format(printf, 3, 4)))
void cli_check_line(int ok, const char *what, const char *fmt, ...);

/* One line per listen spec; *tls_ports counts the 's' ones. 0, or -1 when one failed. */
int cli_check_listen(const char *listen, int *tls_ports);

/*
 * data_dir and output_dir, checked in a child that has dropped to u (when
 * u->drop) the way civetweb drops. 0 all ok, -1 a line failed, -2 the
 * child could not be started (with a message on stderr).
 */
int cli_check_dirs(const struct config *cfg, const struct privs_user *u);

#endif
