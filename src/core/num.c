#include "core/num.h"

#include <string.h>

#include "core/banned.h"

int num_parse_i64_n(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    int negative = 0;
    uint64_t v = 0;

    if (len && s[0] == '-') {
        negative = 1;
        i = 1;
    }
    if (i == len || len - i > 19)
        return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits cannot overflow uint64_t */
    }
    if (!negative && v > (uint64_t)INT64_MAX)
        return -1;
    if (negative && v > (uint64_t)INT64_MAX + 1)
        return -1;
    int64_t r = negative ? (int64_t)(0 - v) : (int64_t)v;
    if (r < min || r > max)
        return -1;
    *out = r;
    return 0;
}

int num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return num_parse_i64_n(s, strlen(s), min, max, out);
}

int num_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
