/*
 * json_out.c — see json_out.h.
 */
#include "json_out.h"

#include <stdlib.h>
#include <string.h>

yajl_gen_status json_out_string(yajl_gen g, const char *s, size_t len)
{
	yajl_gen_status st;
	char *copy;

	if (!s)
		return yajl_gen_null(g);
	st = yajl_gen_string(g, (const unsigned char *)s, len);
	if (st != yajl_gen_invalid_string)
		return st;
	copy = malloc(len ? len : 1);
	if (!copy)
		return yajl_gen_null(g);
	memcpy(copy, s, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)copy[i] > 0x7f)
			copy[i] = '?';
	st = yajl_gen_string(g, (const unsigned char *)copy, len);
	free(copy);
	return st;
}

int json_out_line(yajl_gen g, FILE *out)
{
	const unsigned char *buf;
	size_t len;

	if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok ||
	    fwrite(buf, 1, len, out) != len || fputc('\n', out) == EOF)
		return -1;
	return 0;
}

int json_out_counts(const char *const *keys, const long *vals, size_t n)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc = -1;

	if (!g)
		return -1;
	yajl_gen_map_open(g);
	for (size_t i = 0; i < n; i++) {
		yajl_gen_string(g, (const unsigned char *)keys[i], strlen(keys[i]));
		yajl_gen_integer(g, vals[i]);
	}
	yajl_gen_map_close(g);
	rc = json_out_line(g, stdout);
	yajl_gen_free(g);
	return rc == 0 && fflush(stdout) == 0 ? 0 : -1;
}
