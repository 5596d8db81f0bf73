/*
 * config.h — router.conf: `key = value` lines, `#` comments.
 *
 * A single key table in config.c drives parsing, validation, defaults,
 * router.conf.example (config_print_example) and the key list in --help.
 * A loaded struct config is never changed afterwards. SIGHUP loads a new
 * one and publishes it as a snapshot requests read (config_reload.h); the
 * key table says which keys may change that way and which need a restart.
 * Relative paths are taken relative to the working directory.
 */
#ifndef EGOI_CONFIG_H
#define EGOI_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct config {
	char *listen;                /* civetweb listening_ports, e.g. "127.0.0.1:8443s" */
	char *tls_certificate;       /* PEM: chain (+ key when tls_key is NULL) */
	char *tls_key;               /* PEM key, NULL = in tls_certificate */
	char *tls_min_version;       /* "1.2" or "1.3" */
	char *tls_client_ca;         /* NULL = no client certificates */
	char *endpoint;              /* path E-goi posts to, starts with '/' */
	char *auth_token;            /* secret (env: resolved); NULL when auth_disabled */
	int auth_disabled;           /* auth_token = none */
	unsigned char auth_token_sha256[32];  /* of auth_token (config_load, config_copy): the
					       * token check hashes only what a client presents */
	char *allow_from;            /* CIDR list, NULL = any */
	char *rules_path;            /* rules file (config key `rules`) */
	char *data_dir;              /* outbox database and state */
	char *outbox;                /* "sqlite" or a postgresql:// URI (secret: may hold a password) */
	size_t outbox_reserve;       /* bytes kept free for delivery on a full disk */
	char *output_dir;            /* the only place write() may write under */
	char *write_sync;            /* "none" or "batch" (fdatasync lines before the 200) */
	long threads;                /* HTTP worker threads */
	size_t max_body;             /* bytes */
	size_t max_events;           /* events per batch */
	size_t max_forward_body;     /* bytes of one forward() body */
	size_t max_batch_forward_bytes; /* bytes all forward() decisions of a batch may store */
	long max_hops;               /* X-Router-Hop at which intake answers 508 */
	long forward_timeout_ms;
	long forward_max_attempts;
	long forward_max_age_ms;
	long forward_backoff_max_ms;
	long forward_concurrency;
	char *forward_signing_secret; /* "whsec_..." or NULL */
	long lua_instruction_limit;  /* per event, 0 = unlimited */
	size_t lua_memory_limit;     /* bytes per Lua state, 0 = unlimited */
	long lua_states;             /* Lua states shared by the workers, 0 = 2 per core */
	long lua_time_limit_ms;      /* per event (and init), 0 = unlimited */
	char *rules_env;             /* "NAME, NAME": what env() may read; NULL = nothing */
	int log_level;               /* enum log_level */
	int log_json;                /* log_format = json */
	char *log_file;              /* NULL = stderr (log.h) */
	char *run_as_user;           /* NULL = keep the current user */
	long max_conns_per_address;  /* open TLS connections per client address, 0 = no cap */
	size_t min_body_rate;        /* bytes/s a body must keep after its first 2 s, 0 = off */
	char *rate_limit;            /* "N/s" requests per address to the endpoint, NULL = off */
	long rate_limit_burst;       /* requests above the rate at once, 0 = N */
	char *rate_limit_exempt;     /* CIDR list exempt from rate_limit and the cap, NULL = none */
	char *egoi_api_key;          /* Marketing API key (`egoi` commands), NULL = $EGOI_API_KEY */
	char *egoi_api_base;         /* "https://api.egoiapp.com" */
	long egoi_api_timeout_ms;    /* one API request */
	char *public_url;            /* what E-goi calls (without the token), NULL = not set */
	char *admin_listen;          /* plain-HTTP listener for /metrics, /healthz, /readyz; NULL = none */
	char *admin_token;           /* bearer secret for /metrics there; NULL = open */
};

/* Fills every field with its default (strings are heap copies). */
int config_defaults(struct config *cfg);

/*
 * Loads path over the defaults. On failure returns -1 with err holding
 * "path:line: reason" (or "path: reason" when the file cannot be read),
 * and cfg holds nothing that needs freeing beyond config_free.
 * `env:NAME` values are resolved here; an unset variable is an error.
 * auth_token is required (a value or `none`). A line longer than
 * CONFIG_LINE_MAX bytes or a file larger than CONFIG_FILE_MAX is an error
 * found as soon as that many bytes are read (a device such as /dev/zero
 * fails at once).
 */
#define CONFIG_LINE_MAX 65536
#define CONFIG_FILE_MAX (1024 * 1024)
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Frees every string of cfg; cfg may be partly filled or zeroed. */
void config_free(struct config *cfg);

/* Writes a commented example file that documents every key (router.conf.example). */
void config_print_example(FILE *out);

/* Writes one line per key: name, default, meaning (for --help). */
void config_print_keys(FILE *out);

/* Parses a duration ("250ms", "10s", "5m", "24h"; bare number = seconds) into ms. */
int config_parse_duration_ms(const char *s, long *out_ms);

/* Parses a size ("512", "64k", "10M", "1G") into bytes. */
int config_parse_size(const char *s, size_t *out);

#endif
