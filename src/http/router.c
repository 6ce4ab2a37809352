#include "http/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/num.h"

#include "core/banned.h"

void loop_command_get(struct loop_command *cmd, struct arena *a, const char *key)
{
    cmd->argc = 2;
    cmd->argv = arena_alloc(a, 2 * sizeof(*cmd->argv));
    cmd->argv[0] = "GET";
    cmd->argv[1] = arena_strdup(a, key);
    cmd->lens = NULL;
}

int router_parse_id(const char *s, size_t len, int64_t *id)
{
    /* No sign, no leading zero, digits only: num_parse_i64_n then checks the range. */
    if (len == 0 || len > 19 || s[0] < '1' || s[0] > '9')
        return -1;
    for (size_t i = 1; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    return num_parse_i64_n(s, len, 1, INT64_MAX, id);
}

/* The length of the segment at p: up to the next '/' or the end of the string. */
static size_t segment_len(const char *p)
{
    const char *end = strchr(p, '/');

    return end ? (size_t)(end - p) : strlen(p);
}

/*
 * Matches one pattern segment (an {id} placeholder or literal text) against one path segment and
 * appends its canonical form at m->canonical + *out. False on a mismatch, on too many ids, or
 * when the canonical path would not fit.
 */
static bool match_segment(const char *p, size_t plen, const char *s, size_t slen,
                          struct route_match *m, size_t *out)
{
    int n;

    if (plen > 1 && p[0] == '{') {
        int64_t id;
        if (m->nparams == ROUTER_MAX_PARAMS || router_parse_id(s, slen, &id))
            return false;
        m->params[m->nparams++] = id;
        n = snprintf(m->canonical + *out, sizeof(m->canonical) - *out, "/%lld", (long long)id);
    } else {
        if (plen != slen || memcmp(p, s, plen))
            return false;
        n = snprintf(m->canonical + *out, sizeof(m->canonical) - *out, "/%.*s", (int)slen, s);
    }
    if (n < 0 || (size_t)n >= sizeof(m->canonical) - *out)
        return false;
    *out += (size_t)n;
    return true;
}

/*
 * Matches path against pattern segment by segment. On success the ids are in m->params and the
 * canonical path in m->canonical (the path itself, as only canonical ids match).
 */
static bool match_pattern(const char *pattern, const char *path, struct route_match *m)
{
    const char *p = pattern;
    const char *s = path;
    size_t out = 0;

    m->nparams = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        size_t plen = segment_len(p);
        size_t slen = segment_len(s);

        if (!match_segment(p, plen, s, slen, m, &out))
            return false;
        p += plen;
        s += slen;
    }
    return !*p && !*s;
}

static void add_allow(struct route_match *m, const char *method)
{
    size_t len = strlen(m->allow);

    if (strstr(m->allow, method))
        return;
    snprintf(m->allow + len, sizeof(m->allow) - len, "%s%s", len ? ", " : "", method);
}

enum router_result router_match(const struct route *table, size_t count, const char *method,
                                const char *path, struct route_match *m)
{
    bool path_known = false;

    m->index = -1;
    m->allow[0] = '\0';
    m->canonical[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        struct route_match candidate;
        if (!match_pattern(table[i].pattern, path, &candidate))
            continue;
        if (!strcmp(table[i].method, method)) {
            memcpy(m->params, candidate.params, sizeof(m->params));
            m->nparams = candidate.nparams;
            memcpy(m->canonical, candidate.canonical, sizeof(m->canonical));
            m->index = (int)i;
            return ROUTER_FOUND;
        }
        path_known = true;
        add_allow(m, table[i].method);
    }
    return path_known ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}
