/*
 * Route matching (http/router.c router_match) over the service's real route table
 * (api/routes.c) and the platform's. The input is "METHOD path": the first space splits it.
 * Beyond "no crash, no UB", against API.md "Conventions": a path reaches a route only in its one
 * canonical spelling (ids as positive decimal integers without a leading zero or sign, so the
 * router's canonical path is the path itself), with the method of that route and as many ids as
 * the pattern has placeholders, each ≥ 1 and equal to the text of its segment; a 405 names in
 * Allow only methods of the table, each once and never the request's own method, and a path
 * whose every route differs in method; matching is a pure function (twice gives the same).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "api/routes.h"
#include "fuzz_common.h"
#include "http/router.h"

static size_t placeholders(const char *pattern)
{
    size_t n = 0;

    for (const char *p = pattern; (p = strchr(p, '{')); p++)
        n++;
    return n;
}

static bool in_table(const struct route *table, size_t count, const char *method, size_t n)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(table[i].method) == n && !memcmp(table[i].method, method, n))
            return true;
    return false;
}

/* Allow is "M1, M2, …": each a method of the table, none twice, never the request's. */
static void check_allow(const struct route *table, size_t count, const char *allow,
                        const char *method)
{
    const char *seen[16];
    size_t seen_len[16], nseen = 0;

    for (const char *p = allow; *p;) {
        const char *end = strstr(p, ", ");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        FUZZ_CHECK(in_table(table, count, p, n), "Allow '%s' names an unknown method", allow);
        FUZZ_CHECK(strlen(method) != n || memcmp(method, p, n), "405 for %s lists it in Allow '%s'",
                   method, allow);
        for (size_t i = 0; i < nseen; i++)
            FUZZ_CHECK(seen_len[i] != n || memcmp(seen[i], p, n), "Allow '%s' repeats", allow);
        FUZZ_CHECK(nseen < 16, "Allow '%s' is too long", allow);
        seen[nseen] = p;
        seen_len[nseen++] = n;
        p += n + (end ? 2 : 0);
    }
}

static void check(const struct route *table, size_t count, const char *method, const char *path)
{
    struct route_match m, again;
    enum router_result r = router_match(table, count, method, path, &m);
    enum router_result r2 = router_match(table, count, method, path, &again);

    FUZZ_CHECK(r == r2 && m.index == again.index && !strcmp(m.allow, again.allow),
               "router is not a function of its input");
    if (r == ROUTER_FOUND) {
        const struct route *rt = &table[m.index];
        FUZZ_CHECK(m.index >= 0 && (size_t)m.index < count, "index %d", m.index);
        FUZZ_CHECK(!strcmp(rt->method, method), "%s routed to %s", method, rt->method);
        FUZZ_CHECK((size_t)m.nparams == placeholders(rt->pattern), "%d ids for %s", m.nparams,
                   rt->pattern);
        for (int i = 0; i < m.nparams; i++)
            FUZZ_CHECK(m.params[i] >= 1, "id %" PRId64 " in %s", m.params[i], path);
        FUZZ_CHECK(!strcmp(m.canonical, path), "'%s' reaches %s but its canonical spelling is '%s'",
                   path, rt->pattern, m.canonical);
        return;
    }
    FUZZ_CHECK(m.index == -1, "no route but index %d", m.index);
    if (r == ROUTER_NOT_FOUND) {
        FUZZ_CHECK(m.allow[0] == '\0', "404 with Allow '%s'", m.allow);
        return;
    }
    FUZZ_CHECK(m.allow[0] != '\0', "405 without Allow for %s", path);
    check_allow(table, count, m.allow, method);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);

    memcpy(text, data, size);
    text[size] = '\0';
    char *sp = strchr(text, ' ');
    if (sp) {
        *sp = '\0';
        check(routes, routes_count, text, sp + 1);
        check(platform_routes, platform_routes_count, text, sp + 1);
    }
    free(text);
    return 0;
}
