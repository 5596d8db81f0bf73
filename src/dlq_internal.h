/*
 * dlq_internal.h — shared by the parts of the dlq command, not a public
 * interface: dlq.c parses the options, opens config and outbox, lists and
 * purges, and calls dlq_replay.c to replay; dlq_replay.c needs nothing of
 * dlq.c (both print through json_out.h).
 *
 * Threads: the main thread only.
 */
#ifndef EGOI_DLQ_INTERNAL_H
#define EGOI_DLQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "exit_codes.h"

struct config;
struct outbox;

/* Options, as bits: which ones were given, which ones a subcommand accepts. */
enum {
	OPT_CONF = 1 << 0, OPT_KIND = 1 << 1, OPT_LIMIT = 1 << 2, OPT_PAYLOAD = 1 << 3,
	OPT_ID = 1 << 4, OPT_ALL = 1 << 5, OPT_REPLAYED = 1 << 6, OPT_OLDER = 1 << 7,
};

#define DLQ_MAX_IDS 1000

struct dlq_opts {
	unsigned seen;               /* OPT_* given */
	const char *conf;            /* -c, default router.conf */
	const char *kind;            /* --kind, validated; NULL = any */
	long limit;                  /* --limit, 0 = none */
	int64_t ids[DLQ_MAX_IDS];    /* --id, in the order given */
	size_t nids;
	long older_ms;               /* --older-than */
};

/* `dlq replay` on an open config and outbox; returns an exit code. */
int dlq_replay(const struct dlq_opts *o, struct config *cfg, struct outbox *ob);

#endif
