#ifndef SHOPD_CORE_NUM_H
#define SHOPD_CORE_NUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Strict decimal parsing for text that comes from outside (paths, query strings, tokens,
 * configuration): the whole string must be an optional '-' and 1 to 19 digits, in [min, max].
 * No spaces, no '+', no hex. Returns 0 or -1; never allocates.
 */
int num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* The same for the first len bytes of s (s need not be NUL-terminated). */
int num_parse_i64_n(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

/* The value of one hexadecimal digit (either case), or -1: for %XX escapes. */
int num_hex_digit(char c);

#endif
