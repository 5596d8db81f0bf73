/*
 * egoi_webhook.h — one E-goi webhook as the Marketing API v3 describes it,
 * and the URL arithmetic the `egoi` commands need around it.
 *
 * E-goi's `Webhook` object (request and response of /webhooks):
 *   webhook_id  integer >= 1, assigned by E-goi (absent in a create)
 *   list_id     integer >= 1, required. An integer here, although the
 *               events E-goi delivers carry the list id as a string.
 *   url         string, required; http or https
 *   actions     array of action names (the 38 of egoi_actions.h), required
 *   fields      array of contact field ids (strings), optional
 * There is no name, secret, header or active flag: E-goi cannot send a
 * custom header nor sign, so the router's auth_token travels in the URL
 * as ?token= (the intake accepts it there, http.c).
 *
 * Printing: every URL shown to the user goes through egoi_url_redact, so
 * the token never reaches a terminal or a log.
 *
 * Threads: pure functions on caller-owned data.
 */
#ifndef EGOI_EGOI_WEBHOOK_H
#define EGOI_EGOI_WEBHOOK_H

#include <stddef.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

struct egoi_webhook {
	long long id;         /* webhook_id; 0 = not created yet */
	long long list_id;
	char *url;
	char **actions;
	size_t nactions;
	char **fields;
	size_t nfields;
};

/* Frees the strings of w and zeroes it; w may be zeroed already. */
void egoi_webhook_clear(struct egoi_webhook *w);

/* Fills w (zeroed by the caller) from one JSON object of E-goi's answer.
 * 0, or -1 when a required member is missing or of the wrong type. */
int egoi_webhook_from_json(struct egoi_webhook *w, yajl_val obj);

/* The create body: list_id, url, actions, fields (when nfields > 0), with
 * E-goi's types. Returns a malloc'd NUL-terminated text, or NULL. */
char *egoi_webhook_body(const struct egoi_webhook *w);

/* Writes w as a JSON object (url redacted, `ours` added) into g. */
yajl_gen_status egoi_webhook_gen(yajl_gen g, const struct egoi_webhook *w, int ours);

/* 1 when a and b have the same list, exactly the same url, and the same
 * sets of actions and of fields (order and repeats do not matter). */
int egoi_webhook_same(const struct egoi_webhook *a, const struct egoi_webhook *b);

/* Splits "a,b,c" into a malloc'd array of malloc'd names (blanks around
 * each cut, empty names refused). 0, or -1. */
int egoi_split_list(const char *text, char ***out, size_t *n);
void egoi_free_list(char **v, size_t n);

/* url with every token=VALUE of its query replaced by token=REDACTED;
 * malloc'd, or NULL when out of memory. url NULL gives "". */
char *egoi_url_redact(const char *url);

/* Free text (an error message that may quote a URL) with the value of
 * every "?token=" or "&token=" redacted up to the next '&', '#', blank,
 * quote, bracket, ',' or ';'; malloc'd, or NULL. */
char *egoi_text_redact(const char *text);

/* url without its token=VALUE query parameters (and without a '?' left
 * empty); malloc'd, or NULL. */
char *egoi_url_strip_token(const char *url);

/* 1 when url points at base: equal once their tokens are stripped. */
int egoi_url_is(const char *url, const char *base);

/* url plus token=TOKEN (URL-encoded) after '?' or '&'; a url that already
 * holds a token= parameter, or token NULL, is copied as it is. malloc'd,
 * or NULL. */
char *egoi_url_with_token(const char *url, const char *token);

#endif
