/*
 * Pagination cursors and every other integer that comes from outside (path ids, query
 * parameters, token subjects, configuration) go through core/num.c: the API renders a
 * nextCursor as the decimal id ("%lld") and api_query_cursor() reads it back with
 * num_parse_i64(v, 1, INT64_MAX). Beyond "no crash, no UB" this target checks num_parse_i64_n
 * against an independent reference (an optional '-', then 1 to 19 ASCII digits, value computed
 * in 128 bits and compared with the bounds), for the bounds the input itself chooses and for the
 * cursor's [1, INT64_MAX]; it checks that every accepted cursor re-renders to a cursor that
 * parses to the same id, and that a rendered cursor for any id in range parses back exactly.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "core/num.h"
#include "fuzz_common.h"

/* The reference reading: -1 when the text is not an integer in [min, max]. */
static int reference(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool negative = len > 0 && s[0] == '-';
    __int128 v = 0;

    if (negative)
        i = 1;
    if (len - i < 1 || len - i > 19)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (negative)
        v = -v;
    if (v < min || v > max)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static void check_parse(const char *s, size_t len, int64_t min, int64_t max)
{
    int64_t got = 0, want = 0;
    int rc = num_parse_i64_n(s, len, min, max, &got);
    int ref = reference(s, len, min, max, &want);

    FUZZ_CHECK(rc == ref, "'%.*s' in [%lld, %lld]: num says %d, reference %d", (int)len, s,
               (long long)min, (long long)max, rc, ref);
    if (rc == 0)
        FUZZ_CHECK(got == want, "'%.*s': %lld, reference %lld", (int)len, s, (long long)got,
                   (long long)want);
}

static void check_cursor(const char *text, size_t len)
{
    char rendered[32];
    int64_t id, again;

    if (memchr(text, '\0', len))
        return; /* a query value is a C string */
    if (num_parse_i64(text, 1, INT64_MAX, &id))
        return;
    FUZZ_CHECK(id >= 1, "cursor '%s' gives id %lld", text, (long long)id);
    snprintf(rendered, sizeof(rendered), "%" PRId64, id);
    FUZZ_CHECK(num_parse_i64(rendered, 1, INT64_MAX, &again) == 0 && again == id,
               "cursor '%s' re-renders as '%s'", text, rendered);
}

static void check_rendered(int64_t id)
{
    char rendered[32];
    int64_t again;

    if (id < 1)
        return;
    snprintf(rendered, sizeof(rendered), "%" PRId64, id);
    FUZZ_CHECK(num_parse_i64(rendered, 1, INT64_MAX, &again) == 0 && again == id,
               "rendered cursor '%s' reads back as %lld", rendered, (long long)again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[64];
    int64_t a = 0, b = 0;

    /* Layout: [16 bytes of bounds] text. Short inputs are text only, with the cursor's bounds. */
    if (size >= 16 + 1) {
        memcpy(&a, data, 8);
        memcpy(&b, data + 8, 8);
        check_rendered(a);
        check_parse((const char *)data + 16, size - 16, a < b ? a : b, a < b ? b : a);
    }
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    check_parse(text, size, 1, INT64_MAX);
    check_parse(text, size, INT64_MIN, INT64_MAX);
    check_cursor(text, size);
    return 0;
}
