#ifndef SHOPD_CORE_ARENA_H
#define SHOPD_CORE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

/*
 * A bump allocator for everything that lives as long as one request (or one command): bodies,
 * decoded fields, rows copied out of MariaDB, response text. Memory comes from chained 8 KiB
 * blocks; an allocation larger than a block gets a block of its own. Nothing is freed one by
 * one: arena_release() frees all of it at once, and ASan then catches any later use.
 *
 * An arena belongs to one thread at a time. Allocation never fails (xmalloc aborts on OOM).
 */

struct arena_block;

struct arena {
    struct arena_block *head;
    size_t used; /* bytes used in head */
};

#define ARENA_INIT \
    {              \
        NULL, 0    \
    }

void arena_init(struct arena *a);
void arena_release(struct arena *a);

/* Returns size bytes aligned for any type; zeroed by arena_calloc only. */
void *arena_alloc(struct arena *a, size_t size);
void *arena_calloc(struct arena *a, size_t count, size_t size);
char *arena_strdup(struct arena *a, const char *s);
char *arena_memdup(struct arena *a, const void *p, size_t len); /* adds a NUL after len bytes */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
