#include "http/router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/num.h"

#include "core/banned.h"

/*
 * Matches path against pattern segment by segment. On success the ids are in m->params and the
 * canonical path (ids without leading zeros) in m->canonical.
 */
static bool match_pattern(const char *pattern, const char *path, struct route_match *m)
{
    const char *p = pattern, *s = path;
    size_t out = 0;

    m->nparams = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        const char *pend = strchr(p, '/');
        const char *send = strchr(s, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        size_t slen = send ? (size_t)(send - s) : strlen(s);
        int n;

        if (plen > 1 && p[0] == '{') {
            int64_t id;
            if (m->nparams == ROUTER_MAX_PARAMS || slen == 0 || s[0] == '-' ||
                num_parse_i64_n(s, slen, 1, INT64_MAX, &id))
                return false;
            m->params[m->nparams++] = id;
            n = snprintf(m->canonical + out, sizeof(m->canonical) - out, "/%lld", (long long)id);
        } else {
            if (plen != slen || memcmp(p, s, plen))
                return false;
            n = snprintf(m->canonical + out, sizeof(m->canonical) - out, "/%.*s", (int)slen, s);
        }
        if (n < 0 || (size_t)n >= sizeof(m->canonical) - out)
            return false;
        out += (size_t)n;
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
