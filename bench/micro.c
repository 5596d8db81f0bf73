/*
 * bench/micro.c — the CPU path of one batch, in process: parse (batch_parse
 * through the Lua builder) → the rules engine's route() per event →
 * decisions, exactly as a worker runs it (pipeline_route, pipeline_end),
 * with no network, no outbox and no file written (a dry-run pipeline keeps
 * the decisions and commits nothing).
 *
 *   bench-micro RULES ROUNDS BATCH.json...
 *
 * Each round routes every batch once. One warm-up round runs first (it
 * builds the Lua state); the measured rounds run inside bench_micro_run,
 * which `make bench-micro` hands to callgrind's --toggle-collect, so the
 * instruction count covers exactly the routing of ROUNDS × events. It
 * prints the number of events routed in the measured rounds and a digest of
 * every decision of the warm-up round (kind, event, target, text), so two
 * builds can be checked to decide the same.
 *
 * Threads: one (the pipeline's owner).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "decisions.h"
#include "pipeline.h"

struct bench_body {
	char *text;
	size_t len;
};

/* FNV-1a over the decisions of one batch: what a change must not alter. */
static uint64_t bench_digest(uint64_t h, const struct decisions *d)
{
	for (size_t i = 0; i < d->count; i++) {
		const struct decision *it = &d->items[i];
		const char *parts[2] = { it->target, it->body };
		size_t lens[2] = { it->target ? strlen(it->target) : 0, it->body ? it->len : 0 };

		h = (h ^ (uint64_t)it->kind) * 1099511628211ULL;
		h = (h ^ (uint64_t)it->event) * 1099511628211ULL;
		for (int p = 0; p < 2; p++)
			for (size_t k = 0; k < lens[p]; k++)
				h = (h ^ (unsigned char)parts[p][k]) * 1099511628211ULL;
	}
	return h;
}

static int bench_read(const char *path, struct bench_body *b)
{
	FILE *f = fopen(path, "rb");
	long n;
	int rc = -1;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	b->text = malloc((size_t)n + 1);
	if (!b->text || fread(b->text, 1, (size_t)n, f) != (size_t)n)
		goto out;
	b->text[n] = '\0';
	b->len = (size_t)n;
	rc = 0;
out:
	if (f)
		fclose(f);
	return rc;
}

/* One pass over every body; returns the events routed, or -1. */
static long bench_round(struct pipeline *p, const struct bench_body *bodies, int nbodies,
			uint64_t *digest)
{
	struct pipeline_result res;
	long events = 0;

	for (int i = 0; i < nbodies; i++) {
		if (pipeline_route(p, bodies[i].text, bodies[i].len, 1767225600.0, "127.0.0.1",
				   "bench", &res) < 0) {
			fprintf(stderr, "bench-micro: batch %d: %d %s\n", i, res.http_status, res.error);
			pipeline_end(p);
			return -1;
		}
		events += (long)res.accepted;
		if (digest)
			*digest = bench_digest(*digest, &p->decisions);
		pipeline_end(p);
	}
	return events;
}

/* The measured part (callgrind --toggle-collect=bench_micro_run). */
__attribute__((noinline)) long bench_micro_run(struct pipeline *p, const struct bench_body *bodies,
					       int nbodies, long rounds);
__attribute__((noinline)) long bench_micro_run(struct pipeline *p, const struct bench_body *bodies,
					       int nbodies, long rounds)
{
	long events = 0, n;

	for (long r = 0; r < rounds; r++) {
		if ((n = bench_round(p, bodies, nbodies, NULL)) < 0)
			return -1;
		events += n;
	}
	return events;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct pipeline_shared sh;
	struct pipeline p;
	struct bench_body *bodies = NULL;
	uint64_t digest = 14695981039346656037ULL;
	long rounds, events;
	int nbodies = argc - 3, rc = 1;

	memset(&cfg, 0, sizeof cfg);
	memset(&sh, 0, sizeof sh);
	memset(&p, 0, sizeof p);
	if (argc < 4 || (rounds = strtol(argv[2], NULL, 10)) <= 0) {
		fprintf(stderr, "usage: bench-micro RULES ROUNDS BATCH.json...\n");
		return 2;
	}
	if (config_defaults(&cfg) != 0)
		goto out;
	free(cfg.rules_path);
	cfg.rules_path = strdup(argv[1]);
	bodies = calloc((size_t)nbodies, sizeof *bodies);
	if (!cfg.rules_path || !bodies)
		goto out;
	for (int i = 0; i < nbodies; i++) {
		if (bench_read(argv[3 + i], &bodies[i]) != 0) {
			fprintf(stderr, "bench-micro: cannot read %s\n", argv[3 + i]);
			goto out;
		}
	}
	sh.cfg = &cfg;
	rules_current_init(&sh.published);
	pipeline_init(&p, &sh);   /* no writer: a dry run, nothing committed */
	if (bench_round(&p, bodies, nbodies, &digest) < 0)
		goto out;
	events = bench_micro_run(&p, bodies, nbodies, rounds);
	if (events < 0)
		goto out;
	printf("events %ld\ndecisions_digest %016llx\n", events, (unsigned long long)digest);
	rc = 0;
out:
	pipeline_free(&p);
	rules_current_free(&sh.published);
	config_free(&cfg);
	for (int i = 0; bodies && i < nbodies; i++)
		free(bodies[i].text);
	free(bodies);
	return rc;
}
