/*
 * console.c — the status console's HTTP side (see console.h): routes,
 * access (Bearer or session cookie), forms, CSRF, security headers.
 *
 * Every answer is one mg_write with Content-Length and the same security
 * headers (console_reply). A state-changing POST is answered with the page
 * of its result (200), not a redirect: the result is shown without keeping
 * it anywhere, and a repeated replay of one dead letter only skips it.
 */
#include "console.h"
#include "console_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "outbox.h"
#include "util_buf.h"

#define CONSOLE_COOKIE "egoi_console"
#define CONSOLE_FORM_MAX 4096            /* bytes of a form body */

static const char console_headers[] =
	"Content-Security-Policy: default-src 'self'\r\n"
	"X-Frame-Options: DENY\r\n"
	"Cache-Control: no-store\r\n"
	"X-Content-Type-Options: nosniff\r\n"
	"Referrer-Policy: no-referrer\r\n";

/* The whole answer in one mg_write; extra: more header lines, or NULL. */
static void console_reply(struct mg_connection *conn, int status, const char *reason,
			  const char *ctype, const char *body, size_t len, const char *extra)
{
	char head[1024];
	char *buf;
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
			 status, reason, ctype, len, console_headers, extra ? extra : "");

	if (n <= 0 || (size_t)n >= sizeof head)
		return;
	buf = malloc((size_t)n + len);
	if (!buf)
		return;
	memcpy(buf, head, (size_t)n);
	memcpy(buf + n, body, len);
	(void)mg_write(conn, buf, (size_t)n + len);   /* < 0: the client went away */
	free(buf);
}

/* An HTML page built in b (freed here); a failed build answers 500. */
static int console_reply_page(struct mg_connection *conn, int status, const char *reason,
			      struct util_buf *b, int built, const char *extra)
{
	static const char oom[] = "out of memory";

	if (built != 0 || !b->p) {
		console_reply(conn, 500, "Internal Server Error", "text/plain", oom,
			      sizeof oom - 1, NULL);
		util_buf_free(b);
		return 500;
	}
	console_reply(conn, status, reason, "text/html; charset=utf-8", b->p, b->len, extra);
	util_buf_free(b);
	return status;
}

static int console_message(struct mg_connection *conn, int status, const char *reason,
			   const char *text)
{
	struct util_buf b = { 0 };

	return console_reply_page(conn, status, reason, &b,
				  console_page_message(&b, reason, text), NULL);
}

static int console_login_form(struct mg_connection *conn, int status, const char *reason,
			      const char *error)
{
	struct util_buf b = { 0 };

	return console_reply_page(conn, status, reason, &b, console_page_login(&b, error),
				  status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL);
}

/*
 * Who sends this request: 2 a Bearer client, 1 a logged-in session (its id
 * into sid), 0 nobody. A wrong Bearer token counts as nobody.
 */
static int console_who(struct console *c, struct mg_connection *conn,
		       char sid[CONSOLE_ID_HEX + 1])
{
	const char *h = mg_get_header(conn, "Authorization");
	char buf[CONSOLE_ID_HEX + 2];

	if (h && strncasecmp(h, "Bearer ", 7) == 0) {
		h += 7;
		while (*h == ' ')
			h++;
		return http_token_equal(h, strlen(h), c->token) ? 2 : 0;
	}
	h = mg_get_header(conn, "Cookie");
	if (!h || mg_get_cookie(h, CONSOLE_COOKIE, buf, sizeof buf) != CONSOLE_ID_HEX)
		return 0;
	if (!console_auth_valid(&c->auth, buf, clock_wall()))
		return 0;
	memcpy(sid, buf, CONSOLE_ID_HEX + 1);
	return 1;
}

/* The form body (NUL-terminated, malloc'd, *len bytes), NULL when too
 * large or unreadable. */
static char *console_read_form(struct mg_connection *conn, size_t *len)
{
	char *body = malloc(CONSOLE_FORM_MAX + 1);
	size_t n = 0;
	int r;

	if (!body)
		return NULL;
	while (n <= CONSOLE_FORM_MAX &&
	       (r = mg_read(conn, body + n, CONSOLE_FORM_MAX + 1 - n)) > 0)
		n += (size_t)r;
	if (n > CONSOLE_FORM_MAX) {
		free(body);
		return NULL;
	}
	body[n] = '\0';
	*len = n;
	return body;
}

/* Form field name into out; 1 when present (and fitting), else 0. */
static int console_field(const char *form, size_t len, const char *name, char *out, size_t cap)
{
	return mg_get_var(form, len, name, out, cap) >= 0;
}

static int console_overview(struct console *c, struct mg_connection *conn, const char *sid,
			    const char *flash, int status)
{
	struct console_snapshot *s = calloc(1, sizeof *s);
	struct util_buf b = { 0 };
	char csrf[CONSOLE_ID_HEX + 1];
	int built = -1, rc;

	if (s && console_data_view(c, s) == 0) {
		console_auth_csrf(&c->auth, sid, csrf);
		s->v.csrf = csrf;
		s->v.flash = flash;
		built = console_page_render(&s->v, &b);
	}
	rc = console_reply_page(conn, status, status == 200 ? "OK" : "Conflict", &b, built, NULL);
	if (s)
		console_data_free(s);
	free(s);
	return rc;
}

static int console_dead_page(struct console *c, struct mg_connection *conn, const char *sid,
			     const char *idtext)
{
	struct console_dead_detail d;
	struct util_buf b = { 0 };
	char csrf[CONSOLE_ID_HEX + 1], *end;
	long long id;
	int found, rc;

	errno = 0;
	id = strtoll(idtext, &end, 10);
	if (errno || end == idtext || *end || id < 1)
		return console_message(conn, 404, "Not Found", "no such dead letter");
	found = console_data_dead(c, (int64_t)id, &d);
	if (found < 0) {
		console_data_dead_free(&d);
		return console_message(conn, 500, "Internal Server Error",
				       "the dead letter cannot be read (see the log)");
	}
	if (found == 0) {
		console_data_dead_free(&d);
		return console_message(conn, 404, "Not Found", "no such dead letter");
	}
	console_auth_csrf(&c->auth, sid, csrf);
	rc = console_reply_page(conn, 200, "OK", &b, console_page_dead(&b, &d, csrf), NULL);
	console_data_dead_free(&d);
	return rc;
}

static int console_login(struct console *c, struct mg_connection *conn)
{
	char *form;
	char token[1024], sid[CONSOLE_ID_HEX + 1], cookie[256];
	size_t len = 0;
	int ok;

	form = console_read_form(conn, &len);
	if (!form)
		return console_login_form(conn, 413, "Payload Too Large", "the form is too large");
	ok = console_field(form, len, "token", token, sizeof token) &&
	     http_token_equal(token, strlen(token), c->token);
	memset(token, 0, sizeof token);
	free(form);
	if (!ok) {
		log_msg(LOG_WARN, NULL, "console: a login with a wrong token was refused");
		return console_login_form(conn, 401, "Unauthorized", "wrong token");
	}
	if (console_auth_login(&c->auth, clock_wall(), sid) < 0)
		return console_message(conn, 500, "Internal Server Error", "no randomness");
	snprintf(cookie, sizeof cookie,
		 "Set-Cookie: " CONSOLE_COOKIE "=%s; Path=/console; Max-Age=%d; HttpOnly; "
		 "SameSite=Strict\r\nLocation: /console\r\n",
		 sid, (int)CONSOLE_SESSION_TTL_S);
	console_reply(conn, 303, "See Other", "text/plain", "", 0, cookie);
	return 303;
}

/* The POST routes that need a login and the CSRF token: logout and action. */
static int console_post(struct console *c, struct mg_connection *conn, const char *uri)
{
	char sid[CONSOLE_ID_HEX + 1] = CONSOLE_BEARER_ID;
	char csrf[CONSOLE_ID_HEX + 2], op[16] = "", idtext[24] = "", kind[32] = "";
	char dest[DELIVER_STATUS_TEXT] = "", all[4] = "", msg[512];
	struct console_action a;
	size_t len = 0;
	char *form;
	int who = console_who(c, conn, sid), rc;

	if (who == 0)
		return console_login_form(conn, 401, "Unauthorized", "log in first");
	form = console_read_form(conn, &len);
	if (!form)
		return console_message(conn, 413, "Payload Too Large", "the form is too large");
	if (!console_field(form, len, "csrf", csrf, sizeof csrf) ||
	    !console_auth_csrf_ok(&c->auth, sid, csrf)) {
		free(form);
		log_msg(LOG_WARN, NULL, "console: a POST to %s without a valid CSRF token was "
			"refused", uri);
		return console_message(conn, 403, "Forbidden",
				       "missing or wrong CSRF token: reload the console");
	}
	if (strcmp(uri, "/console/logout") == 0) {
		free(form);
		if (who == 1)
			console_auth_logout(&c->auth, sid);
		console_reply(conn, 303, "See Other", "text/plain", "", 0,
			      "Set-Cookie: " CONSOLE_COOKIE "=; Path=/console; Max-Age=0; "
			      "HttpOnly; SameSite=Strict\r\nLocation: /console\r\n");
		return 303;
	}
	memset(&a, 0, sizeof a);
	console_field(form, len, "op", op, sizeof op);
	console_field(form, len, "id", idtext, sizeof idtext);
	console_field(form, len, "kind", kind, sizeof kind);
	console_field(form, len, "dest", dest, sizeof dest);
	console_field(form, len, "all", all, sizeof all);
	free(form);
	a.op = op;
	a.id = idtext[0] ? strtoll(idtext, NULL, 10) : 0;
	a.kind = kind[0] ? kind : NULL;
	a.dest = dest[0] ? dest : NULL;
	a.all = strcmp(all, "1") == 0;
	if ((idtext[0] && a.id < 1) || (a.kind && outbox_dead_kind_parse(a.kind) < 0))
		return console_message(conn, 400, "Bad Request", "invalid selection");
	if (strcmp(op, "replay") == 0 && a.kind &&
	    outbox_dead_kind_parse(a.kind) == OUTBOX_DEAD_REJECTED)
		return console_message(conn, 400, "Bad Request",
				       "rejected dead letters hold malformed input and cannot "
				       "be replayed; purge them");
	rc = console_data_act(c, &a, msg, sizeof msg);
	log_msg(rc == 0 ? LOG_INFO : LOG_WARN, NULL, "console: %s %s%s%s%s: %s", op,
		a.id ? "id " : a.kind ? "kind " : a.dest ? "destination " : "all",
		a.id ? idtext : "", a.kind ? a.kind : "", a.dest ? a.dest : "", msg);
	return console_overview(c, conn, sid, msg, rc == 0 ? 200 : 409);
}

static int console_handler(struct mg_connection *conn, void *cbdata)
{
	struct console *c = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *uri = ri->local_uri ? ri->local_uri : "";
	int get = strcmp(ri->request_method, "GET") == 0;
	int post = strcmp(ri->request_method, "POST") == 0;
	char sid[CONSOLE_ID_HEX + 1] = CONSOLE_BEARER_ID;

	if (strcmp(uri, "/console/style.css") == 0 && get) {
		console_reply(conn, 200, "OK", "text/css; charset=utf-8", console_css,
			      strlen(console_css), NULL);
		return 200;
	}
	if (post && strcmp(uri, "/console/login") == 0)
		return console_login(c, conn);
	if (post && (strcmp(uri, "/console/logout") == 0 || strcmp(uri, "/console/action") == 0))
		return console_post(c, conn, uri);
	if (!get) {
		mg_disable_keep_alive(conn);
		console_reply(conn, 405, "Method Not Allowed", "text/plain", "method not allowed",
			      18, "Allow: GET, POST\r\nConnection: close\r\n");
		return 405;
	}
	if (strcmp(uri, "/console") != 0 && strcmp(uri, "/console/") != 0 &&
	    strncmp(uri, "/console/dead/", 14) != 0)
		return console_message(conn, 404, "Not Found", "no such page");
	if (console_who(c, conn, sid) == 0)
		return console_login_form(conn, 401, "Unauthorized", NULL);
	if (strncmp(uri, "/console/dead/", 14) == 0)
		return console_dead_page(c, conn, sid, uri + 14);
	return console_overview(c, conn, sid, NULL, 200);
}

struct console *console_new(struct pipeline_shared *sh, const char *token)
{
	struct console *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	if (console_auth_init(&c->auth) < 0)
		goto fail;
	if (pthread_mutex_init(&c->ob_mu, NULL) != 0)
		goto fail;
	if (pthread_mutex_init(&c->rate_mu, NULL) != 0) {
		pthread_mutex_destroy(&c->ob_mu);
		goto fail;
	}
	c->ready = 1;
	c->sh = sh;
	c->token = token;
	c->started = clock_wall();
	c->started_mono = clock_mono();
	return c;
fail:
	console_auth_free(&c->auth);
	free(c);
	return NULL;
}

void console_routes(struct mg_context *ctx, struct console *c)
{
	mg_set_request_handler(ctx, "/console", console_handler, c);
}

void console_free(struct console *c)
{
	if (!c)
		return;
	if (c->ready) {
		pthread_mutex_lock(&c->ob_mu);
		if (c->ob)
			outbox_adopt(c->ob);
		outbox_close(c->ob);
		pthread_mutex_unlock(&c->ob_mu);
		pthread_mutex_destroy(&c->ob_mu);
		pthread_mutex_destroy(&c->rate_mu);
	}
	console_auth_free(&c->auth);
	free(c);
}
