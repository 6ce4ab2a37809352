#ifndef SHOPD_TESTS_FUZZ_UTF8_H
#define SHOPD_TESTS_FUZZ_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * A strict UTF-8 check (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF),
 * written independently of jansson so that the targets can judge the text jansson accepts or
 * the service emits. *code_points (may be NULL) receives the count.
 */
static inline bool fuzz_utf8_valid(const char *s, size_t len, size_t *code_points)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;

    while (i < len) {
        unsigned c = p[i];
        size_t extra;
        unsigned cp, min;

        if (c < 0x80) {
            i++;
            n++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
        n++;
    }
    if (code_points)
        *code_points = n;
    return true;
}

#endif
