#include "service/product_svc.h"

#include <stdio.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "domain/product.h"
#include "redis/cache.h"
#include "repo/db.h"
#include "repo/product_repo.h"
#include "repo/sales_repo.h"
#include "service/ranking_svc.h"
#include "service/svc.h"

#include "core/banned.h"

struct product_load {
    struct svc *svc;
    int64_t product_id;
};

static int load_product(void *arg, struct arena *a, const char **value, struct err *e)
{
    struct product_load *ctx = arg;
    struct db_conn *c;
    struct product p;

    if (db_acquire(ctx->svc->db, &c, e))
        return -1;
    int rc = product_repo_get(c, ctx->product_id, a, &p, e);
    db_release(ctx->svc->db, c);
    if (rc && e->code == ERR_PRODUCT_NOT_FOUND) {
        *value = NULL; /* cached as absent, briefly: unknown ids cost one GET */
        return 0;
    }
    if (rc)
        return -1;
    *value = product_to_json(&p, a);
    return 0;
}

int product_svc_get(struct svc *s, int64_t product_id, struct arena *a, struct product *out,
                    const char **json, struct err *e)
{
    struct product_load ctx = {s, product_id};
    char key[48];

    snprintf(key, sizeof(key), "product:%lld", (long long)product_id);
    if (cache_get(s->products, key, load_product, &ctx, a, json, e))
        return -1;
    if (!*json)
        return err_set(e, ERR_PRODUCT_NOT_FOUND, "product %lld does not exist",
                       (long long)product_id);
    if (product_from_json(*json, a, out))
        return err_set(e, ERR_INTERNAL, "cached product %lld is not a Product",
                       (long long)product_id);
    return 0;
}

struct products_load {
    struct svc *svc;
    const int64_t *ids; /* the batch's, ids[i] for key i */
};

/* The Product JSON of which[j]'s id, for each j, from one SELECT; NULL for an unknown id. */
static int load_products(void *arg, size_t n, const size_t *which, struct arena *a,
                         const char **values, struct err *e)
{
    struct products_load *ctx = arg;
    int64_t *ids = arena_alloc(a, n * sizeof(*ids));
    struct product *found;
    struct db_conn *c;
    size_t count;

    for (size_t j = 0; j < n; j++)
        ids[j] = ctx->ids[which[j]];
    if (db_acquire(ctx->svc->db, &c, e))
        return -1;
    int rc = product_repo_find_many(c, ids, n, a, &found, &count, e);
    db_release(ctx->svc->db, c);
    if (rc)
        return -1;
    /* At most 100 by 100: a scan is cheaper than sorting. */
    for (size_t j = 0; j < n; j++) {
        values[which[j]] = NULL;
        for (size_t k = 0; k < count; k++)
            if (found[k].product_id == ids[j])
                values[which[j]] = product_to_json(&found[k], a);
    }
    return 0;
}

static int get_batch(struct svc *s, const int64_t *ids, size_t n, struct arena *a,
                     struct product *out, struct err *e)
{
    const char **keys = arena_alloc(a, n * sizeof(*keys));
    const char **json = arena_alloc(a, n * sizeof(*json));
    struct products_load ctx = {s, ids};

    for (size_t i = 0; i < n; i++)
        keys[i] = arena_printf(a, "product:%lld", (long long)ids[i]);
    if (cache_get_many(s->products, n, keys, load_products, &ctx, a, json, e))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!json[i])
            return err_set(e, ERR_PRODUCT_NOT_FOUND, "product %lld does not exist",
                           (long long)ids[i]);
        if (product_from_json(json[i], a, &out[i]))
            return err_set(e, ERR_INTERNAL, "cached product %lld is not a Product",
                           (long long)ids[i]);
    }
    return 0;
}

int product_svc_get_many(struct svc *s, const int64_t *ids, size_t n, struct arena *a,
                         struct product *out, struct err *e)
{
    for (size_t from = 0; from < n; from += PRODUCT_SVC_BATCH_MAX) {
        size_t m = n - from < PRODUCT_SVC_BATCH_MAX ? n - from : PRODUCT_SVC_BATCH_MAX;
        if (get_batch(s, ids + from, m, a, out + from, e))
            return -1;
    }
    return 0;
}

int product_svc_loop_key(struct svc *s, int64_t product_id, char *buf, size_t size)
{
    char key[48];

    snprintf(key, sizeof(key), "product:%lld", (long long)product_id);
    return cache_loop_key(s->products, key, buf, size);
}

/* The cached Product JSON in reply, not yet counted as a hit. What load_product stores is an
 * object; anything else is left to product_svc_get. */
static const char *product_json(struct svc *s, const struct redis_value *reply, size_t *len)
{
    const char *json = cache_loop_value(s->products, reply, len);

    return json && *len > 1 && json[0] == '{' ? json : NULL;
}

const char *product_svc_loop_value(struct svc *s, const struct redis_value *reply, size_t *len)
{
    const char *json = product_json(s, reply, len);

    if (json)
        cache_loop_hits(s->products, 1);
    return json;
}

int product_svc_loop_mget(struct svc *s, const int64_t *ids, size_t n, struct arena *a,
                          const char ***argv)
{
    const char **keys = arena_alloc(a, (n + 1) * sizeof(*keys));

    if (!n || n > PRODUCT_SVC_BATCH_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        keys[i + 1] = arena_printf(a, "product:%lld", (long long)ids[i]);
    if (cache_loop_keys(s->products, n, keys + 1, a, keys + 1))
        return -1;
    keys[0] = "MGET";
    *argv = keys;
    return 0;
}

int product_svc_loop_product(struct svc *s, const struct redis_value *element, struct arena *a,
                             struct product *out)
{
    size_t len = 0;
    const char *json = product_json(s, element, &len);

    /* hiredis ends each string with a NUL, as product_from_json needs */
    return json && !product_from_json(json, a, out) ? 0 : -1;
}

void product_svc_loop_hits(struct svc *s, size_t n)
{
    cache_loop_hits(s->products, n);
}

void product_svc_invalidate(struct svc *s, int64_t product_id)
{
    product_svc_invalidate_many(s, 1, &product_id);
}

void product_svc_invalidate_many(struct svc *s, size_t n, const int64_t *product_ids)
{
    struct arena a = ARENA_INIT;
    const char **keys = arena_alloc(&a, (n ? n : 1) * sizeof(*keys));

    for (size_t i = 0; i < n; i++)
        keys[i] = arena_printf(&a, "product:%lld", (long long)product_ids[i]);
    cache_invalidate_many(s->products, n, keys);
    arena_release(&a);
}

int product_svc_list(struct svc *s, int64_t after_id, int limit, struct arena *a,
                     struct product **out, size_t *count, int *more, struct err *e)
{
    struct db_conn *c;

    if (db_acquire(s->db, &c, e))
        return -1;
    /* One extra row tells whether another page follows. */
    int rc = product_repo_page(c, after_id, limit + 1, a, out, count, e);
    db_release(s->db, c);
    if (rc)
        return -1;
    *more = *count > (size_t)limit;
    if (*more)
        *count = (size_t)limit;
    return 0;
}

int product_svc_create(struct svc *s, const struct product *p, struct arena *a, struct product *out,
                       struct err *e)
{
    struct db_conn *c;

    if (db_acquire(s->db, &c, e))
        return -1;
    *out = *p;
    int rc = product_repo_insert(c, p, clock_now_us(), &out->product_id, e);
    db_release(s->db, c);
    /*
     * The id is new, but a read of it may have come before (ids are AUTO_INCREMENT, so they can
     * be guessed) and left a negative entry: drop it before the creator hears of the product.
     */
    if (!rc)
        product_svc_invalidate(s, out->product_id);
    return rc;
}

int product_svc_patch(struct svc *s, int64_t product_id, const struct product_patch *patch,
                      struct arena *a, struct product *out, struct err *e)
{
    struct db_conn *c;
    int rc = -1;

    if (db_acquire(s->db, &c, e))
        return -1;
    if (db_begin(c, e))
        goto out;
    if (product_repo_get_for_update(c, product_id, a, out, e))
        goto out;
    product_apply_patch(out, patch);
    if (product_repo_update(c, out, clock_now_us(), e) || db_commit(c, e))
        goto out;
    rc = 0;
out:
    db_release(s->db, c); /* rolls back what was not committed */
    if (!rc)
        product_svc_invalidate(s, product_id);
    return rc;
}

struct top_load {
    struct svc *svc;
    int days, limit;
};

static int load_top(void *arg, struct arena *a, const char **value, struct err *e)
{
    struct top_load *ctx = arg;
    struct product_rank *ranks;
    size_t count;

    if (ranking_svc_top(ctx->svc, ctx->days, ctx->limit, a, &ranks, &count, e))
        return -1;
    *value = product_top_to_json(ctx->days, ranks, count, a);
    return 0;
}

int product_svc_top(struct svc *s, int days, int limit, struct arena *a, const char **json,
                    struct err *e)
{
    struct top_load ctx = {s, days, limit};
    char key[48];

    snprintf(key, sizeof(key), "top-products:%d:%d", days, limit);
    return cache_get(s->top, key, load_top, &ctx, a, json, e);
}

int product_svc_top_loop_key(struct svc *s, int days, int limit, char *buf, size_t size)
{
    char key[48];

    snprintf(key, sizeof(key), "top-products:%d:%d", days, limit);
    return cache_loop_key(s->top, key, buf, size);
}

const char *product_svc_top_loop_value(struct svc *s, const struct redis_value *reply, size_t *len)
{
    const char *json = cache_loop_value(s->top, reply, len);

    /* What load_top stores is an object; anything else is left to product_svc_top. */
    if (!json || *len < 2 || json[0] != '{')
        return NULL;
    cache_loop_hits(s->top, 1);
    return json;
}
