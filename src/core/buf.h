#ifndef SHOPD_CORE_BUF_H
#define SHOPD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

/*
 * A growable byte string whose memory comes from an arena, for building response text. The
 * data is always NUL-terminated. Growth copies into a larger arena allocation; the old space
 * is reclaimed with the arena. Not thread-safe (neither is its arena).
 */

struct arena;

struct buf {
    char *data;
    size_t len;
    size_t cap;
    struct arena *arena;
};

void buf_init(struct buf *b, struct arena *a, size_t hint);
void buf_add(struct buf *b, const void *data, size_t len);
void buf_addstr(struct buf *b, const char *s);
void buf_addch(struct buf *b, char ch);
void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
