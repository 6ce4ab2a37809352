#include "service/cart_svc.h"

#include <stdio.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "domain/balance.h"
#include "domain/cart.h"
#include "domain/product.h"
#include "redis/cache.h"
#include "redis/pipeline.h"
#include "repo/cart_repo.h"
#include "repo/db.h"
#include "repo/product_repo.h"
#include "repo/user_repo.h"
#include "service/product_svc.h"
#include "service/svc.h"

#include "core/banned.h"

struct lines_load {
    struct svc *svc;
    int64_t user_id;
};

static int load_lines(void *arg, struct arena *a, const char **value, struct err *e)
{
    struct lines_load *ctx = arg;
    struct cart_line *lines;
    struct db_conn *c;
    struct user user;
    size_t count;
    int rc;

    if (db_acquire(ctx->svc->db, &c, e))
        return -1;
    rc = user_repo_get(c, ctx->user_id, a, &user, e) ||
         cart_repo_lines(c, ctx->user_id, a, &lines, &count, e);
    db_release(ctx->svc->db, c);
    if (rc)
        return -1;
    *value = cart_lines_to_json(lines, count, a);
    return 0;
}

static void cart_key(int64_t user_id, char *key, size_t size)
{
    snprintf(key, size, "cart:user:%lld", (long long)user_id);
}

/* An empty view of user_id's cart with room for count lines. */
static void start_cart(struct cart *out, int64_t user_id, size_t count, struct arena *a)
{
    out->user_id = user_id;
    out->items = arena_calloc(a, count ? count : 1, sizeof(*out->items));
    out->count = 0;
    out->total_krw = 0;
}

int cart_svc_get(struct svc *s, int64_t user_id, struct arena *a, struct cart *out, struct err *e)
{
    struct lines_load ctx = {s, user_id};
    struct cart_line *lines;
    const char *json;
    size_t count;
    char key[48];

    cart_key(user_id, key, sizeof(key));
    if (cache_get(s->carts, key, load_lines, &ctx, a, &json, e))
        return -1;
    if (cart_lines_from_json(json, a, &lines, &count))
        return err_set(e, ERR_INTERNAL, "cached cart of user %lld is malformed",
                       (long long)user_id);
    int64_t *ids = arena_alloc(a, (count ? count : 1) * sizeof(*ids));
    struct product *products = arena_alloc(a, (count ? count : 1) * sizeof(*products));
    for (size_t i = 0; i < count; i++)
        ids[i] = lines[i].product_id;
    /* One batch for all the lines: one Redis round trip warm, one SELECT for what is cold.
     * Products are never deleted: not even NOT_FOUND is expected here. */
    if (product_svc_get_many(s, ids, count, a, products, e))
        return -1;
    start_cart(out, user_id, count, a);
    for (size_t i = 0; i < count; i++)
        cart_add_item(out, &products[i], lines[i].quantity);
    return 0;
}

/* A cart read on a loop, between its two round trips. */
struct cart_loop {
    int64_t user_id;
    struct cart_line *lines;
    size_t count;
};

int cart_svc_loop_key(struct svc *s, int64_t user_id, char *buf, size_t size)
{
    char key[48];

    cart_key(user_id, key, sizeof(key));
    return cache_loop_key(s->carts, key, buf, size);
}

int cart_svc_loop_lines(struct svc *s, int64_t user_id, const struct redis_value *reply,
                        struct arena *a, struct cart_loop **lines, const char ***argv)
{
    struct cart_loop *l = arena_calloc(a, 1, sizeof(*l));
    size_t len = 0;
    const char *json = cache_loop_value(s->carts, reply, &len);

    if (!json || cart_lines_from_json(json, a, &l->lines, &l->count))
        return -1;
    l->user_id = user_id;
    *lines = l;
    if (!l->count)
        return 0;
    int64_t *ids = arena_alloc(a, l->count * sizeof(*ids));
    for (size_t i = 0; i < l->count; i++)
        ids[i] = l->lines[i].product_id;
    if (product_svc_loop_mget(s, ids, l->count, a, argv))
        return -1;
    return (int)l->count + 1;
}

int cart_svc_loop_cart(struct svc *s, const struct cart_loop *lines,
                       const struct redis_value *reply, struct arena *a, struct cart *out)
{
    struct product p;

    if (lines->count &&
        (!reply || reply->type != REDIS_VALUE_ARRAY || reply->nelements != lines->count))
        return -1;
    start_cart(out, lines->user_id, lines->count, a);
    for (size_t i = 0; i < lines->count; i++) {
        if (product_svc_loop_product(s, &reply->elements[i], a, &p))
            return -1;
        cart_add_item(out, &p, lines->lines[i].quantity);
    }
    /* Answered from the cache: the lines and every product were hits. */
    cache_loop_hits(s->carts, 1);
    product_svc_loop_hits(s, lines->count);
    return 0;
}

enum change { CHANGE_ADD, CHANGE_SET };

/* A line for product_id may be written: the cart has room for it, or already has it. */
static int check_room(struct db_conn *c, int64_t user_id, int64_t product_id, struct err *e)
{
    int64_t others;

    if (cart_repo_count_other_lines(c, user_id, product_id, &others, e))
        return -1;
    if (others >= CART_LINES_MAX)
        return err_set(e, ERR_CART_FULL, "the cart of user %lld already holds %d products",
                       (long long)user_id, CART_LINES_MAX);
    return 0;
}

/*
 * In one transaction: locks the cart's owner (which also checks the user exists), checks the
 * product exists and the cart has room for a new line, then applies the change in one
 * statement. The owner's lock makes the line limit exact when changes race.
 */
static int change_line(struct svc *s, enum change kind, int64_t user_id, int64_t product_id,
                       int64_t quantity, struct arena *a, struct err *e)
{
    struct db_conn *c;
    struct product p;
    int rc;

    if (db_acquire(s->db, &c, e))
        return -1;
    rc = db_begin(c, e) || cart_repo_lock_owner(c, user_id, e) ||
         product_repo_get(c, product_id, a, &p, e);
    if (!rc && quantity > 0)
        rc = check_room(c, user_id, product_id, e);
    if (!rc && kind == CHANGE_ADD)
        rc = cart_repo_add(c, user_id, product_id, quantity, CART_QUANTITY_MAX, clock_now_us(), e);
    else if (!rc)
        rc = cart_repo_set(c, user_id, product_id, quantity, clock_now_us(), e);
    if (!rc)
        rc = db_commit(c, e);
    db_release(s->db, c); /* rolls back what was not committed */
    if (!rc) {
        char key[48];
        cart_key(user_id, key, sizeof(key));
        cache_invalidate(s->carts, key);
    }
    return rc ? -1 : 0;
}

int cart_svc_add(struct svc *s, int64_t user_id, int64_t product_id, int64_t quantity,
                 struct arena *a, struct cart *out, struct err *e)
{
    if (change_line(s, CHANGE_ADD, user_id, product_id, quantity, a, e))
        return -1;
    return cart_svc_get(s, user_id, a, out, e);
}

int cart_svc_set(struct svc *s, int64_t user_id, int64_t product_id, int64_t quantity,
                 struct arena *a, struct cart *out, struct err *e)
{
    if (change_line(s, CHANGE_SET, user_id, product_id, quantity, a, e))
        return -1;
    return cart_svc_get(s, user_id, a, out, e);
}
