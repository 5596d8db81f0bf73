/*
 * header_rule.c — the rule for headers added by rules (see header_rule.h).
 *
 * Threads: no state.
 */
#include "header_rule.h"

#include <string.h>
#include <strings.h>

static int header_rule_token_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int header_rule_reserved(const char *name, size_t len)
{
	static const char *const exact[] = {
		"Content-Type", "Content-Length", "Transfer-Encoding", "Connection", "Expect", NULL,
	};
	/* whole families: new router headers must not need a new rule here */
	static const char *const prefixes[] = { "X-Router-", "webhook-", NULL };

	for (int i = 0; exact[i]; i++)
		if (len == strlen(exact[i]) && strncasecmp(name, exact[i], len) == 0)
			return 1;
	for (int i = 0; prefixes[i]; i++)
		if (len >= strlen(prefixes[i]) && strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

const char *header_rule_check(const char *name, size_t name_len, const char *value,
			      size_t value_len)
{
	if (name_len == 0 || name_len > HEADER_RULE_NAME_MAX)
		return "has an invalid name (1 to 256 token characters)";
	for (size_t i = 0; i < name_len; i++)
		if (!header_rule_token_char((unsigned char)name[i]))
			return "has an invalid name (1 to 256 token characters)";
	if (header_rule_reserved(name, name_len))
		return "is set by the router";
	if (value_len > HEADER_RULE_VALUE_MAX)
		return "has a value longer than 8192 bytes";
	/* a stray CR or LF would start a header of its own; others are dropped by servers */
	for (size_t i = 0; i < value_len; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return "has a control character in its value";
	}
	return NULL;
}
