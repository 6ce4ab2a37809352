#ifndef SHOPD_HTTP_ADDR_COUNT_H
#define SHOPD_HTTP_ADDR_COUNT_H

#include <stdint.h>

/*
 * Open connections per client address (IPv4), shared by the event loops: the per-address cap
 * of API.md "Connections" (SHOPD_MAX_CONNS_PER_IP), so that one client cannot take every slot.
 * An address is held only while it has connections open.
 */

struct addr_count;

struct addr_count *addr_count_new(void);
void addr_count_free(struct addr_count *t);

/* Takes one connection slot for addr if it holds fewer than cap: 0, else -1. */
int addr_count_take(struct addr_count *t, uint32_t addr, int cap);

/* Gives back a slot that addr_count_take() gave. */
void addr_count_give(struct addr_count *t, uint32_t addr);

#endif
