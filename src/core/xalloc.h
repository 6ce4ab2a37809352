#ifndef SHOPD_CORE_XALLOC_H
#define SHOPD_CORE_XALLOC_H

#include <stddef.h>

/*
 * Allocation that never returns NULL: on exhaustion the process logs and aborts, so callers do
 * not check. Thread-safe, as malloc is.
 */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);

#endif
