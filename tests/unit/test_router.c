#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"

/* A table shaped like api/routes.c; handlers are never called by the router. */
static const struct route table[] = {
    {"GET", "/api/products", NULL, ROUTE_PUBLIC, 200, NULL},
    {"GET", "/api/products/{id}", NULL, ROUTE_PUBLIC, 200, NULL},
    {"GET", "/api/products/top", NULL, ROUTE_PUBLIC, 200, NULL},
    {"POST", "/api/admin/products", NULL, ROUTE_ADMIN, 200, NULL},
    {"PATCH", "/api/admin/products/{id}", NULL, ROUTE_ADMIN, 200, NULL},
    {"GET", "/api/users/{id}/balance", NULL, ROUTE_SELF, 200, NULL},
    {"POST", "/api/users/{id}/balance/charge", NULL, ROUTE_SELF, 200, NULL},
    {"GET", "/api/users/{id}/cart", NULL, ROUTE_SELF, 200, NULL},
    {"PUT", "/api/users/{id}/cart/items/{pid}", NULL, ROUTE_SELF, 200, NULL},
    {"DELETE", "/api/users/{id}/cart/items/{pid}", NULL, ROUTE_SELF, 200, NULL},
    {"GET", "/api/orders/{id}", NULL, ROUTE_USER, 200, NULL},
    {"POST", "/api/orders", NULL, ROUTE_USER, 200, NULL},
    {"GET", "/api/orders/top", NULL, ROUTE_PUBLIC, 200, NULL},
    {"GET", "/healthz", NULL, ROUTE_PUBLIC, 200, NULL},
};
#define NROUTES (sizeof(table) / sizeof(table[0]))

static enum router_result match(const char *method, const char *path, struct route_match *m)
{
    memset(m, 0xAB, sizeof(*m)); /* the router must set what it reports */
    return router_match(table, NROUTES, method, path, m);
}

static void assert_not_found(const char *method, const char *path)
{
    struct route_match m;

    if (match(method, path, &m) != ROUTER_NOT_FOUND)
        fail_msg("%s %s: expected ROUTER_NOT_FOUND", method, path);
    assert_int_equal(m.index, -1);
}

static void test_literal_route_found(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("GET", "/api/products", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 0);
    assert_int_equal(m.nparams, 0);
    assert_string_equal(m.canonical, "/api/products");
}

static void test_literal_single_segment(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("GET", "/healthz", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 13);
    assert_string_equal(m.canonical, "/healthz");
}

static void test_id_route_parses_id(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("GET", "/api/products/42", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 1);
    assert_int_equal(m.nparams, 1);
    assert_int_equal(m.params[0], 42);
    assert_string_equal(m.canonical, "/api/products/42");
}

static void test_id_in_middle_of_path(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("POST", "/api/users/7/balance/charge", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 6);
    assert_int_equal(m.nparams, 1);
    assert_int_equal(m.params[0], 7);
    assert_string_equal(m.canonical, "/api/users/7/balance/charge");
}

static void test_two_ids_in_order(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("PUT", "/api/users/3/cart/items/99", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 8);
    assert_int_equal(m.nparams, 2);
    assert_int_equal(m.params[0], 3);
    assert_int_equal(m.params[1], 99);
    assert_string_equal(m.canonical, "/api/users/3/cart/items/99");
}

static void test_int64_max_id(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("GET", "/api/products/9223372036854775807", &m), ROUTER_FOUND);
    assert_int_equal(m.params[0], INT64_MAX);
    assert_string_equal(m.canonical, "/api/products/9223372036854775807");
}

/* API.md: a path id is a positive 64-bit decimal in canonical form; "007" is not product 7,
 * and no route matches it (each resource has exactly one spelling). */
static void test_leading_zeros_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/users/007/balance");
    assert_not_found("GET", "/api/products/007");
    assert_not_found("GET", "/api/products/01");
    assert_not_found("DELETE", "/api/users/0001/cart/items/20");
    assert_not_found("DELETE", "/api/users/1/cart/items/00020");
    assert_not_found("PATCH", "/api/admin/products/07");
}

/* The router takes the raw path: what was percent-encoded stays so and matches no id. */
static void test_percent_encoded_ids_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/%31");
    assert_not_found("GET", "/api/products/7%00x");
    assert_not_found("GET", "/api/products/7%00");
    assert_not_found("GET", "/api/products/%37");
    assert_not_found("GET", "/api/users/%31/balance");
    assert_not_found("PUT", "/api/users/1/cart/items/%32");
    /* A NUL decoded into a path would have cut it: "7\0x" is seen as "7" by C strings. */
    assert_not_found("GET", "/api/products/7%2F");
}

static void test_canonical_ids_found(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("DELETE", "/api/users/1/cart/items/20", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 9);
    assert_int_equal(m.params[0], 1);
    assert_int_equal(m.params[1], 20);
    assert_string_equal(m.canonical, "/api/users/1/cart/items/20");
    assert_int_equal(match("GET", "/api/products/9223372036854775807", &m), ROUTER_FOUND);
    assert_true(m.params[0] == INT64_MAX);
    assert_int_equal(match("GET", "/api/products/10", &m), ROUTER_FOUND);
    assert_int_equal(m.params[0], 10);
}

static void test_parse_id(void **state)
{
    static const char *const bad[] = {
        "",    "0",   "00", "007", "+7", "-7", " 7", "7 ", "7x", "%31", "9223372036854775808",
        "1e3", "0x7",
    };
    int64_t id = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (router_parse_id(bad[i], strlen(bad[i]), &id) != -1)
            fail_msg("'%s' parsed as an id", bad[i]);
    assert_int_equal(router_parse_id("7", 1, &id), 0);
    assert_int_equal(id, 7);
    assert_int_equal(router_parse_id("70", 2, &id), 0);
    assert_int_equal(id, 70);
    /* len bounds what is read: "7" of "7\0x" is 7 only when the caller says len 1. */
    assert_int_equal(router_parse_id("7\0x", 3, &id), -1);
}

static void test_zero_id_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/0");
    assert_not_found("GET", "/api/products/000");
    assert_not_found("GET", "/api/users/0/balance");
}

static void test_negative_id_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/-1");
    assert_not_found("GET", "/api/products/-0");
    assert_not_found("GET", "/api/users/-5/balance");
}

static void test_non_digit_id_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/abc");
    assert_not_found("GET", "/api/products/12a");
    assert_not_found("GET", "/api/products/+1");
    assert_not_found("GET", "/api/products/0x10");
    assert_not_found("GET", "/api/products/1.0");
    assert_not_found("GET", "/api/products/1e3");
    assert_not_found("GET", "/api/products/%31");
    assert_not_found("GET", "/api/products/ 1");
    assert_not_found("GET", "/api/users/x/balance");
}

static void test_overflow_id_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/9223372036854775808");
    assert_not_found("GET", "/api/products/18446744073709551616");
    assert_not_found("GET", "/api/products/99999999999999999999999");
    assert_not_found("GET", "/api/users/9223372036854775808/balance");
}

static void test_empty_segment_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/");
    assert_not_found("GET", "/api/users//balance");
    assert_not_found("GET", "/api//products");
    assert_not_found("GET", "//api/products");
}

static void test_trailing_slash_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/1/");
    assert_not_found("GET", "/healthz/");
    assert_not_found("GET", "/api/users/1/balance/");
}

static void test_unknown_and_partial_paths_not_found(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/nothing");
    assert_not_found("GET", "/api");
    assert_not_found("GET", "/api/users/1");
    assert_not_found("GET", "/api/users/1/balance/extra");
    assert_not_found("GET", "/API/products");
    assert_not_found("GET", "");
    assert_not_found("GET", "/");
}

static void test_wrong_method_lists_allow(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("DELETE", "/api/products/5", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_int_equal(m.index, -1);
    assert_string_equal(m.allow, "GET");
}

static void test_wrong_method_lists_several_methods(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("POST", "/api/users/3/cart/items/4", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "PUT, DELETE");
}

static void test_allow_get_and_post(void **state)
{
    /* A path with GET and POST routes (as /api/orders would have with a list endpoint). */
    static const struct route t[] = {
        {"GET", "/api/things", NULL, ROUTE_PUBLIC, 200, NULL},
        {"POST", "/api/things", NULL, ROUTE_USER, 200, NULL},
        {"GET", "/api/things/{id}", NULL, ROUTE_PUBLIC, 200, NULL},
    };
    struct route_match m;

    (void)state;
    assert_int_equal(router_match(t, 3, "DELETE", "/api/things", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, POST");
}

static void test_allow_lists_each_method_once(void **state)
{
    static const struct route t[] = {
        {"GET", "/a/{id}", NULL, ROUTE_PUBLIC, 200, NULL},
        {"GET", "/a/{x}", NULL, ROUTE_PUBLIC, 200, NULL},
        {"POST", "/a/{id}", NULL, ROUTE_PUBLIC, 200, NULL},
    };
    struct route_match m;

    (void)state;
    assert_int_equal(router_match(t, 3, "PUT", "/a/1", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET, POST");
}

static void test_method_is_case_sensitive(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("get", "/api/products", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET");
}

static void test_wrong_method_with_bad_id_is_not_found(void **state)
{
    /* An id that matches no pattern means the path is unknown, whatever the method. */
    (void)state;
    assert_not_found("DELETE", "/api/products/0");
    assert_not_found("POST", "/api/users/abc/balance/charge");
}

static void test_literal_segment_beside_id(void **state)
{
    struct route_match m;

    /* {id} comes first in the table, but "top" is not an id, so the literal route wins. */
    (void)state;
    assert_int_equal(match("GET", "/api/products/top", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 2);
    assert_int_equal(m.nparams, 0);
    assert_string_equal(m.canonical, "/api/products/top");

    assert_int_equal(match("GET", "/api/products/7", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 1);
    assert_int_equal(m.params[0], 7);

    assert_int_equal(match("GET", "/api/orders/top", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 12);
}

static void test_literal_segment_wrong_method(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("POST", "/api/products/top", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "GET");
}

static void test_literal_prefix_is_not_a_match(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/products/topx");
    assert_not_found("GET", "/api/products/to");
    assert_not_found("GET", "/api/productsx");
    assert_not_found("GET", "/healthzz");
}

static void test_post_on_collection(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(match("POST", "/api/orders", &m), ROUTER_FOUND);
    assert_int_equal(m.index, 11);
    assert_int_equal(match("GET", "/api/orders", &m), ROUTER_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "POST");
}

static void test_too_many_params_not_found(void **state)
{
    static const struct route t[] = {
        {"GET", "/{a}/{b}/{c}/{d}/{e}", NULL, ROUTE_PUBLIC, 200, NULL},
    };
    struct route_match m;

    (void)state;
    assert_int_equal(router_match(t, 1, "GET", "/1/2/3/4/5", &m), ROUTER_NOT_FOUND);
}

static void test_four_params_found(void **state)
{
    static const struct route t[] = {
        {"GET", "/{a}/{b}/{c}/{d}", NULL, ROUTE_PUBLIC, 200, NULL},
    };
    struct route_match m;

    (void)state;
    assert_int_equal(router_match(t, 1, "GET", "/1/2/3/4", &m), ROUTER_FOUND);
    assert_int_equal(m.nparams, 4);
    assert_int_equal(m.params[3], 4);
    assert_string_equal(m.canonical, "/1/2/3/4");
    assert_int_equal(router_match(t, 1, "GET", "/1/02/3/4", &m), ROUTER_NOT_FOUND);
}

static void test_empty_table(void **state)
{
    struct route_match m;

    (void)state;
    assert_int_equal(router_match(table, 0, "GET", "/api/products", &m), ROUTER_NOT_FOUND);
    assert_int_equal(m.index, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_route_found),
        cmocka_unit_test(test_literal_single_segment),
        cmocka_unit_test(test_id_route_parses_id),
        cmocka_unit_test(test_id_in_middle_of_path),
        cmocka_unit_test(test_two_ids_in_order),
        cmocka_unit_test(test_int64_max_id),
        cmocka_unit_test(test_leading_zeros_not_found),
        cmocka_unit_test(test_percent_encoded_ids_not_found),
        cmocka_unit_test(test_canonical_ids_found),
        cmocka_unit_test(test_parse_id),
        cmocka_unit_test(test_zero_id_not_found),
        cmocka_unit_test(test_negative_id_not_found),
        cmocka_unit_test(test_non_digit_id_not_found),
        cmocka_unit_test(test_overflow_id_not_found),
        cmocka_unit_test(test_empty_segment_not_found),
        cmocka_unit_test(test_trailing_slash_not_found),
        cmocka_unit_test(test_unknown_and_partial_paths_not_found),
        cmocka_unit_test(test_wrong_method_lists_allow),
        cmocka_unit_test(test_wrong_method_lists_several_methods),
        cmocka_unit_test(test_allow_get_and_post),
        cmocka_unit_test(test_allow_lists_each_method_once),
        cmocka_unit_test(test_method_is_case_sensitive),
        cmocka_unit_test(test_wrong_method_with_bad_id_is_not_found),
        cmocka_unit_test(test_literal_segment_beside_id),
        cmocka_unit_test(test_literal_segment_wrong_method),
        cmocka_unit_test(test_literal_prefix_is_not_a_match),
        cmocka_unit_test(test_post_on_collection),
        cmocka_unit_test(test_too_many_params_not_found),
        cmocka_unit_test(test_four_params_found),
        cmocka_unit_test(test_empty_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
