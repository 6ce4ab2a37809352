#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/clock.h"

#include "core/banned.h"

/*
 * JSON_REJECT_DUPLICATES: {"amount":1,"amount":9} must not mean whichever the parser keeps.
 * jansson also rejects invalid UTF-8 and integers that do not fit json_int_t (int64_t).
 */
#define DECODE_FLAGS JSON_REJECT_DUPLICATES

/*
 * jansson's message quotes the input near the error ("invalid escape near ..."), so it may hold
 * any bytes, even half a UTF-8 character: only printable ASCII is kept, so that the detail is
 * valid UTF-8 (and fit for a log line) whatever the body held.
 */
static void printable_ascii(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

static json_t *parse_object(const char *body, size_t len, struct err *e)
{
    json_error_t jerr;

    if (!len)
        return err_set(e, ERR_INVALID_INPUT, "request body is empty; a JSON object is required"),
               NULL;
    json_t *root = json_loadb(body, len, DECODE_FLAGS, &jerr);
    if (!root) {
        printable_ascii(jerr.text);
        err_set(e, ERR_INVALID_INPUT, "malformed JSON at line %d column %d: %s", jerr.line,
                jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        err_set(e, ERR_INVALID_INPUT, "request body must be a JSON object");
        return NULL;
    }
    return root;
}

static size_t utf8_length(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/*
 * NOLINTBEGIN(misc-no-recursion): decode_object() recurses only through a JSON_TYPE_OBJECTS
 * field into that field's own spec table, never on the input's nesting, so the depth is bounded
 * by the static json_spec tables whatever the body holds.
 */
static int decode_object(json_t *obj, const struct json_spec *spec, void *out, const char *path,
                         struct arena *a, struct err *e);

static int decode_objects(json_t *v, const struct json_spec *f, void *out, const char *name,
                          struct arena *a, struct err *e)
{
    struct json_objects *dst = (struct json_objects *)((char *)out + f->offset);
    size_t n = json_array_size(v);

    if (!json_is_array(v))
        return err_set(e, ERR_INVALID_INPUT, "'%s' must be an array", name);
    if ((int64_t)n < f->min || (int64_t)n > f->max)
        return err_set(e, ERR_INVALID_INPUT, "'%s' must have %lld to %lld entries", name,
                       (long long)f->min, (long long)f->max);
    dst->count = n;
    dst->items = arena_calloc(a, n, f->item_size);
    for (size_t i = 0; i < n; i++) {
        char *item_path = arena_printf(a, "%s[%zu]", name, i);
        json_t *item = json_array_get(v, i);
        if (!json_is_object(item))
            return err_set(e, ERR_INVALID_INPUT, "'%s' must be an object", item_path);
        if (decode_object(item, f->items, (char *)dst->items + i * f->item_size, item_path, a, e))
            return -1;
    }
    return 0;
}

static int decode_field(json_t *v, const struct json_spec *f, void *out, const char *name,
                        struct arena *a, struct err *e)
{
    switch (f->type) {
    case JSON_TYPE_INT: {
        if (!json_is_integer(v))
            return err_set(e, ERR_INVALID_INPUT, "'%s' must be an integer", name);
        int64_t n = (int64_t)json_integer_value(v);
        if (n < f->min || n > f->max)
            return err_set(e, f->range_code, "'%s' must be between %lld and %lld", name,
                           (long long)f->min, (long long)f->max);
        *(int64_t *)((char *)out + f->offset) = n;
        return 0;
    }
    case JSON_TYPE_STRING: {
        if (!json_is_string(v))
            return err_set(e, ERR_INVALID_INPUT, "'%s' must be a string", name);
        const char *s = json_string_value(v);
        size_t chars = utf8_length(s);
        if ((int64_t)chars < f->min || (int64_t)chars > f->max)
            return err_set(e, ERR_INVALID_INPUT, "'%s' must be %lld to %lld characters long", name,
                           (long long)f->min, (long long)f->max);
        *(const char **)((char *)out + f->offset) = arena_memdup(a, s, json_string_length(v));
        return 0;
    }
    case JSON_TYPE_OBJECTS:
        return decode_objects(v, f, out, name, a, e);
    case JSON_TYPE_END:
        break;
    }
    BUG("unknown json_spec type");
}

/* A field that is absent (v is NULL) or null: an error only when its spec demands a value. */
static int check_absent(const json_t *v, const struct json_spec *f, const char *name, struct err *e)
{
    if (f->flags & JSON_REQUIRED)
        return err_set(e, ERR_INVALID_INPUT, "'%s' is required", name);
    if (v && (f->flags & JSON_NOT_NULL))
        return err_set(e, ERR_INVALID_INPUT, "'%s' must not be null", name);
    return 0;
}

static int decode_object(json_t *obj, const struct json_spec *spec, void *out, const char *path,
                         struct arena *a, struct err *e)
{
    for (const struct json_spec *f = spec; f->type != JSON_TYPE_END; f++) {
        json_t *v = json_object_get(obj, f->name);
        const char *name = path ? arena_printf(a, "%s.%s", path, f->name) : f->name;

        if (!v || json_is_null(v)) {
            if (check_absent(v, f, name, e))
                return -1;
            continue;
        }
        if (decode_field(v, f, out, name, a, e))
            return -1;
        if (f->present_offset != JSON_NO_FLAG)
            *(bool *)((char *)out + f->present_offset) = true;
    }
    return 0;
}
/* NOLINTEND(misc-no-recursion) */

int json_decode(const char *body, size_t len, const struct json_spec *spec, void *out,
                struct arena *a, struct err *e)
{
    json_t *root = parse_object(body, len, e);

    if (!root)
        return -1;
    int rc = decode_object(root, spec, out, NULL, a, e);
    json_decref(root);
    return rc;
}

/* The canonical text of obj once its top-level member omit_key is removed, in the arena. */
static int canonical_text(json_t *obj, const char *omit_key, struct arena *a, char **out,
                          struct err *e)
{
    if (omit_key)
        json_object_del(obj, omit_key);
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!text)
        return err_set(e, ERR_INTERNAL, "cannot encode canonical JSON");
    *out = arena_strdup(a, text);
    free(text);
    return 0;
}

/* The string member key of obj into k, in the arena. */
static void key_member(json_t *obj, const char *key, struct arena *a, struct json_keyed *k)
{
    json_t *v = json_object_get(obj, key);

    k->key = NULL;
    k->key_not_string = v && json_typeof(v) != JSON_NULL && json_typeof(v) != JSON_STRING;
    if (json_is_string(v))
        k->key = arena_memdup(a, json_string_value(v), json_string_length(v));
}

int json_decode_keyed(const char *body, size_t len, const struct json_spec *spec, void *out,
                      const char *key_field, struct arena *a, struct json_keyed *k, struct err *e)
{
    json_t *root = parse_object(body, len, e);

    if (!root)
        return -1;
    int rc = decode_object(root, spec, out, NULL, a, e);
    if (!rc) {
        char *canonical = NULL;
        key_member(root, key_field, a, k);
        rc = canonical_text(root, key_field, a, &canonical, e); /* removes the key member */
        k->canonical = canonical;
    }
    json_decref(root);
    return rc;
}

int json_canonical(const char *body, size_t len, const char *omit_key, struct arena *a, char **out,
                   struct err *e)
{
    json_t *root = parse_object(body, len, e);

    if (!root)
        return -1;
    int rc = canonical_text(root, omit_key, a, out, e);
    json_decref(root);
    return rc;
}

int json_get_string(const char *body, size_t len, const char *key, struct arena *a,
                    const char **out, struct err *e)
{
    json_t *root = parse_object(body, len, e);
    struct json_keyed k;

    if (!root)
        return -1;
    key_member(root, key, a, &k);
    json_decref(root);
    *out = k.key;
    if (k.key_not_string)
        return err_set(e, ERR_INVALID_INPUT, "'%s' must be a string", key);
    return 0;
}

/* ---- writer ---- */

/*
 * The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 when the bytes there are not one.
 */
static size_t utf8_len(const unsigned char *s)
{
    /* The range of the second byte depends on the first (RFC 3629's table). */
    static const struct {
        unsigned char first_lo, first_hi, lo, hi;
        size_t n;
    } forms[] = {
        {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3}, /* no overlong */
        {0xe1, 0xec, 0x80, 0xbf, 3}, {0xed, 0xed, 0x80, 0x9f, 3}, /* no surrogates */
        {0xee, 0xef, 0x80, 0xbf, 3}, {0xf0, 0xf0, 0x90, 0xbf, 4}, /* no overlong */
        {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4}, /* nothing past U+10FFFF */
    };

    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        if (s[0] < forms[f].first_lo || s[0] > forms[f].first_hi)
            continue;
        if (s[1] < forms[f].lo || s[1] > forms[f].hi)
            return 0;
        for (size_t i = 2; i < forms[f].n; i++)
            if (s[i] < 0x80 || s[i] > 0xbf)
                return 0;
        return forms[f].n;
    }
    return 0;
}

/* Bytes that are not well-formed UTF-8 become U+FFFD: whatever a request held (a path, a
 * header quoted in a detail), the JSON written is valid. */
void json_quote(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    buf_addch(b, '"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x80) {
            size_t n = utf8_len((const unsigned char *)s);
            if (n) {
                s += n - 1;
                continue;
            }
            buf_add(b, run, (size_t)(s - run));
            run = s + 1;
            buf_add(b, "\\ufffd", 6);
            continue;
        }
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        buf_add(b, run, (size_t)(s - run));
        run = s + 1;
        switch (ch) {
        case '"':
            buf_add(b, "\\\"", 2);
            break;
        case '\\':
            buf_add(b, "\\\\", 2);
            break;
        case '\n':
            buf_add(b, "\\n", 2);
            break;
        case '\r':
            buf_add(b, "\\r", 2);
            break;
        case '\t':
            buf_add(b, "\\t", 2);
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            buf_add(b, esc, sizeof(esc));
        }
        }
    }
    buf_add(b, run, (size_t)(s - run));
    buf_addch(b, '"');
}

void json_w_init(struct json_w *w, struct arena *a)
{
    buf_init(&w->out, a, 512);
    w->depth = 0;
    w->first[0] = true;
}

static void member(struct json_w *w, const char *key)
{
    if (!w->first[w->depth])
        buf_addch(&w->out, ',');
    w->first[w->depth] = false;
    if (key) {
        json_quote(&w->out, key);
        buf_addch(&w->out, ':');
    }
}

static void open_scope(struct json_w *w, const char *key, char ch)
{
    member(w, key);
    buf_addch(&w->out, ch);
    if (w->depth + 1 >= (int)(sizeof(w->first) / sizeof(w->first[0])))
        BUG("json writer nested too deep");
    w->first[++w->depth] = true;
}

void json_w_obj_begin(struct json_w *w, const char *key)
{
    open_scope(w, key, '{');
}

void json_w_obj_end(struct json_w *w)
{
    w->depth--;
    buf_addch(&w->out, '}');
}

void json_w_arr_begin(struct json_w *w, const char *key)
{
    open_scope(w, key, '[');
}

void json_w_arr_end(struct json_w *w)
{
    w->depth--;
    buf_addch(&w->out, ']');
}

void json_w_int(struct json_w *w, const char *key, int64_t v)
{
    member(w, key);
    buf_addf(&w->out, "%lld", (long long)v);
}

void json_w_str(struct json_w *w, const char *key, const char *s)
{
    member(w, key);
    json_quote(&w->out, s);
}

void json_w_null(struct json_w *w, const char *key)
{
    member(w, key);
    buf_add(&w->out, "null", 4);
}

void json_w_bool(struct json_w *w, const char *key, bool v)
{
    member(w, key);
    buf_addstr(&w->out, v ? "true" : "false");
}

void json_w_time(struct json_w *w, const char *key, int64_t epoch_us)
{
    char ts[CLOCK_RFC3339_LEN];

    clock_format_rfc3339(epoch_us, ts, sizeof(ts));
    json_w_str(w, key, ts);
}

void json_w_time_or_null(struct json_w *w, const char *key, int64_t epoch_us, bool is_null)
{
    if (is_null)
        json_w_null(w, key);
    else
        json_w_time(w, key, epoch_us);
}

void json_w_cursor(struct json_w *w, const char *key, bool more, int64_t last_id)
{
    char id[24];

    if (!more) {
        json_w_null(w, key);
        return;
    }
    snprintf(id, sizeof(id), "%lld", (long long)last_id);
    json_w_str(w, key, id);
}

const char *json_w_text(struct json_w *w, size_t *len)
{
    if (len)
        *len = w->out.len;
    return w->out.data;
}
