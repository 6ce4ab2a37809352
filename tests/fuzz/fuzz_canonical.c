/*
 * Canonical JSON and the idempotency fingerprint (core/json.c json_canonical and
 * json_decode_keyed, service/idem_svc.c idem_fingerprint and idem_svc_prepare), and the JSON
 * writer that every
 * response goes through. Beyond "no crash, no leak, no UB": the canonical text of a canonical
 * text is itself (stable), it is pure ASCII with no white space outside strings; the
 * fingerprint is the SHA-256 of the canonical text without "idempotencyKey", so the body and its
 * canonical text, and the body with its key replaced, all fingerprint alike. idem_svc_prepare
 * (the first line of the input, when the first byte is '!', is the Idempotency-Key header)
 * accepts only a 1..255-character printable ASCII key that is the header's or the body's, and
 * then fingerprints exactly as idem_fingerprint does; json_decode_keyed's one parse gives the
 * same key as json_get_string. A valid UTF-8 string written by json_w_str reads back byte for
 * byte.
 */
#include <stdbool.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "core/json.h"
#include "core/sha256.h"
#include "fuzz_common.h"
#include "fuzz_utf8.h"
#include "service/idem_svc.h"

static void check_shape(const char *c)
{
    bool in_string = false;

    FUZZ_CHECK(c[0] == '{', "canonical '%s' is not an object", c);
    for (const char *p = c; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        FUZZ_CHECK(ch >= 0x20 && ch < 0x80, "canonical '%s' has byte 0x%02x", c, ch);
        if (in_string && ch == '\\') {
            p++;
            continue;
        }
        if (ch == '"')
            in_string = !in_string;
        FUZZ_CHECK(in_string || ch != ' ', "canonical '%s' has white space", c);
    }
}

static const struct json_spec no_fields[] = {JSON_END};

/* The body's one parse, as a keyed route without fields does it. */
static int keyed(const char *body, size_t len, struct arena *a, struct json_keyed *k, struct err *e)
{
    char unused;

    return json_decode_keyed(body, len, no_fields, &unused, IDEM_BODY_KEY_FIELD, a, k, e);
}

/* The fingerprint of a body, as a request gets it: its one parse, then idem_fingerprint. */
static int fingerprint_of(const char *body, size_t len, struct arena *a,
                          unsigned char out[SHA256_LEN], struct err *e)
{
    struct json_keyed k;

    if (keyed(body, len, a, &k, e))
        return -1;
    idem_fingerprint(k.canonical, out);
    return 0;
}

static void check_canonical(const char *body, size_t len, struct arena *a)
{
    char *c1, *c2, *without, *rekeyed;
    unsigned char f_body[SHA256_LEN], f_canon[SHA256_LEN], f_rekeyed[SHA256_LEN];
    unsigned char direct[SHA256_LEN];
    struct err e;

    err_clear(&e);
    if (json_canonical(body, len, NULL, a, &c1, &e)) {
        FUZZ_CHECK(e.code == ERR_INVALID_INPUT, "code %d", (int)e.code);
        FUZZ_CHECK(fuzz_utf8_valid(e.detail, strlen(e.detail), NULL), "detail '%s' not UTF-8",
                   e.detail);
        FUZZ_CHECK(fingerprint_of(body, len, a, f_body, &e) != 0, "fingerprint without JSON");
        return;
    }
    check_shape(c1);
    FUZZ_CHECK(json_canonical(c1, strlen(c1), NULL, a, &c2, &e) == 0, "'%s' fails again", c1);
    FUZZ_CHECK(!strcmp(c1, c2), "canonical text is not stable: '%s' then '%s'", c1, c2);

    FUZZ_CHECK(json_canonical(body, len, "idempotencyKey", a, &without, &e) == 0, "without key");
    FUZZ_CHECK(fingerprint_of(body, len, a, f_body, &e) == 0, "fingerprint");
    sha256(without, strlen(without), direct);
    FUZZ_CHECK(!memcmp(f_body, direct, SHA256_LEN), "fingerprint is not sha256(canonical)");
    FUZZ_CHECK(fingerprint_of(c1, strlen(c1), a, f_canon, &e) == 0, "canonical fingerprint");
    FUZZ_CHECK(!memcmp(f_body, f_canon, SHA256_LEN), "canonical text fingerprints otherwise");
    rekeyed = arena_printf(a, "{\"idempotencyKey\":\"another key\"%s%s",
                           without[1] == '}' ? "" : ",", without + 1);
    FUZZ_CHECK(fingerprint_of(rekeyed, strlen(rekeyed), a, f_rekeyed, &e) == 0, "'%s'", rekeyed);
    FUZZ_CHECK(!memcmp(f_body, f_rekeyed, SHA256_LEN), "the key changes the fingerprint");
}

static bool printable_key(const char *k)
{
    size_t n = strlen(k);

    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x20 || k[i] > 0x7e)
            return false;
    return n >= 1 && n <= 255;
}

static void check_prepare(const char *header_key, const char *body, size_t len, struct arena *a)
{
    struct idem_request r;
    struct json_keyed k;
    unsigned char fp[SHA256_LEN];
    const char *body_key = NULL;
    struct err e, e2;

    memset(&r, 0, sizeof(r));
    err_clear(&e);
    err_clear(&e2);
    if (keyed(body, len, a, &k, &e) ||
        idem_svc_prepare(&r, 7, "POST", "/api/orders", header_key, &k, &e)) {
        FUZZ_CHECK(e.code == ERR_INVALID_INPUT || e.code == ERR_IDEMPOTENCY_KEY_MISSING, "code %d",
                   (int)e.code);
        FUZZ_CHECK(fuzz_utf8_valid(e.detail, strlen(e.detail), NULL), "detail not UTF-8");
        if (e.code == ERR_IDEMPOTENCY_KEY_MISSING)
            FUZZ_CHECK(!header_key &&
                           json_get_string(body, len, "idempotencyKey", a, &body_key, &e2) == 0 &&
                           !body_key,
                       "a key was given, yet it is called missing");
        return;
    }
    FUZZ_CHECK(r.key && printable_key(r.key), "accepted key is not 1..255 printable ASCII");
    FUZZ_CHECK(json_get_string(body, len, "idempotencyKey", a, &body_key, &e2) == 0, "body key");
    FUZZ_CHECK(!body_key == !k.key && (!body_key || !strcmp(body_key, k.key)),
               "the one parse reads another key");
    if (header_key)
        FUZZ_CHECK(!strcmp(r.key, header_key) && (!body_key || !strcmp(body_key, header_key)),
                   "key '%s' is not the header's", r.key);
    else
        FUZZ_CHECK(body_key && !strcmp(r.key, body_key), "key '%s' is not the body's", r.key);
    FUZZ_CHECK(r.user_id == 7 && !strcmp(r.path, "/api/orders"), "request scope");
    FUZZ_CHECK(fingerprint_of(body, len, a, fp, &e2) == 0 && !memcmp(fp, r.fingerprint, SHA256_LEN),
               "prepare fingerprints otherwise");
}

static void check_writer(const char *s, size_t len, struct arena *a)
{
    struct json_w w;
    const char *back = NULL;
    size_t text_len;
    struct err e;

    if (memchr(s, '\0', len) || !fuzz_utf8_valid(s, len, NULL))
        return;
    json_w_init(&w, a);
    json_w_obj_begin(&w, NULL);
    json_w_str(&w, "k", s);
    json_w_obj_end(&w);
    const char *text = json_w_text(&w, &text_len);
    FUZZ_CHECK(json_get_string(text, text_len, "k", a, &back, &e) == 0, "writer output '%s': %s",
               text, e.detail);
    FUZZ_CHECK(back && !strcmp(back, s), "writer round trip of '%s'", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    const char *body = (const char *)data;
    size_t len = size;
    char *header_key = NULL;

    arena_init(&a);
    if (size > 0 && data[0] == '!') {
        const char *nl = memchr(data + 1, '\n', size - 1);
        size_t klen = nl ? (size_t)(nl - (const char *)data - 1) : size - 1;
        header_key = arena_memdup(&a, data + 1, klen);
        if (strlen(header_key) != klen)
            header_key = NULL; /* a header value has no NUL */
        body = nl ? nl + 1 : body + size;
        len = size - (size_t)(body - (const char *)data);
    }
    check_canonical(body, len, &a);
    check_prepare(header_key, body, len, &a);
    char *s = arena_memdup(&a, body, len);
    check_writer(s, len, &a);
    arena_release(&a);
    return 0;
}
