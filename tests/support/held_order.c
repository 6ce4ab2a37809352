#include "held_order.h"

#include <stdio.h>
#include <string.h>

#include "core/arena.h"
#include "core/err.h"
#include "harness.h"
#include "http_client.h"
#include "repo/db.h"

/* The process list shows the user's own connections (INNODB_TRX would need PROCESS). */
static const char sql_waiter[] =
    "SELECT COALESCE(MAX(ID), 0) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
    "AND ID <> CONNECTION_ID() AND INFO LIKE 'UPDATE products%'";

static void *order_main(void *arg)
{
    struct held_order *o = arg;
    struct http_client c;
    struct http_result r;
    char header[128];

    snprintf(header, sizeof(header), "Idempotency-Key: %s", o->key);
    http_client_init(&c);
    if (!http_do(&c, "POST", o->url, o->token, "application/json", o->body, strlen(o->body), header,
                 &r)) {
        atomic_store(&o->status, r.status);
        http_result_free(&r);
    }
    http_client_release(&c);
    return NULL;
}

static bool found_waiter(void *arg)
{
    struct held_order *o = arg;

    o->waiter = harness_sql_int(o->h, sql_waiter, 0);
    return o->waiter > 0;
}

int held_order_start(struct held_order *o, struct harness *h, const struct harness_server *s,
                     int64_t user, const char *token, int64_t product, const char *key)
{
    static const char sql_hold[] = "SELECT stock FROM products WHERE id = ? FOR UPDATE";
    struct db_val id[] = {DB_INT(product)};
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    struct err e;

    memset(o, 0, sizeof(*o));
    o->h = h;
    o->token = token;
    atomic_init(&o->status, -1);
    snprintf(o->key, sizeof(o->key), "%s", key);
    snprintf(o->url, sizeof(o->url), "%s/api/orders", s->url);
    snprintf(o->body, sizeof(o->body),
             "{\"userId\":%lld,\"items\":[{\"productId\":%lld,\"quantity\":1}]}", (long long)user,
             (long long)product);
    if (db_acquire(h->pool, &o->holder, &e))
        goto fail;
    int rc = db_exec_script(o->holder, "START TRANSACTION", &e) ||
             db_query(o->holder, sql_hold, id, 1, &a, &rows, &e);
    arena_release(&a);
    if (rc)
        goto fail;
    if (pthread_create(&o->thread, NULL, order_main, o)) {
        err_set(&e, ERR_INTERNAL, "pthread_create failed");
        goto fail;
    }
    if (harness_wait_for(found_waiter, o, 10000))
        return 0;
    pthread_join(o->thread, NULL);
    err_set(&e, ERR_INTERNAL, "the order never waited on the row; it answered %ld",
            atomic_load(&o->status));
fail:
    fprintf(stderr, "held_order: %s\n", e.detail);
    if (o->holder) {
        db_exec_script(o->holder, "ROLLBACK", &e);
        db_release(h->pool, o->holder);
        o->holder = NULL;
    }
    return -1;
}

bool held_order_waiting(struct held_order *o)
{
    return atomic_load(&o->status) == -1 && found_waiter(o);
}

long held_order_finish(struct held_order *o)
{
    struct err e;

    if (db_exec_script(o->holder, "COMMIT", &e))
        fprintf(stderr, "held_order: COMMIT: %s\n", e.detail);
    db_release(o->h->pool, o->holder);
    o->holder = NULL;
    pthread_join(o->thread, NULL);
    return atomic_load(&o->status);
}
