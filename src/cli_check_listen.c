/*
 * cli_check_listen.c — the listen value as civetweb reads its
 * listening_ports: a comma-separated list of [ADDRESS:]PORT[s|r], where
 * ADDRESS is an IPv4 address or a host name (this civetweb build has no
 * IPv6: it refuses "[::1]:443s" at start-up), a leading '+' is taken, the port is 1..65535 (0 would
 * bind a random port), 's' makes it a TLS port and 'r' a plain port that
 * redirects to a TLS one. Nothing else may follow the port.
 */
#include "cli_check_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One spec (len bytes, not NUL-terminated). 0 and *kind ('s', 'r', 0), or -1 with why. */
static int cli_check_listen_one(const char *spec, size_t len, char *kind, char *why,
				size_t whylen)
{
	char buf[256], host[256] = "";
	char *port, *end;
	unsigned long n;

	if (len == 0 || len >= sizeof buf) {
		snprintf(why, whylen, len ? "too long" : "empty");
		return -1;
	}
	memcpy(buf, spec, len);
	buf[len] = '\0';
	port = buf;
	if (buf[0] == '+') {
		port = buf + 1;
	} else if (buf[0] == '[') {
		/* civetweb says "invalid port spec" at start-up: built without IPv6 */
		snprintf(why, whylen, "an IPv6 address: this civetweb build has no IPv6 (use an "
			 "IPv4 address, a host name or PORT alone)");
		return -1;
	} else if (strrchr(buf, ':')) {
		char *colon = strrchr(buf, ':');

		*colon = '\0';
		if (!*buf) {
			snprintf(why, whylen, "no address before ':' (write PORT alone for all "
				 "addresses)");
			return -1;
		}
		snprintf(host, sizeof host, "%s", buf);
		port = colon + 1;
	}
	if (*host) {
		struct in_addr a4;
		struct addrinfo hints, *res = NULL;
		int gai;

		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		if (inet_pton(AF_INET, host, &a4) != 1 &&
		    (gai = getaddrinfo(host, NULL, &hints, &res)) != 0) {
			snprintf(why, whylen, "address '%s': %s", host, gai_strerror(gai));
			return -1;
		}
		if (res)
			freeaddrinfo(res);
	}
	if (*port < '0' || *port > '9') {
		snprintf(why, whylen, "no port number");
		return -1;
	}
	n = strtoul(port, &end, 10);
	if (n == 0 || n > 65535 || end - port > 5) {
		snprintf(why, whylen, "port %.*s is not 1 to 65535", (int)(end - port), port);
		return -1;
	}
	*kind = 0;
	if (*end == 's' || *end == 'r')
		*kind = *end++;
	if (*end) {
		snprintf(why, whylen, "'%s' after the port: only 's' (TLS) or 'r' (redirect to TLS)"
			 " may follow it", end);
		return -1;
	}
	return 0;
}

int cli_check_listen(const char *listen, int *tls_ports)
{
	int failed = 0, redirects = 0;
	const char *p = listen ? listen : "";

	*tls_ports = 0;
	if (!*p) {
		cli_check_line(0, "listen", "is empty");
		return -1;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char kind = 0, why[320];

		if (cli_check_listen_one(p, len, &kind, why, sizeof why) < 0) {
			cli_check_line(0, "listen", "%.*s: %s", (int)len, p, why);
			failed = 1;
		} else {
			cli_check_line(1, "listen", "%.*s (%s)", (int)len, p,
				       kind == 's' ? "TLS" : kind == 'r' ? "redirects to TLS" :
				       "plain HTTP");
			*tls_ports += kind == 's';
			redirects += kind == 'r';
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!failed && redirects && !*tls_ports) {
		cli_check_line(0, "listen", "%s: an 'r' port redirects to a TLS port, and there is "
			       "none ('s')", listen);
		failed = 1;
	}
	return failed ? -1 : 0;
}
