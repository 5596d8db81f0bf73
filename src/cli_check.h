/*
 * cli_check.h — `egoi-router check [-c FILE]`: a preflight of what `run`
 * needs, without starting it (systemd's ExecStartPre). It prints one line
 * per thing checked, "ok  WHAT DETAIL" on stdout or "FAIL WHAT DETAIL" on
 * stderr, in order:
 * the config file, each listen spec, the TLS certificate and key (loaded
 * as the listener loads them; their expiry), run_as_user, data_dir and
 * output_dir (creatable and writable by the user the daemon will run as:
 * checked in a child process that has dropped to that user), the outbox
 * (opened as that user when it exists), and the rules (compiled, init()
 * included). Nothing is created: a directory that does not exist yet is
 * checked through its nearest existing parent.
 *
 * Exit codes (exit_codes.h): EXIT_OK when every line is ok, EXIT_INVALID
 * when one failed, EXIT_RUNTIME when the check itself could not run (fork).
 *
 * Threads: main thread; forks one child.
 */
#ifndef EGOI_CLI_CHECK_H
#define EGOI_CLI_CHECK_H

/* Checks the config at path; returns the exit code. */
int cli_check_run(const char *path);

#endif
