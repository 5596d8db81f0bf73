/*
 * config_keys.c — the table of router.conf keys (see config_internal.h):
 * name, type, default as it would be written in the file, range, offset into
 * struct config, help. config.c parses and validates with it; config_print.c
 * writes the example file and --help from it, so they cannot drift apart.
 *
 * Threads: read-only data.
 */
#include "config_internal.h"

#include <limits.h>
#include <stddef.h>

#define OFF(field) offsetof(struct config, field)

static const char *const tls_versions[] = { "1.2", "1.3", NULL };
static const char *const write_syncs[] = { "none", "batch", NULL };

const struct cfg_key config_keys[] = {
	{ .name = "listen", .type = CFG_STRING, .def = "8443s", .example = "127.0.0.1:8443s",
	  .offset = OFF(listen),
	  .help = "Where to listen, as a civetweb port list: PORT or ADDRESS:PORT, "
		  "comma-separated; an 's' suffix means TLS. 127.0.0.1:8443s binds one "
		  "address only." },
	{ .name = "tls_certificate", .type = CFG_PATH, .def = "certs/server.pem",
	  .example = "certs/server.pem", .offset = OFF(tls_certificate), .live = 1,
	  .help = "PEM file holding the certificate chain (leaf first), and its "
		  "private key unless tls_key is set. Re-read on SIGHUP." },
	{ .name = "tls_key", .type = CFG_PATH,
	  .sample = "/etc/letsencrypt/live/example.com/privkey.pem", .offset = OFF(tls_key),
	  .live = 1,
	  .help = "PEM file holding the private key, when it is not in tls_certificate "
		  "(certbot's privkey.pem beside fullchain.pem). Re-read on SIGHUP." },
	{ .name = "tls_min_version", .type = CFG_ENUM, .def = "1.2", .choices = tls_versions,
	  .offset = OFF(tls_min_version),
	  .help = "Oldest TLS version accepted: 1.2 or 1.3." },
	{ .name = "tls_client_ca", .type = CFG_PATH, .sample = "certs/client-ca.pem",
	  .offset = OFF(tls_client_ca),
	  .help = "If set, clients must present a certificate signed by this CA "
		  "(mutual TLS). Not set by default." },
	{ .name = "endpoint", .type = CFG_STRING, .def = "/hooks/egoi", .prefix = "/",
	  .offset = OFF(endpoint),
	  .help = "URL path E-goi posts webhook batches to; starts with '/'." },
	{ .name = "auth_token", .type = CFG_SECRET, .example = "env:EGOI_ROUTER_TOKEN",
	  .required = "set a secret, or 'none' to disable auth", .offset = OFF(auth_token),
	  .live = 1,
	  .help = "Required. The secret E-goi must send, as ?token=, an X-Router-Token "
		  "header or Authorization: Bearer. 'none' disables authentication "
		  "explicitly. Keep the secret out of this file with env:NAME." },
	{ .name = "allow_from", .type = CFG_CIDRS, .sample = "10.0.0.0/8, 192.0.2.7",
	  .offset = OFF(allow_from), .live = 1,
	  .help = "Comma-separated IPv4 CIDR allowlist; an address without /length "
		  "means that address alone. It covers every route (the endpoint, "
		  "/healthz, /readyz, /metrics) on the listeners of listen (not "
		  "admin_listen): a TLS connection from "
		  "another address is cut at the start of its handshake, before TLS "
		  "reads a byte; a request from one (plain HTTP, or a connection "
		  "opened before a reload left it out) is answered 403. IPv6 entries "
		  "are refused (this civetweb build has no IPv6). Not set: any "
		  "address. Changes on SIGHUP." },
	{ .name = "rules", .type = CFG_PATH, .def = "rules/example.lua",
	  .example = "rules/example.lua", .offset = OFF(rules_path), .live = 1,
	  .help = "Lua rule script; it must define route(event, meta)." },
	{ .name = "data_dir", .type = CFG_PATH, .def = "var", .example = "var",
	  .offset = OFF(data_dir),
	  .help = "Directory for the outbox database, dead letters and state." },
	{ .name = "outbox", .type = CFG_SECRET, .def = "sqlite",
	  .sample = "env:EGOI_ROUTER_OUTBOX", .offset = OFF(outbox),
	  .help = "Where the outbox lives: sqlite (data_dir/outbox.db, one router) or "
		  "a PostgreSQL connection URI, postgresql://user:password@host:port/db, "
		  "that several routers share (see Running several routers in the "
		  "README). The password is never logged; keep it out of this file with "
		  "env:NAME." },
	{ .name = "outbox_reserve", .type = CFG_SIZE, .def = "32M", .min = 0, .max = 64 * CFG_GIB,
	  .offset = OFF(outbox_reserve),
	  .help = "Space kept in data_dir (the file outbox.reserve) so that delivery "
		  "can go on when the disk fills: it is released when free space runs "
		  "low, intake then answers 503 until twice this much is free again. "
		  "0 keeps no reserve." },
	{ .name = "output_dir", .type = CFG_PATH, .def = "var/out", .example = "var/out",
	  .offset = OFF(output_dir),
	  .help = "The only directory write() in rules may write under." },
	{ .name = "write_sync", .type = CFG_ENUM, .def = "none", .choices = write_syncs,
	  .offset = OFF(write_sync),
	  .help = "When write() lines reach the disk. none: they are in the kernel's "
		  "page cache when the batch is answered 200, so they survive a crash "
		  "of the daemon but a power cut or OS crash may lose the last "
		  "seconds of them. batch: every file a batch wrote to is fdatasync'ed "
		  "(and a new file's directories fsync'ed) before its 200, shared "
		  "with the outbox's group commit (one flush per file per group), so "
		  "they survive a power cut too." },
	{ .name = "threads", .type = CFG_INT, .def = "64", .min = 1, .max = 1024,
	  .offset = OFF(threads),
	  .help = "HTTP worker threads (1-1024). civetweb holds one per open "
		  "connection, so this caps concurrent connections; each thread's Lua "
		  "state is created on first use." },
	{ .name = "max_body", .type = CFG_SIZE, .def = "10M", .min = 1, .max = CFG_GIB,
	  .offset = OFF(max_body), .live = 1,
	  .help = "Largest request body accepted (up to 1G); larger bodies get 413." },
	{ .name = "max_events", .type = CFG_COUNT, .def = "10000", .min = 1, .max = 1000000,
	  .offset = OFF(max_events), .live = 1,
	  .help = "Most events accepted in one batch (up to 1000000); larger batches "
		  "get 413." },
	{ .name = "max_forward_body", .type = CFG_SIZE, .def = "1M", .min = 1, .max = CFG_GIB,
	  .offset = OFF(max_forward_body), .live = 1,
	  .help = "Largest body one forward() may give (opts.body, a string or the JSON "
		  "of a table; up to 1G); a larger one is a rule error. The default "
		  "body (the batch's events) is bounded by max_body instead." },
	{ .name = "max_batch_forward_bytes", .type = CFG_SIZE, .def = "64M", .min = 1,
	  .max = 64 * CFG_GIB, .offset = OFF(max_batch_forward_bytes), .live = 1,
	  .help = "Most bytes the forwards of one batch may put in the outbox: bodies "
		  "(an event's bytes for each default forward) and headers. The event "
		  "whose forward() goes over it is a rule error. Keep it above "
		  "max_body times the destinations a batch goes to." },
	{ .name = "max_hops", .type = CFG_INT, .def = "3", .min = 1, .max = 100,
	  .offset = OFF(max_hops), .live = 1,
	  .help = "Forward loop guard: every forward carries X-Router-Hop (the incoming "
		  "count + 1), and a batch arriving with a count of max_hops or more is "
		  "answered 508 and counted in egoi_router_loops_refused_total." },
	{ .name = "forward_timeout", .type = CFG_DURATION, .def = "10s", .min = 1,
	  .max = CFG_MS_HOUR, .offset = OFF(forward_timeout_ms), .live = 1,
	  .help = "Time limit for one forward request (up to 1h)." },
	{ .name = "forward_max_attempts", .type = CFG_INT, .def = "0", .min = 0, .max = 1000000,
	  .offset = OFF(forward_max_attempts), .live = 1,
	  .help = "Delivery attempts after which a forward becomes a dead letter; 0 "
		  "(the default) means no limit, so only forward_max_age ends "
		  "retrying. A limit makes an outage of a known length dead-letter "
		  "forwards sooner." },
	{ .name = "forward_max_age", .type = CFG_DURATION, .def = "24h", .min = 1000,
	  .max = 720 * CFG_MS_HOUR, .offset = OFF(forward_max_age_ms), .live = 1,
	  .help = "Age after which an undelivered forward becomes a dead letter "
		  "(1s to 720h): how long an outage may last before anything is "
		  "dead-lettered." },
	{ .name = "forward_backoff_max", .type = CFG_DURATION, .def = "10m", .min = 1000,
	  .max = CFG_MS_HOUR, .offset = OFF(forward_backoff_max_ms), .live = 1,
	  .help = "Longest wait between two attempts of one forward (1s to 1h); the "
		  "wait starts at up to 1 s and doubles per attempt, with full jitter. "
		  "Also bounds how long a failing destination's circuit stays open "
		  "(at most 60 s)." },
	{ .name = "forward_concurrency", .type = CFG_INT, .def = "16", .min = 1, .max = 1024,
	  .offset = OFF(forward_concurrency), .live = 1,
	  .help = "Requests in flight at once per destination host." },
	{ .name = "forward_signing_secret", .type = CFG_SECRET, .prefix = "whsec_",
	  .sample = "env:EGOI_ROUTER_SIGNING_SECRET", .offset = OFF(forward_signing_secret), .live = 1,
	  .help = "If set, forwarded requests are signed as Standard Webhooks "
		  "specifies; the secret is whsec_ followed by base64. Not set by "
		  "default." },
	{ .name = "lua_instruction_limit", .type = CFG_INT, .def = "1000000", .min = 0,
	  .max = LONG_MAX, .offset = OFF(lua_instruction_limit), .live = 1,
	  .help = "Lua instructions one event may run before it counts as a rule "
		  "error; 0 means unlimited." },
	{ .name = "lua_memory_limit", .type = CFG_SIZE, .def = "64M", .min = 0,
	  .max = 64 * CFG_GIB, .offset = OFF(lua_memory_limit), .live = 1,
	  .help = "Memory one Lua state may use; 0 means unlimited." },
	{ .name = "lua_states", .type = CFG_INT, .def = "0", .min = 0, .max = 1024,
	  .offset = OFF(lua_states),
	  .help = "Lua states the worker threads share (0-1024): a worker borrows "
		  "one to parse and route a batch and gives it back before the "
		  "commit, so memory follows this count, not the connection count; "
		  "a batch waits while all are busy. 0 means two per CPU core (at "
		  "least 2), never more than threads. States are built when first "
		  "needed." },
	{ .name = "lua_time_limit", .type = CFG_DURATION, .def = "250ms", .min = 0,
	  .max = CFG_MS_HOUR, .offset = OFF(lua_time_limit_ms), .live = 1,
	  .help = "Wall-clock time one event's route() call (and init(), and the "
		  "rules file's own code) may take before it counts as a rule "
		  "error; it also covers time spent inside library functions "
		  "(pattern matching, string.rep, table.move, json.*), which are "
		  "refused when their cost could exceed the time left. 0 means "
		  "unlimited." },
	{ .name = "rules_env", .type = CFG_STRING, .example = "CRM_URL, SLACK_URL",
	  .offset = OFF(rules_env), .live = 1,
	  .help = "Comma-separated names of the environment variables env() may "
		  "read in rules; env() returns nil for any other name. Not set: "
		  "none, so the daemon's own secrets (auth_token = env:NAME) stay "
		  "out of reach. The example lists what rules/example.lua reads." },
	{ .name = "log_level", .type = CFG_LOG_LEVEL, .def = "info", .offset = OFF(log_level),
	  .live = 1,
	  .help = "Least severe messages logged: debug, info, warn or error." },
	{ .name = "log_format", .type = CFG_LOG_FORMAT, .def = "text", .offset = OFF(log_json),
	  .live = 1,
	  .help = "text (one line per message) or json (one JSON object per line)." },
	{ .name = "log_file", .type = CFG_PATH, .sample = "/var/log/egoi-router/router.log",
	  .offset = OFF(log_file),
	  .help = "If set, log lines are appended to this file (created 0640, given "
		  "to run_as_user) instead of stderr; SIGUSR1 reopens it (logrotate). "
		  "Not set by default." },
	{ .name = "run_as_user", .type = CFG_STRING, .sample = "egoi-router",
	  .offset = OFF(run_as_user),
	  .help = "If set, drop privileges to this user after binding the listening "
		  "ports. Not set by default." },
	{ .name = "max_connections_per_address", .type = CFG_INT, .def = "16", .min = 0,
	  .max = 1024, .offset = OFF(max_conns_per_address), .live = 1,
	  .help = "Most TLS connections one client address may hold open at once "
		  "(0-1024, 0 = no cap); more are cut at the start of their TLS "
		  "handshake, in microseconds, so idle or trickling connections "
		  "cannot take every worker thread. Addresses in rate_limit_exempt "
		  "are not capped. Plain-HTTP listeners are not capped." },
	{ .name = "min_body_rate", .type = CFG_SIZE, .def = "32K", .min = 0, .max = CFG_GIB,
	  .offset = OFF(min_body_rate), .live = 1,
	  .help = "Bytes per second a request body must keep up after its first 2 s "
		  "(0 = no minimum); a slower body is answered 408 and its connection "
		  "closed. The body deadline (10 s plus 1 s per 64 KiB) applies as "
		  "well." },
	{ .name = "rate_limit", .type = CFG_STRING, .sample = "50/s", .offset = OFF(rate_limit),
	  .live = 1,
	  .help = "Requests per second one client address may send to the endpoint, "
		  "as N/s (1 to 1000000); more are answered 429 with Retry-After "
		  "before the body is read. Not set by default: no limit." },
	{ .name = "rate_limit_burst", .type = CFG_INT, .def = "0", .min = 0, .max = 1000000,
	  .offset = OFF(rate_limit_burst), .live = 1,
	  .help = "Requests one address may send at once above rate_limit (a token "
		  "bucket of this size, refilled at the rate); 0 means one second's "
		  "worth, N." },
	{ .name = "rate_limit_exempt", .type = CFG_CIDRS, .def = "127.0.0.0/8",
	  .sample = "127.0.0.0/8, 192.0.2.0/24", .offset = OFF(rate_limit_exempt), .live = 1,
	  .help = "Comma-separated IPv4 CIDR list (E-goi's own addresses, a proxy in "
		  "front) exempt from rate_limit and max_connections_per_address. "
		  "Default 127.0.0.0/8: a client on this machine (a local proxy, a "
		  "benchmark) shares one address for all its connections; `none` "
		  "exempts nobody." },
	{ .name = "egoi_api_key", .type = CFG_SECRET, .sample = "env:EGOI_API_KEY",
	  .offset = OFF(egoi_api_key), .live = 1,
	  .help = "E-goi Marketing API key, for `egoi-router egoi` only (the daemon "
		  "never uses it). Not set: the egoi commands read the environment "
		  "variable EGOI_API_KEY. Keep it out of this file with env:NAME." },
	{ .name = "egoi_api_base", .type = CFG_STRING, .def = "https://api.egoiapp.com",
	  .offset = OFF(egoi_api_base), .live = 1,
	  .help = "Base URL of E-goi's Marketing API v3. It must be https; plain http "
		  "is accepted only for 127.0.0.1, ::1 or localhost (a local stand-in)." },
	{ .name = "egoi_api_timeout", .type = CFG_DURATION, .def = "70s", .min = 100,
	  .max = CFG_MS_HOUR, .offset = OFF(egoi_api_timeout_ms), .live = 1,
	  .help = "Time limit for one E-goi API request (E-goi itself gives a create "
		  "up to 60 s)." },
	{ .name = "public_url", .type = CFG_STRING, .sample = "https://hooks.example.com/hooks/egoi",
	  .offset = OFF(public_url), .live = 1,
	  .help = "The URL E-goi must call to reach this router's endpoint, without "
		  "the token: `egoi register` adds ?token= from auth_token, and `egoi "
		  "list` marks the webhooks pointing here. Not set by default." },
	{ .name = "admin_listen", .type = CFG_STRING, .sample = "127.0.0.1:9464",
	  .offset = OFF(admin_listen),
	  .help = "If set, /metrics, /healthz and /readyz are served here, over plain "
		  "HTTP, as PORT or ADDRESS:PORT (comma-separated), and the listeners "
		  "of listen serve the webhook endpoint alone (404 for anything "
		  "else). It has its own worker threads, so a flood of the public "
		  "port cannot starve it; allow_from, max_connections_per_address "
		  "and rate_limit do not apply to it: bind it to a loopback or "
		  "private address. Not set by default: those routes are on listen." },
	{ .name = "admin_token", .type = CFG_SECRET, .sample = "env:EGOI_ROUTER_ADMIN_TOKEN",
	  .offset = OFF(admin_token),
	  .help = "If set (needs admin_listen), /metrics on the admin listener wants "
		  "Authorization: Bearer with this secret (401 otherwise); /healthz "
		  "and /readyz stay open for probes. Not set: /metrics is open." },
};

_Static_assert(sizeof config_keys / sizeof config_keys[0] == CONFIG_NKEYS,
	       "CONFIG_NKEYS in config_internal.h must match the table");
