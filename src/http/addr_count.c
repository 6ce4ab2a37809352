#include "http/addr_count.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/xalloc.h"

#include "core/banned.h"

#define BUCKETS 1024 /* a power of two */

struct entry {
    struct entry *next;
    uint32_t addr;
    int count;
};

struct addr_count {
    pthread_mutex_t lock;
    struct entry *bucket[BUCKETS];
};

static struct entry **slot(struct addr_count *t, uint32_t addr)
{
    /* Fibonacci hashing: neighbouring addresses land far apart. */
    struct entry **e = &t->bucket[(addr * 2654435761u) >> 22 & (BUCKETS - 1)];

    while (*e && (*e)->addr != addr)
        e = &(*e)->next;
    return e;
}

struct addr_count *addr_count_new(void)
{
    struct addr_count *t = xcalloc(1, sizeof(*t));

    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void addr_count_free(struct addr_count *t)
{
    for (size_t i = 0; i < BUCKETS; i++)
        while (t->bucket[i]) {
            struct entry *e = t->bucket[i];
            t->bucket[i] = e->next;
            free(e);
        }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int addr_count_take(struct addr_count *t, uint32_t addr, int cap)
{
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    struct entry **e = slot(t, addr);
    if (!*e) {
        *e = xcalloc(1, sizeof(**e));
        (*e)->addr = addr;
    }
    if ((*e)->count >= cap)
        rc = -1;
    else
        (*e)->count++;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void addr_count_give(struct addr_count *t, uint32_t addr)
{
    pthread_mutex_lock(&t->lock);
    struct entry **e = slot(t, addr);
    if (!*e || (*e)->count <= 0)
        BUG("an address gave back a connection it never took");
    if (--(*e)->count == 0) {
        struct entry *gone = *e;
        *e = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&t->lock);
}
