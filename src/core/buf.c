#include "core/buf.h"

#include <stdio.h>
#include <string.h>

#include "core/arena.h"

#include "core/banned.h"

void buf_init(struct buf *b, struct arena *a, size_t hint)
{
    b->arena = a;
    b->cap = hint < 64 ? 64 : hint;
    b->data = arena_alloc(a, b->cap);
    b->len = 0;
    b->data[0] = '\0';
}

static void grow(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap * 2;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *data = arena_alloc(b->arena, cap);
    memcpy(data, b->data, b->len + 1);
    b->data = data;
    b->cap = cap;
}

void buf_add(struct buf *b, const void *data, size_t len)
{
    grow(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void buf_addstr(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

void buf_addch(struct buf *b, char ch)
{
    grow(b, 1);
    b->data[b->len++] = ch;
    b->data[b->len] = '\0';
}

void buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        grow(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}
