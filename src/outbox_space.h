/*
 * outbox_space.h — draining on a full disk: a reserve of space in data_dir
 * that only the router can give back, and the "full" state of intake.
 *
 * The problem: when data_dir's file system fills, every SQLite write fails,
 * the delivery thread's included — and delivery is what frees space. So at
 * start-up data_dir/outbox.reserve is allocated (outbox_reserve bytes,
 * posix_fallocate: real blocks, not a sparse file). When the disk runs low
 * (free space under a quarter of the reserve, or any write of the outbox
 * failing with SQLITE_FULL), the router enters the full state: the reserve
 * file is deleted, so its space is free again, and intake answers 503 (E-goi
 * keeps the batches and retries) without touching the database, so only
 * delivery writes into the freed space: it keeps claiming, completing and
 * deleting entries, and gives freed pages back to the file system
 * (outbox_release_space). When free space is back to twice the reserve, the
 * reserve is allocated again and intake resumes, without a restart.
 *
 * Threads: process-wide state behind a mutex; every function may be called
 * from any thread.
 */
#ifndef EGOI_OUTBOX_SPACE_H
#define EGOI_OUTBOX_SPACE_H

#include <stddef.h>

/*
 * Starts watching data_dir (which must exist) with a reserve of reserve
 * bytes (0: no reserve file, the full state still works). Allocates the
 * reserve unless space is already low (then starts in the full state).
 * Returns 0, or -1 with err set (data_dir unusable).
 */
int outbox_space_start(const char *data_dir, size_t reserve, char *err, size_t errlen);

/* Forgets the state (the reserve file stays for the next start). */
void outbox_space_stop(void);

/*
 * For intake, before a group transaction: 1 when it may write; 0 in the
 * full state, with why (a line for the 503 and the log) set. May enter the
 * full state (space low) or leave it (space back, reserve allocated again).
 */
int outbox_space_intake_ok(char *why, size_t len);

/* A write of the outbox failed with SQLITE_FULL: enter the full state. */
void outbox_space_exhausted(void);

/* 1 while in the full state. */
int outbox_space_full(void);

#endif
