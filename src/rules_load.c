/*
 * rules_load.c — see rules_load.h.
 */
#include "rules_load.h"

#include <string.h>

#include "config.h"

void rules_load_options(const struct config *cfg, struct rules_options *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->path = cfg->rules_path;
	opt->instruction_limit = cfg->lua_instruction_limit;
	opt->memory_limit = cfg->lua_memory_limit;
	opt->time_limit_ms = cfg->lua_time_limit_ms;
	opt->env_names = cfg->rules_env;
	opt->max_forward_body = cfg->max_forward_body;
	opt->max_batch_forward = cfg->max_batch_forward_bytes;
}

struct rules_source *rules_load_checked(const struct config *cfg, unsigned long generation,
					char *err, size_t errlen)
{
	struct rules_options opt;
	struct rules_source *src;
	struct rules *r;

	src = rules_source_read(cfg->rules_path, generation, err, errlen);
	if (!src)
		return NULL;
	rules_load_options(cfg, &opt);
	opt.source = src->text;
	opt.source_len = src->len;
	opt.record = &src->modules;   /* what it requires belongs to this generation */
	r = rules_new(&opt, err, errlen);
	if (!r) {
		rules_source_unref(src);
		return NULL;
	}
	rules_free(r);
	return src;
}
