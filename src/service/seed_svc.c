#include "service/seed_svc.h"

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "domain/balance.h"
#include "domain/money.h"
#include "domain/product.h"
#include "repo/balance_repo.h"
#include "repo/db.h"
#include "repo/product_repo.h"
#include "repo/user_repo.h"
#include "service/svc.h"

#include "core/banned.h"

static const struct {
    const char *name;
    int64_t balance_krw;
} demo_users[] = {
    {"Kim Minji", 500000},
    {"Lee Junho", 120000},
    {"Park Seoyeon", 0},
};

static const struct product demo_products[] = {
    {0, "Wireless Earbuds", "Noise-cancelling, 24 h battery", 89000, 500},
    {0, "Mechanical Keyboard", "Brown switches, Korean layout", 129000, 200},
    {0, "Hand Drip Coffee Set", "Dripper, filters and 200 g of beans", 35000, 1000},
    {0, "Limited Sneakers", "Numbered pair; few left", 239000, 10},
    {0, "Notebook A5", "Dotted, 160 pages", 6500, 5000},
};

static const char sql_find_by_name[] = "SELECT id FROM users WHERE name = ? LIMIT 1";
static const char sql_find_product[] = "SELECT id FROM products WHERE name = ? LIMIT 1";

static int seed_user(struct db_conn *c, const char *name, int64_t balance_krw, int *created,
                     struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_val p[] = {DB_STR(name)};
    struct db_rows rows;
    struct balance_entry entry = {0};
    int64_t id;
    int rc = -1;

    if (db_query(c, sql_find_by_name, p, 1, &a, &rows, e))
        goto out;
    if (rows.nrows) {
        rc = 0;
        goto out;
    }
    entry.created_us = clock_now_us();
    if (db_begin(c, e) || user_repo_insert(c, name, entry.created_us, &id, e))
        goto out;
    if (balance_krw > 0) {
        entry.type = BALANCE_CHARGE;
        entry.amount_krw = balance_krw;
        if (user_repo_add_balance(c, id, balance_krw, MONEY_BALANCE_MAX_KRW, 0,
                                  &entry.balance_after_krw, e) ||
            balance_repo_append(c, id, &entry, &entry.entry_id, e))
            goto out;
    }
    if (db_commit(c, e))
        goto out;
    (*created)++;
    rc = 0;
out:
    if (rc)
        db_rollback(c);
    arena_release(&a);
    return rc;
}

static int seed_product(struct db_conn *c, const struct product *p, int *created, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_val params[] = {DB_STR(p->name)};
    struct db_rows rows;
    int64_t id;
    int rc = db_query(c, sql_find_product, params, 1, &a, &rows, e);

    if (!rc && !rows.nrows) {
        rc = product_repo_insert(c, p, clock_now_us(), &id, e);
        *created += !rc;
    }
    arena_release(&a);
    return rc;
}

int seed_svc_run(struct svc *s, int *created, struct err *e)
{
    struct db_conn *c;
    int rc = 0;

    *created = 0;
    if (db_acquire(s->db, &c, e))
        return -1;
    for (size_t i = 0; !rc && i < sizeof(demo_users) / sizeof(demo_users[0]); i++)
        rc = seed_user(c, demo_users[i].name, demo_users[i].balance_krw, created, e);
    for (size_t i = 0; !rc && i < sizeof(demo_products) / sizeof(demo_products[0]); i++)
        rc = seed_product(c, &demo_products[i], created, e);
    db_release(s->db, c);
    return rc;
}
