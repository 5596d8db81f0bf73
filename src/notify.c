/*
 * notify.c — sd_notify messages for systemd (notify.h).
 */
#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

/* Sends one message (lines separated by '\n'); 0, or the negative errno
 * sd_notify returned, logged. */
static int notify_send(const char *msg)
{
	int rc = sd_notify(0, msg);

	if (rc < 0) {
		log_msg(LOG_WARN, NULL, "systemd notify: cannot send %.*s: %s",
			(int)strcspn(msg, "\n"), msg, strerror(-rc));
		return rc;
	}
	return 0;
}

int notify_ready(const char *listen)
{
	char msg[512];

	snprintf(msg, sizeof msg, "READY=1\nSTATUS=listening on %s", listen ? listen : "?");
	return notify_send(msg);
}

int notify_reloading(void)
{
	struct timespec ts;
	char msg[128];

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return notify_send("RELOADING=1\nSTATUS=reloading");
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	return notify_send(msg);
}

int notify_stopping(void)
{
	return notify_send("STOPPING=1\nSTATUS=stopping: draining");
}
