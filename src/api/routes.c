#include "api/routes.h"

#include <stdio.h>

#include "api/api_cart.h"
#include "api/api_coupons.h"
#include "api/api_ops.h"
#include "api/api_orders.h"
#include "api/api_products.h"
#include "api/api_users.h"
#include "core/array.h"
#include "core/err.h"
#include "http/router.h"

#include "core/banned.h"

/* clang-format off */
static const struct route table[] = {
    /* Users and balances */
    {"POST", "/api/admin/users",                          api_users_create,  ROUTE_ADMIN, 201, NULL},
    {"GET",  "/api/users/{userId}/balance",               api_users_balance, ROUTE_SELF, 200, NULL},
    {"POST", "/api/users/{userId}/balance/charge",        api_users_charge,  ROUTE_SELF, 200, NULL},
    {"GET",  "/api/users/{userId}/balance/history",       api_users_history, ROUTE_SELF, 200, NULL},
    /* Products */
    {"GET",   "/api/products",                            api_products_list,   ROUTE_PUBLIC, 200, NULL},
    {"GET",   "/api/products/top",                        api_products_top,    ROUTE_PUBLIC, 200,
     &api_products_top_loop},
    {"GET",   "/api/products/{productId}",                api_products_get,    ROUTE_PUBLIC, 200,
     &api_products_get_loop},
    {"POST",  "/api/admin/products",                      api_products_create, ROUTE_ADMIN, 201, NULL},
    {"PATCH", "/api/admin/products/{productId}",          api_products_patch,  ROUTE_ADMIN, 200, NULL},
    /* Cart */
    {"GET",    "/api/users/{userId}/cart",                api_cart_get,        ROUTE_SELF, 200,
     &api_cart_get_loop},
    {"POST",   "/api/users/{userId}/cart/items",          api_cart_add,        ROUTE_SELF, 200, NULL},
    {"PUT",    "/api/users/{userId}/cart/items/{productId}", api_cart_set,     ROUTE_SELF, 200, NULL},
    {"DELETE", "/api/users/{userId}/cart/items/{productId}", api_cart_remove,  ROUTE_SELF, 200, NULL},
    /* Coupons */
    {"POST",   "/api/admin/coupons",                      api_coupons_create,  ROUTE_ADMIN, 201, NULL},
    {"GET",    "/api/coupons/{couponId}",                 api_coupons_get,     ROUTE_PUBLIC, 200, NULL},
    {"POST",   "/api/coupons/{couponId}/issue",           api_coupons_issue,   ROUTE_USER, 201,
     &api_coupons_issue_loop},
    {"GET",    "/api/users/{userId}/coupons",             api_coupons_mine,    ROUTE_SELF, 200, NULL},
    /* Orders and payments */
    {"POST",   "/api/orders",                             api_orders_create,   ROUTE_USER, 201, NULL},
    {"GET",    "/api/orders/{orderId}",                   api_orders_get,      ROUTE_USER, 200, NULL},
    {"GET",    "/api/users/{userId}/orders",              api_orders_mine,     ROUTE_SELF, 200, NULL},
    {"POST",   "/api/orders/{orderId}/payment",           api_orders_pay,      ROUTE_USER, 200, NULL},
    {"POST",   "/api/orders/{orderId}/cancel",            api_orders_cancel,   ROUTE_USER, 200, NULL},
    /* Operations */
    {"GET",  "/healthz",                                  api_ops_healthz,   ROUTE_PUBLIC, 200, NULL},
    {"GET",  "/readyz",                                   api_ops_readyz,    ROUTE_PUBLIC, 200, NULL},
    {"GET",  "/metrics",                                  api_ops_metrics,   ROUTE_PUBLIC, 200, NULL},
    {"GET",  "/openapi.yaml",                             api_ops_openapi,   ROUTE_PUBLIC, 200, NULL},
};
/* clang-format on */

/* `shopd platform --listen`: only what an operator probes. */
static const struct route platform_table[] = {
    {"GET", "/healthz", api_ops_healthz, ROUTE_PUBLIC, 200, NULL},
    {"GET", "/metrics", api_ops_metrics, ROUTE_PUBLIC, 200, NULL},
};

#define NAME_MAX_LEN 128

const struct route *const routes = table;
const size_t routes_count = ARRAY_SIZE(table);
const struct route *const platform_routes = platform_table;
const size_t platform_routes_count = ARRAY_SIZE(platform_table);

static void name_routes(const struct route *t, size_t n, char (*storage)[NAME_MAX_LEN],
                        const char **names)
{
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(storage[i], NAME_MAX_LEN, "%s %s", t[i].method, t[i].pattern);
        if (len < 0 || len >= NAME_MAX_LEN)
            BUG("route name too long");
        names[i] = storage[i];
    }
}

const char *const *routes_names(void)
{
    static char storage[ARRAY_SIZE(table)][NAME_MAX_LEN];
    static const char *names[ARRAY_SIZE(table)];

    name_routes(table, ARRAY_SIZE(table), storage, names);
    return names;
}

const char *const *platform_routes_names(void)
{
    static char storage[ARRAY_SIZE(platform_table)][NAME_MAX_LEN];
    static const char *names[ARRAY_SIZE(platform_table)];

    name_routes(platform_table, ARRAY_SIZE(platform_table), storage, names);
    return names;
}
