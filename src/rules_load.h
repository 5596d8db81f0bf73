/*
 * rules_load.h — the rules as router.conf configures them: the Lua limits
 * and names a state is built with, and one generation read and compiled
 * once before it is published (start-up, SIGHUP, `check`).
 *
 * Threads: no state of its own; rules_load_checked runs in the thread that
 * calls it (main), with the Lua state it builds freed before it returns.
 */
#ifndef EGOI_RULES_LOAD_H
#define EGOI_RULES_LOAD_H

#include <stddef.h>

#include "rules.h"
#include "rules_source.h"

struct config;

/* Fills opt from cfg's rules keys (rules, lua_*, rules_env, the forward
 * limits); every other member is zeroed. Pointers are into cfg. */
void rules_load_options(const struct config *cfg, struct rules_options *opt);

/*
 * Reads cfg's rules file as generation `generation` and compiles that text
 * (init() included) as every worker will, recording the modules it
 * requires into the generation. Returns the source (one reference, the
 * caller's), or NULL with err set (file:line for the rules).
 */
struct rules_source *rules_load_checked(const struct config *cfg, unsigned long generation,
					char *err, size_t errlen);

#endif
