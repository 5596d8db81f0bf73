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
