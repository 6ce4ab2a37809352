#ifndef SHOPD_CORE_JSON_H
#define SHOPD_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * JSON in and out. This is the only module that sees jansson.
 *
 * In: a request body is decoded against a table of field specs straight into the caller's
 * struct, so handlers validate by declaring, and every error names the field:
 *
 *     static const struct json_spec charge_spec[] = {
 *         JSON_INT("amount", JSON_REQUIRED, 1, 10000000, ERR_INVALID_AMOUNT,
 *                  struct charge_in, amount_krw),
 *         JSON_END,
 *     };
 *
 * Strings are copied into the arena; unknown fields are ignored; a null is the same as an
 * absent field. Integers must be JSON integers (1.0 is a wrong type) and fit int64_t.
 *
 * Out: a streaming writer that appends compact JSON to an arena buffer, with no tree built.
 */

struct arena;

enum json_type {
    JSON_TYPE_END,
    JSON_TYPE_INT,
    JSON_TYPE_STRING,  /* min/max bound the length in code points */
    JSON_TYPE_OBJECTS, /* an array of objects, each decoded by .items; min/max bound the count */
};

enum json_flags {
    JSON_REQUIRED = 1 << 0,
    JSON_NOT_NULL = 1 << 1, /* optional, but null is an error (a PATCH cannot unset it) */
};

struct json_spec {
    const char *name;
    enum json_type type;
    unsigned flags;
    int64_t min, max;
    enum err_code range_code; /* the code for a value out of [min, max] */
    size_t offset;            /* of int64_t, const char *, or struct json_objects */
    size_t present_offset;    /* of a bool set when the field was given; JSON_NO_FLAG if none */
    const struct json_spec *items;
    size_t item_size;
};

/* Where a JSON_TYPE_OBJECTS field lands: count items of item_size bytes each. */
struct json_objects {
    void *items;
    size_t count;
};

#define JSON_NO_FLAG ((size_t)-1)
/* clang-format off */
#define JSON_INT(name, flags, min, max, code, type, field) \
    {name, JSON_TYPE_INT, flags, min, max, code, offsetof(type, field), JSON_NO_FLAG, NULL, 0}
#define JSON_INT_P(name, flags, min, max, code, type, field, present) \
    {name, JSON_TYPE_INT, flags, min, max, code, offsetof(type, field), \
     offsetof(type, present), NULL, 0}
#define JSON_STR(name, flags, min, max, type, field) \
    {name, JSON_TYPE_STRING, flags, min, max, ERR_INVALID_INPUT, offsetof(type, field), \
     JSON_NO_FLAG, NULL, 0}
#define JSON_STR_P(name, flags, min, max, type, field, present) \
    {name, JSON_TYPE_STRING, flags, min, max, ERR_INVALID_INPUT, offsetof(type, field), \
     offsetof(type, present), NULL, 0}
#define JSON_OBJECTS(name, flags, min, max, type, field, item_spec, item_type) \
    {name, JSON_TYPE_OBJECTS, flags, min, max, ERR_INVALID_INPUT, offsetof(type, field), \
     JSON_NO_FLAG, item_spec, sizeof(item_type)}
#define JSON_END {NULL, JSON_TYPE_END, 0, 0, 0, ERR_NONE, 0, JSON_NO_FLAG, NULL, 0}
/* clang-format on */

/*
 * Decodes body (len bytes, need not be NUL-terminated) as one JSON object into out according
 * to spec. Malformed JSON, duplicate keys, invalid UTF-8, a non-object, a wrong type or a
 * missing required field give ERR_INVALID_INPUT; a value out of range gives the spec's code.
 */
int json_decode(const char *body, size_t len, const struct json_spec *spec, void *out,
                struct arena *a, struct err *e);

/* What a keyed write (one with an idempotency key) needs of its body besides the fields. */
struct json_keyed {
    const char *key;       /* the top-level string member key_field; NULL when absent or null */
    bool key_not_string;   /* key_field is there but neither a string nor null (key is NULL) */
    const char *canonical; /* the body without that member: keys sorted, no white space, numbers
                            * and strings re-encoded, so two bodies that mean the same thing give
                            * the same text */
};

/*
 * json_decode, and from the same parse *k: a request body is parsed once. A key_field of
 * another type is only noted: whether that is an error, and when, is the caller's (the key is
 * checked after the token). Both strings are in the arena.
 */
int json_decode_keyed(const char *body, size_t len, const struct json_spec *spec, void *out,
                      const char *key_field, struct arena *a, struct json_keyed *k, struct err *e);

/* The canonical text (as json_keyed.canonical) of a body on its own, with its top-level member
 * omit_key (may be NULL) left out: for tests and tools; a request uses json_decode_keyed. */
int json_canonical(const char *body, size_t len, const char *omit_key, struct arena *a, char **out,
                   struct err *e);

/* Reads the string member key of a JSON object body into *out (NULL when absent or null);
 * ERR_INVALID_INPUT when the body is not an object or the member is not a string. */
int json_get_string(const char *body, size_t len, const char *key, struct arena *a,
                    const char **out, struct err *e);

/* Streaming writer. Keys and string values are escaped; nesting is at most 16 deep. */
struct json_w {
    struct buf out;
    int depth;
    bool first[16];
};

void json_w_init(struct json_w *w, struct arena *a);
void json_w_obj_begin(struct json_w *w, const char *key); /* key NULL inside arrays/at top */
void json_w_obj_end(struct json_w *w);
void json_w_arr_begin(struct json_w *w, const char *key);
void json_w_arr_end(struct json_w *w);
void json_w_int(struct json_w *w, const char *key, int64_t v);
void json_w_str(struct json_w *w, const char *key, const char *s);
void json_w_null(struct json_w *w, const char *key);
void json_w_bool(struct json_w *w, const char *key, bool v);
void json_w_time(struct json_w *w, const char *key, int64_t epoch_us); /* RFC 3339 */
void json_w_time_or_null(struct json_w *w, const char *key, int64_t epoch_us, bool is_null);
/* Returns the text written so far (NUL-terminated, in the arena) and its length. */
/* A page's cursor: the last id as a string when more follow, null when this page is the last. */
void json_w_cursor(struct json_w *w, const char *key, bool more, int64_t last_id);
const char *json_w_text(struct json_w *w, size_t *len);

/* Appends s to b as a quoted, escaped JSON string; bytes of s that are not well-formed UTF-8
 * become U+FFFD, so the result is valid JSON whatever s holds. */
void json_quote(struct buf *b, const char *s);

#endif
