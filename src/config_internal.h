/*
 * config_internal.h — shared by the parts of the config module, not a public
 * interface: config_keys.c holds the key table, config.c parses and
 * validates against it, config_print.c writes router.conf.example and the
 * --help key list from it.
 *
 * Threads: everything here is read-only data.
 */
#ifndef EGOI_CONFIG_INTERNAL_H
#define EGOI_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config.h"

enum cfg_type {
	CFG_STRING,     /* char *, any text; `prefix` if set must start it */
	CFG_PATH,       /* char *, a file or directory name */
	CFG_ENUM,       /* char *, one of `choices` */
	CFG_INT,        /* long in [min, max] */
	CFG_COUNT,      /* size_t in [min, max] */
	CFG_DURATION,   /* long milliseconds in [min, max] */
	CFG_SIZE,       /* size_t bytes in [min, max] */
	CFG_CIDRS,      /* char *, CIDR list, stored as "a/n,b/m" */
	CFG_LOG_LEVEL,  /* int, enum log_level */
	CFG_LOG_FORMAT, /* int, 1 = json */
	CFG_SECRET,     /* char *, never echoed; `prefix` + base64 if prefix set */
};

struct cfg_key {
	const char *name;
	enum cfg_type type;
	const char *def;            /* as written in the file; NULL = not set */
	const char *example;        /* if set: an active line in the example file */
	const char *sample;         /* commented-out line for keys without default */
	const char *required;       /* if set: the key must appear; hint for the error */
	const char *prefix;         /* CFG_STRING / CFG_SECRET: required start */
	const char *const *choices; /* CFG_ENUM */
	long long min, max;         /* numeric types, in the stored unit */
	size_t offset;
	int live;                   /* 1: SIGHUP changes it for new requests; 0: needs a restart */
	const char *help;           /* one paragraph; wrapped in the example file */
};

/* Units the table and the parsers share, in the stored unit (ms, bytes). */
#define CFG_MS_HOUR (3600LL * 1000)
#define CFG_MIB (1024LL * 1024)
#define CFG_GIB (1024LL * CFG_MIB)

/*
 * Number of keys. A constant so that per-key arrays need no allocation;
 * config_keys.c checks at compile time that it matches the table.
 */
#define CONFIG_NKEYS ((size_t)46)

/* Every key, in the order of the example file and --help. */
extern const struct cfg_key config_keys[];

/*
 * config_value.c: the value of key k in val, checked by its type. Each
 * failure writes a message naming the key into why (never a secret's
 * value) and returns -1.
 */
__attribute__((format(printf, 3, 4)))
void config_set_err(char *buf, size_t len, const char *fmt, ...);
/* Cuts the blanks around s in place; returns the first non-blank. */
char *config_trim(char *s);
/* A CFG_INT, CFG_COUNT, CFG_DURATION or CFG_SIZE value in its stored unit. */
int config_value_number(const struct cfg_key *k, const char *val, long long *out, char *why,
			size_t whylen);
/* A CFG_CIDRS list → civetweb's ACL form, malloc'd (the caller frees); NULL on error. */
char *config_value_cidrs(const struct cfg_key *k, const char *val, char *why, size_t whylen);
/* A string-typed value: enum choices, prefix, endpoint, name list, secret form. */
int config_value_check(const struct cfg_key *k, const char *val, char *why, size_t whylen);

#endif
