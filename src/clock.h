/*
 * clock.h — the two clocks the daemon reads, as seconds in a double.
 *
 * clock_wall: unix time, for what is stored or shown (received_at,
 * created_at, next_attempt_at, now() in rules). clock_mono: for deadlines
 * and durations, immune to the wall clock being set. clock_mono_ns: the
 * same monotonic clock in integer nanoseconds, for deadlines compared often
 * (the rules' time limit).
 */
#ifndef EGOI_CLOCK_H
#define EGOI_CLOCK_H

#include <time.h>

static inline double clock_seconds(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return id == CLOCK_REALTIME ? (double)time(NULL) : 0.0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double clock_wall(void)
{
	return clock_seconds(CLOCK_REALTIME);
}

static inline double clock_mono(void)
{
	return clock_seconds(CLOCK_MONOTONIC);
}

static inline long long clock_mono_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
