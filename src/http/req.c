#include "http/req.h"

#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/num.h"

#include "core/banned.h"

const char *req_header(struct req *r, const char *name)
{
    for (int i = 0; i < r->nfields; i++)
        if (!strcasecmp(r->fields[i].name, name))
            return r->fields[i].value;
    return NULL;
}

/* Percent-decodes s[0..len) into the arena; a malformed escape is kept as it came. */
static char *decode(struct arena *a, const char *s, size_t len)
{
    char *out = arena_alloc(a, len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi = 0;
        int lo = 0;
        if (s[i] == '%' && i + 2 < len && (hi = num_hex_digit(s[i + 1])) >= 0 &&
            (lo = num_hex_digit(s[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}

const char *req_query(struct req *r, const char *name)
{
    for (const char *p = r->query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t key_len = eq ? (size_t)(eq - p) : len;
        char *key = decode(&r->arena, p, key_len);
        if (!strcmp(key, name))
            return eq ? decode(&r->arena, eq + 1, len - key_len - 1) : "";
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

int req_query_count(const struct req *r)
{
    int n = 0;

    for (const char *p = r->query; p && *p; p++)
        if (p == r->query || p[-1] == '&')
            n += *p != '&';
    return n;
}

int64_t req_param(const struct req *r, int n)
{
    if (n >= r->match.nparams)
        BUG("route has fewer ids than the handler reads");
    return r->match.params[n];
}
