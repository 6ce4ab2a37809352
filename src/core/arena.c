#include "core/arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define BLOCK_SIZE 8192
#define ALIGN      16

struct arena_block {
    struct arena_block *next;
    size_t size;
    _Alignas(ALIGN) unsigned char data[];
};

void arena_init(struct arena *a)
{
    a->head = NULL;
    a->used = 0;
}

void arena_release(struct arena *a)
{
    struct arena_block *b = a->head;

    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    arena_init(a);
}

static struct arena_block *block_new(size_t size)
{
    struct arena_block *b = xmalloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    return b;
}

void *arena_alloc(struct arena *a, size_t size)
{
    if (size > SIZE_MAX / 2)
        BUG("arena allocation size overflows");
    size_t rounded = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);

    if (rounded > BLOCK_SIZE / 4) {
        /*
         * A large allocation gets its own block, linked behind the head so that the head's
         * free space stays in use for the small allocations that follow.
         */
        struct arena_block *big = block_new(rounded);
        if (a->head) {
            big->next = a->head->next;
            a->head->next = big;
        } else {
            a->head = big;
            a->used = rounded;
        }
        return big->data;
    }
    if (!a->head || a->used + rounded > a->head->size) {
        struct arena_block *b = block_new(BLOCK_SIZE);
        b->next = a->head;
        a->head = b;
        a->used = 0;
    }
    void *p = a->head->data + a->used;
    a->used += rounded;
    return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        BUG("arena_calloc size overflows");
    void *p = arena_alloc(a, count * size);
    memset(p, 0, count * size);
    return p;
}

char *arena_memdup(struct arena *a, const void *p, size_t len)
{
    char *s = arena_alloc(a, len + 1);
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_memdup(a, s, strlen(s));
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
    va_list copy;
    char small[256];

    va_copy(copy, ap);
    int n = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (n < 0)
        return arena_strdup(a, "");
    if ((size_t)n < sizeof(small))
        return arena_memdup(a, small, (size_t)n);
    char *s = arena_alloc(a, (size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    char *s = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return s;
}
