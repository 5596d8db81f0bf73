/*
 * console_page.h — the status console's HTML: the overview of a struct
 * console_view (console_data.c fills one from the live process, tests
 * from a known state), the detail page of one dead letter, the login
 * form, the style sheet.
 *
 * Pages are HTML5 with a viewport meta tag and one same-origin style sheet
 * (/console/style.css): no script, no inline style, no external asset, so
 * they work offline under Content-Security-Policy: default-src 'self'.
 * Every state-changing button is a form POSTing to /console/action with the
 * CSRF token in a hidden field. Every text from events, rules, destinations
 * or the database is escaped (console_html.h).
 *
 * Threads: pure rendering, safe from any thread.
 */
#ifndef EGOI_CONSOLE_PAGE_H
#define EGOI_CONSOLE_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "deliver_status.h"
#include "metrics.h"
#include "outbox.h"

#define CONSOLE_NEWEST 50          /* dead letters listed */
#define CONSOLE_TEXT 256           /* bytes kept of a reason or a destination */

struct util_buf;

/* One dead letter in the list (copied out of the database row). */
struct console_dead {
	int64_t id;
	double died_at;
	int kind;                      /* enum outbox_dead_kind */
	char dest[CONSOLE_TEXT];       /* forward: name or URL host; write: path; else "" */
	char reason[CONSOLE_TEXT];     /* e-mail addresses masked */
	long attempts;                 /* -1: not a forward */
};

/* One destination row: the delivery thread's facts and the metrics' counts. */
struct console_dest {
	struct deliver_status_row st;
	unsigned long delivered, retried, dead;   /* egoi_router_deliveries_total by label */
};

struct console_view {
	const char *version;
	double now, started;           /* unix seconds */
	const char *rules_path;
	unsigned long generation;      /* rules generation published */
	struct metrics_view m;
	double requests_per_min, events_per_min;
	double rate_window_s;          /* what the rates are measured over */
	const struct console_dest *dests;
	size_t ndests;
	long dead_by_kind[OUTBOX_DEAD_KINDS];   /* open (not replayed) dead letters */
	long dead_open;
	const struct console_dead *newest;      /* newest first */
	size_t nnewest;
	const char *dlq_error;         /* the dead letters could not be read: why; NULL */
	const char *flash;             /* the result of the last action, or NULL */
	const char *csrf;              /* the session's token, for every form */
};

/* The overview; 0, or -1 when out of memory. */
int console_page_render(const struct console_view *v, struct util_buf *b);

/* The login form, with error shown when not NULL. */
int console_page_login(struct util_buf *b, const char *error);

/* One dead letter in full: e's fields (payload already masked, may be
 * NULL), with replay and purge buttons. */
struct console_dead_detail {
	struct console_dead d;
	double created_at;
	const char *request_id, *method, *delivery_id;
	int last_status;
	const char *payload;
	size_t payload_len;
	int replayed;
};
int console_page_dead(struct util_buf *b, const struct console_dead_detail *e, const char *csrf);

/* A short page with one message (a refusal, an error), status text and a link back. */
int console_page_message(struct util_buf *b, const char *title, const char *text);

/* The style sheet served at /console/style.css. */
extern const char console_css[];

#endif
