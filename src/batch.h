/*
 * batch.h — an E-goi batch body → validated events with their byte spans.
 *
 * One pass with yajl: the top level must be an object with an "events"
 * array; each element is reported to a builder (callbacks that build the
 * event in whatever representation the caller wants, e.g. Lua tables) and
 * gets a span [start, end) of its original bytes, so it can be forwarded
 * without re-encoding. No I/O and no Lua calls here, but the builder may
 * be Lua's (json_lua.c), whose callbacks can longjmp out of the parse (a
 * Lua memory error): struct batch keeps the parser so it is freed anyway.
 *
 * Numbers: the raw text decides. No '.', 'e' or 'E' and within int64 →
 * integer; otherwise → double. Strings are UTF-8 validated by yajl; a \u
 * escape of a lone UTF-16 surrogate (\ud800 without its low half, or a
 * low half alone) makes the batch invalid (400), since yajl would turn it
 * into '?' silently.
 * Nesting deeper than BATCH_MAX_DEPTH is an error.
 */
#ifndef EGOI_BATCH_H
#define EGOI_BATCH_H

#include <stddef.h>

#define BATCH_MAX_DEPTH 64

/*
 * The batch wrapper: a body is BATCH_PREFIX, the events separated by ',',
 * then BATCH_SUFFIX. The parser looks for BATCH_KEY; merged forwards
 * (decisions_commit.c) and replayed dead letters (dlq_replay.c) are written
 * with the same two strings, so what they build parses here again.
 */
#define BATCH_KEY "events"
#define BATCH_PREFIX "{\"" BATCH_KEY "\":["
#define BATCH_SUFFIX "]}"

enum batch_status {
	BATCH_OK = 0,
	BATCH_INVALID = -1,   /* not JSON / not an object / no events array: 400 */
	BATCH_TOO_MANY = -2,  /* more than max_events elements: 413 */
	BATCH_NOMEM = -3,     /* allocation failed, or a builder callback failed: 500 */
	BATCH_TOO_BIG = -4,   /* rules_parse_batch only: events over lua_memory_limit: 413 */
};

/*
 * Builder callbacks. Every value inside an element of "events" that is an
 * object is reported, starting with that element's own map_begin and ending
 * with its map_end, between event_begin and event_end. Elements that are
 * not objects are never given to the builder (they are rejected). Each
 * callback returns 0 to go on or -1 to abort the parse (BATCH_NOMEM).
 * Strings and keys are not NUL-terminated and only valid during the call.
 */
struct batch_builder {
	int (*event_begin)(void *ud, size_t index);
	int (*null_value)(void *ud);
	int (*boolean)(void *ud, int value);
	int (*integer)(void *ud, long long value);
	int (*number)(void *ud, double value);
	int (*string)(void *ud, const char *s, size_t len);
	int (*map_begin)(void *ud);
	int (*map_key)(void *ud, const char *s, size_t len);
	int (*map_end)(void *ud);
	int (*array_begin)(void *ud);
	int (*array_end)(void *ud);
	/* The event is complete. reject != NULL: it has no string "action";
	 * the builder should discard what it built for this index. */
	int (*event_end)(void *ud, size_t index, const char *reject);
};

struct batch_event {
	size_t start, end;     /* original bytes: body[start, end) */
	const char *reject;    /* NULL = routable; else a static reason string */
};

struct batch {
	struct batch_event *events;   /* owned; reused across parses */
	size_t count, cap;
	/* The yajl handle of a parse in progress. A builder callback that
	 * longjmps out (a Lua memory error) leaves it here; batch_reset and
	 * batch_free release it. Zero-initialise and leave alone. */
	void *parser;
};

/* Empties b, keeps its storage for the next parse (frees an abandoned parser). */
void batch_reset(struct batch *b);

/* Frees b's storage; b may be zeroed. */
void batch_free(struct batch *b);

/*
 * The offset of the first \u escape in body that is half a UTF-16
 * surrogate without its other half, or (size_t)-1 when there is none. Used
 * before every yajl parse (batches here, json.decode in rules) because yajl
 * turns such an escape into '?' silently.
 */
size_t batch_lone_surrogate(const char *body, size_t len);

/*
 * Parses body[0..len) into out (reset first). builder may be NULL (spans and
 * validation only). Returns a batch_status; on error err holds a one-line
 * reason with the byte offset, e.g. "invalid JSON at byte 17: ...".
 * Rejected elements do not make the parse fail: they are listed in out
 * with their reason ("event is not an object", "event has no string action").
 */
int batch_parse(struct batch *out, const char *body, size_t len, size_t max_events,
		const struct batch_builder *builder, void *ud, char *err, size_t errlen);

/*
 * Shared with json_lua.c's generic decoder, so both read JSON the same way:
 *
 * batch_number: a JSON number's raw text → integer (BATCH_NUMBER_INTEGER,
 * *iv set) when it has no '.', 'e' or 'E' and fits in int64, else float
 * (BATCH_NUMBER_FLOAT, *dv set); BATCH_NUMBER_NOMEM when out of memory.
 *
 * batch_syntax_error: after yajl (handle h, a yajl_handle) stopped with an
 * error on text[0..len), writes "invalid JSON at byte N: <reason>" on one
 * line into err. stopped_in_parse: the error came from yajl_parse (offsets
 * are meaningful) rather than yajl_complete_parse (the text ended early,
 * N = len).
 */
enum batch_number_kind {
	BATCH_NUMBER_NOMEM = -1,   /* out of memory: neither value set */
	BATCH_NUMBER_FLOAT = 0,    /* *dv set */
	BATCH_NUMBER_INTEGER = 1,  /* *iv set */
};
enum batch_number_kind batch_number(const char *s, size_t len, long long *iv, double *dv);
void batch_syntax_error(void *h, const char *text, size_t len, int stopped_in_parse, char *err,
			size_t errlen);

/*
 * Copies a valid JSON text without its insignificant whitespace, so a
 * pretty-printed event fits on one line; string contents are kept byte for
 * byte. out must hold len bytes; returns the new length.
 */
size_t batch_compact(const char *text, size_t len, char *out);

#endif
