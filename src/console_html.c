/*
 * console_html.c — escaping, masking and formatting for the console (see
 * console_html.h).
 */
#include "console_html.h"
#include "util_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void console_html_escape(struct util_buf *b, const char *s, size_t n)
{
	size_t from = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep;

		switch (c) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default:
			rep = c < 0x20 && c != '\t' && c != '\n' ? "\xef\xbf\xbd" : NULL;
		}
		if (!rep)
			continue;
		util_buf_add(b, s + from, i - from);
		util_buf_add(b, rep, strlen(rep));
		from = i + 1;
	}
	util_buf_add(b, s + from, n - from);
}

void console_html_text(struct util_buf *b, const char *s)
{
	if (!s)
		util_buf_add(b, "-", 1);
	else
		console_html_escape(b, s, strlen(s));
}

static int console_html_local_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c >= 0x80;
}

static int console_html_domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c >= 0x80;
}

char *console_mask_emails(const char *s, size_t n, size_t *out_len)
{
	/* a masked address is never longer than the original but for
	 * "x@y.z" (5 bytes) becoming "x***@y***.z" (11): 3x bounds it */
	char *out = malloc(n * 3 + 1);
	size_t o = 0, i = 0, copied = 0;

	if (!out)
		return NULL;
	while (i < n) {
		size_t l = i, r = i + 1, dot = 0;

		if (s[i] != '@') {
			i++;
			continue;
		}
		while (l > copied && console_html_local_char((unsigned char)s[l - 1]))
			l--;
		while (r < n && console_html_domain_char((unsigned char)s[r]))
			r++;
		while (r > i + 1 && s[r - 1] == '.')   /* "a@b.pt." ends a sentence */
			r--;
		for (size_t k = i + 1; k < r; k++)
			if (s[k] == '.')
				dot = k;
		if (l == i || dot == 0 || dot == i + 1 || dot + 1 == r) {
			i++;
			continue;
		}
		memcpy(out + o, s + copied, l - copied);
		o += l - copied;
		out[o++] = s[l];
		memcpy(out + o, "***@", 4);
		o += 4;
		out[o++] = s[i + 1];
		memcpy(out + o, "***", 3);
		o += 3;
		memcpy(out + o, s + dot, r - dot);
		o += r - dot;
		copied = i = r;
	}
	memcpy(out + o, s + copied, n - copied);
	o += n - copied;
	out[o] = '\0';
	*out_len = o;
	return out;
}

const char *console_html_time(double t, char *out, size_t cap)
{
	time_t secs = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&secs, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		snprintf(out, cap, "-");
	return out;
}

const char *console_html_duration(double seconds, char *out, size_t cap)
{
	long s = seconds > 0 ? (long)seconds : 0;

	if (s >= 86400)
		snprintf(out, cap, "%ldd %ldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, cap, "%ldh %ldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, cap, "%ldm %lds", s / 60, s % 60);
	else
		snprintf(out, cap, "%lds", s);
	return out;
}
