#ifndef SHOPD_TESTS_HELD_ORDER_H
#define SHOPD_TESTS_HELD_ORDER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * An order left waiting on a row lock, for the tests of what happens meanwhile: the test holds
 * a product's row (SELECT ... FOR UPDATE in a transaction on a connection of the harness's own
 * pool), and an order of one unit of it goes to a server from a thread of its own, until its
 * stock UPDATE is seen waiting on the row in MariaDB's process list. Waits are on conditions.
 */

struct db_conn;
struct harness;
struct harness_server;

struct held_order {
    struct db_conn *holder; /* holds the row; the test may send it statements (a KILL) */
    int64_t waiter;         /* the MariaDB connection id of the order's waiting statement */
    atomic_long status;     /* the order's answer once held_order_finish() returned; -1: none */
    /* private */
    struct harness *h;
    char url[160], body[160], key[96];
    const char *token;
    pthread_t thread;
};

/* 0 once the order (key: its Idempotency-Key) waits on product's row, within 10 s; -1 with
 * the reason printed when it does not (then nothing is held and nothing runs). */
int held_order_start(struct held_order *o, struct harness *h, const struct harness_server *s,
                     int64_t user, const char *token, int64_t product, const char *key);

/* Whether the order's statement still waits on the row (and no answer came yet). */
bool held_order_waiting(struct held_order *o);

/* Lets the row go (COMMIT), waits for the order's answer and returns its status (-1: none). */
long held_order_finish(struct held_order *o);

#endif
