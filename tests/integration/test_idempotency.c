/*
 * Idempotency keys as API.md's "Idempotency" section states them, end to end through a real
 * `shopd serve`: keys compare byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"
#include "http_client.h"
#include "it_main.h"
#include "json_check.h"

static struct harness h;
static struct harness_server srv;

static const char sql_charges[] =
    "SELECT COUNT(*) FROM balance_history WHERE user_id = ? AND type = 'CHARGE'";
static const char sql_balance[] = "SELECT balance_krw FROM users WHERE id = ?";

static int group_setup(void **state)
{
    if (harness_setup(&h) || harness_server_start(&h, &srv, NULL))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    int rc = harness_server_stop(&srv);

    harness_teardown(&h);
    return rc ? -1 : 0;
}

/* Charges amount to user with the key in the body field; returns the status and whether the
 * answer said it was a replay. */
static long charge_with_body_key(int64_t user, const char *token, const char *key, bool *replayed)
{
    char url[160], body[400], flag[16];
    struct http_result r;
    json_t *j = json_object();

    json_object_set_new(j, "amount", json_integer(1000));
    json_object_set_new(j, "idempotencyKey", json_string(key));
    char *text = json_dumps(j, JSON_COMPACT);
    snprintf(body, sizeof(body), "%s", text);
    free(text);
    json_decref(j);
    snprintf(url, sizeof(url), "%s/api/users/%lld/balance/charge", srv.url, (long long)user);
    assert_int_equal(http_do(&it_client, "POST", url, token, "application/json", body,
                             strlen(body), NULL, &r),
                     0);
    *replayed = http_header(&r, "Idempotent-Replayed", flag, sizeof(flag)) != NULL;
    long status = r.status;
    http_result_free(&r);
    return status;
}

static void trailing_spaces_make_another_key(void **state)
{
    int64_t user = harness_create_user(&h, &srv, "Byte Exact");
    char *token = harness_token(&h, user);
    bool replayed;

    assert_true(user > 0);
    assert_int_equal(charge_with_body_key(user, token, "k", &replayed), 200);
    assert_false(replayed);
    assert_int_equal(charge_with_body_key(user, token, "k   ", &replayed), 200);
    assert_false(replayed);
    /* And each of them still replays itself. */
    assert_int_equal(charge_with_body_key(user, token, "k   ", &replayed), 200);
    assert_true(replayed);
    assert_int_equal(charge_with_body_key(user, token, "k", &replayed), 200);
    assert_true(replayed);
    assert_int_equal(harness_sql_int(&h, sql_charges, 1, user), 2);
    assert_int_equal(harness_sql_int(&h, sql_balance, 1, user), 2000);
    free(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(trailing_spaces_make_another_key),
    };
    int failed = 0;

    if (it_main_begin() < 0)
        return 1;
    IT_RUN_GROUP(failed, "idempotency", tests, group_setup, group_teardown);
    return failed ? 1 : 0;
}
