/*
 * destination.h — what "one destination" means for delivery: the origin
 * scheme://host:port of a forward's URL (host lower-cased, default port
 * filled in), so https://A.example/x and https://a.example:443/y are one.
 *
 * Everything per destination hangs on this key: the outbox stores it with
 * each delivery (column dest, so claiming can go destination by
 * destination), and the delivery thread keys its in-flight limit, queue,
 * Retry-After pause and circuit by it. One definition serves both: the
 * outbox computes the column through the SQL function registered by
 * destination_sql_register, which calls destination_key.
 *
 * The key never holds userinfo, path or query (a URL may carry a token), so
 * it may be logged and used as a metrics label.
 *
 * Threads: pure functions, safe from any thread.
 */
#ifndef EGOI_DESTINATION_H
#define EGOI_DESTINATION_H

#include <sqlite3.h>

/*
 * Sets *key to "scheme://host:port" and, when host is not NULL, *host to
 * the host alone (both malloc'ed, the caller frees them). Returns 0, or -1
 * (nothing allocated) when url is not an http(s) URL with a host right
 * after "scheme://" as libcurl's URL parser reads it, or memory ran out.
 */
int destination_key(const char *url, char **key, char **host);

/*
 * Whether url names this router's own webhook endpoint: its port is one of
 * listen's (a civetweb port list, "8443s", "127.0.0.1:8443s", "[::1]:8443s",
 * comma-separated), its host is that listen address (or, for a port bound
 * on every address, a loopback or unspecified address or localhost), and
 * its path (percent-decoded, dot segments resolved) is endpoint or below.
 * Other names of this host (its public DNS name, another interface) are not
 * recognised here; X-Router-Hop (http_hop.h) stops those loops.
 * Returns 1 or 0 (0 too when url cannot be parsed).
 */
int destination_is_self(const char *url, const char *listen, const char *endpoint);

/*
 * Registers router_dest(url) on db: the key of url, or '' when it has none
 * (such entries are dead-lettered when claimed). Returns an SQLite code.
 */
int destination_sql_register(sqlite3 *db);

#endif
