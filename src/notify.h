/*
 * notify.h — tells systemd (Type=notify) where the daemon is in its life:
 * ready to serve, reloading, stopping, with a STATUS= line for
 * `systemctl status`.
 *
 * A thin layer over sd_notify(3) from libsystemd: when NOTIFY_SOCKET is not
 * set (started by hand, by the tests, by another supervisor) every call does
 * nothing and returns 0. The socket is opened per message, so the messages
 * sent after the drop to run_as_user need NOTIFY_SOCKET writable by that
 * user (systemd's /run/systemd/notify is); systemd accepts them from the
 * main PID, which every thread of the process shares (NotifyAccess=main).
 *
 * A failed send is logged at warn and otherwise ignored: the daemon serves
 * whether or not its supervisor heard it.
 *
 * Threads: main thread only (start-up, the sigwait loop); sd_notify itself
 * keeps no state.
 */
#ifndef EGOI_NOTIFY_H
#define EGOI_NOTIFY_H

/* READY=1 with STATUS=listening on LISTEN: listeners, outbox and rules are
 * up (after start-up, and again after a reload). */
int notify_ready(const char *listen);

/* RELOADING=1 with MONOTONIC_USEC= (the CLOCK_MONOTONIC time of the reload,
 * which systemd 253 and later match against its own ExecReload time). */
int notify_reloading(void);

/* STOPPING=1: a stop has begun (draining). */
int notify_stopping(void);

#endif
