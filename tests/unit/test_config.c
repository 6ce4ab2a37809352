#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/array.h"
#include "core/config.h"
#include "core/err.h"

/* The fake environment: up to 8 name=value pairs, reset before each test. */
static struct {
    const char *name;
    const char *value;
} env[8];
static size_t nenv;

static const char *fake_get(const char *name)
{
    for (size_t i = 0; i < nenv; i++)
        if (!strcmp(env[i].name, name))
            return env[i].value;
    return NULL;
}

static void set_env(const char *name, const char *value)
{
    for (size_t i = 0; i < nenv; i++) {
        if (!strcmp(env[i].name, name)) {
            env[i].value = value;
            return;
        }
    }
    assert_true(nenv < sizeof(env) / sizeof(env[0]));
    env[nenv].name = name;
    env[nenv].value = value;
    nenv++;
}

static int reset_env(void **state)
{
    (void)state;
    nenv = 0;
    return 0;
}

/* Loads with only name=value set and asserts the error names the variable. */
static void expect_bad(const char *name, const char *value)
{
    struct config cfg;
    struct err e;

    nenv = 0;
    set_env(name, value);
    err_clear(&e);
    if (config_load(&cfg, fake_get, &e) != -1)
        fail_msg("%s=%s was accepted", name, value);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    if (!strstr(e.detail, name))
        fail_msg("%s=%s: detail '%s' does not name the variable", name, value, e.detail);
}

static void load_ok(struct config *cfg)
{
    struct err e;

    err_clear(&e);
    if (config_load(cfg, fake_get, &e))
        fail_msg("config_load failed: %s", e.detail);
}

/* ---- defaults (API.md "Running it") ---- */

static void test_defaults_listen(void **state)
{
    struct config cfg;

    (void)state;
    load_ok(&cfg);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
}

static void test_defaults_db(void **state)
{
    struct config cfg;

    (void)state;
    load_ok(&cfg);
    assert_string_equal(cfg.db_user, "shop");
    assert_string_equal(cfg.db_pass, "shop-pass");
    assert_string_equal(cfg.db_host, "127.0.0.1");
    assert_int_equal(cfg.db_port, 13306);
    assert_string_equal(cfg.db_name, "shop");
}

static void test_defaults_redis(void **state)
{
    struct config cfg;

    (void)state;
    load_ok(&cfg);
    assert_string_equal(cfg.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis_port, 16379);
    assert_int_equal(cfg.redis_db, 0);
    assert_int_equal(cfg.redis_nsentinels, 0);
    assert_string_equal(cfg.redis_master, "shopd");
}

static void test_defaults_rest(void **state)
{
    struct config cfg;

    (void)state;
    load_ok(&cfg);
    assert_int_equal(cfg.order_ttl_s, 600);
    assert_string_equal(cfg.jwt_secret, "");
    assert_true(cfg.threads >= 1);
    assert_true(cfg.db_lock_wait_s >= 1);
    assert_int_equal(cfg.idem_keep_ms, 1000);
}

/* SHOPD_IDEM_KEEP_MS: 0 (off) to a minute. */
static void test_idem_keep(void **state)
{
    static const char *const bad[] = {"-1", "60001", "1s", "ten"};
    struct config cfg;

    (void)state;
    set_env("SHOPD_IDEM_KEEP_MS", "0");
    load_ok(&cfg);
    assert_int_equal(cfg.idem_keep_ms, 0);
    set_env("SHOPD_IDEM_KEEP_MS", "60000");
    load_ok(&cfg);
    assert_int_equal(cfg.idem_keep_ms, 60000);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        expect_bad("SHOPD_IDEM_KEEP_MS", bad[i]);
}

static void test_empty_values_mean_default(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_LISTEN", "");
    set_env("SHOPD_DB_URL", "");
    set_env("SHOPD_REDIS_URL", "");
    set_env("SHOPD_ORDER_TTL", "");
    set_env("SHOPD_THREADS", "");
    load_ok(&cfg);
    assert_int_equal(cfg.listen_port, 8080);
    assert_int_equal(cfg.db_port, 13306);
    assert_int_equal(cfg.redis_port, 16379);
    assert_int_equal(cfg.order_ttl_s, 600);
    assert_true(cfg.threads >= 1);
}

/* ---- overrides ---- */

static void test_override_listen(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_LISTEN", "0.0.0.0:9000");
    load_ok(&cfg);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
}

static void test_override_db(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_DB_URL", "mysql://app:s3cret@db.internal:3307/shopdb");
    load_ok(&cfg);
    assert_string_equal(cfg.db_user, "app");
    assert_string_equal(cfg.db_pass, "s3cret");
    assert_string_equal(cfg.db_host, "db.internal");
    assert_int_equal(cfg.db_port, 3307);
    assert_string_equal(cfg.db_name, "shopdb");
}

static void test_override_db_default_port(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_DB_URL", "mysql://app:pw@db/shopdb");
    load_ok(&cfg);
    assert_string_equal(cfg.db_host, "db");
    assert_int_equal(cfg.db_port, 3306);
}

/* A cluster's nodes: the first preferred, the others tried in order, a socket among them. */
static void test_override_db_nodes(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_DB_URL", "mysql://app:pw@g1:3311,g2,%2Fvar%2Fg3.sock/shopdb");
    load_ok(&cfg);
    assert_string_equal(cfg.db_host, "g1");
    assert_int_equal(cfg.db_port, 3311);
    assert_int_equal(cfg.db_nfailover, 2);
    assert_string_equal(cfg.db_failover_host[0], "g2");
    assert_int_equal(cfg.db_failover_port[0], 3306);
    assert_string_equal(cfg.db_failover_host[1], "/var/g3.sock");
    assert_int_equal(cfg.db_failover_port[1], 0);
    assert_string_equal(cfg.db_name, "shopdb");
    set_env("SHOPD_DB_URL", "mysql://app:pw@db/shopdb");
    load_ok(&cfg);
    assert_int_equal(cfg.db_nfailover, 0);
}

static void test_bad_db_nodes(void **state)
{
    (void)state;
    expect_bad("SHOPD_DB_URL", "mysql://app:pw@g1,/shopdb");
    expect_bad("SHOPD_DB_URL", "mysql://app:pw@g1,,g2/shopdb");
    expect_bad("SHOPD_DB_URL", "mysql://app:pw@g1,g2:0/shopdb");
    expect_bad("SHOPD_DB_URL", "mysql://app:pw@g1,g2,g3,g4,g5/shopdb"); /* 4 nodes at most */
    expect_bad("SHOPD_DB_URL", "mysql://app:pw@localhost,g2/shopdb?socket=/s.sock");
}

static void test_override_redis_sentinels(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_REDIS_SENTINELS", "s1:26380,s2,10.0.0.3:5000");
    set_env("SHOPD_REDIS_MASTER", "orders-cache.1");
    load_ok(&cfg);
    assert_int_equal(cfg.redis_nsentinels, 3);
    assert_string_equal(cfg.redis_sentinel_host[0], "s1");
    assert_int_equal(cfg.redis_sentinel_port[0], 26380);
    assert_string_equal(cfg.redis_sentinel_host[1], "s2");
    assert_int_equal(cfg.redis_sentinel_port[1], 26379);
    assert_string_equal(cfg.redis_sentinel_host[2], "10.0.0.3");
    assert_int_equal(cfg.redis_sentinel_port[2], 5000);
    assert_string_equal(cfg.redis_master, "orders-cache.1");
    set_env("SHOPD_REDIS_SENTINELS", "");
    set_env("SHOPD_REDIS_MASTER", "");
    load_ok(&cfg);
    assert_int_equal(cfg.redis_nsentinels, 0);
    assert_string_equal(cfg.redis_master, "shopd");
}

static void test_bad_redis_sentinels(void **state)
{
    (void)state;
    expect_bad("SHOPD_REDIS_SENTINELS", "s1,");
    expect_bad("SHOPD_REDIS_SENTINELS", ",s1");
    expect_bad("SHOPD_REDIS_SENTINELS", "s1:0");
    expect_bad("SHOPD_REDIS_SENTINELS", "s1:26379:1");
    expect_bad("SHOPD_REDIS_SENTINELS", "s1,s2,s3,s4,s5,s6"); /* 5 at most */
    expect_bad("SHOPD_REDIS_MASTER", "two words");
    expect_bad("SHOPD_REDIS_MASTER",
               "a-name-of-sixty-four-characters-is-one-too-many-for-the-field-xy");
}

static void test_override_db_password_with_specials(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_DB_URL", "mysql://app:p@ss:w/rd@db:3310/shopdb");
    load_ok(&cfg);
    assert_string_equal(cfg.db_user, "app");
    assert_string_equal(cfg.db_pass, "p@ss:w/rd");
    assert_string_equal(cfg.db_host, "db");
    assert_int_equal(cfg.db_port, 3310);
    assert_string_equal(cfg.db_name, "shopdb");
}

static void test_override_redis(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_REDIS_URL", "redis://cache.internal:6380/3");
    load_ok(&cfg);
    assert_string_equal(cfg.redis_host, "cache.internal");
    assert_int_equal(cfg.redis_port, 6380);
    assert_int_equal(cfg.redis_db, 3);
}

static void test_override_redis_without_db_or_port(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_REDIS_URL", "redis://cache:6380");
    load_ok(&cfg);
    assert_int_equal(cfg.redis_port, 6380);
    assert_int_equal(cfg.redis_db, 0);
    set_env("SHOPD_REDIS_URL", "redis://cache/15");
    load_ok(&cfg);
    assert_string_equal(cfg.redis_host, "cache");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.redis_db, 15);
    set_env("SHOPD_REDIS_URL", "redis://cache:6380/");
    load_ok(&cfg);
    assert_int_equal(cfg.redis_db, 0);
}

/* ---- Unix sockets (issue 13, item 7) ---- */

static void test_db_url_socket(void **state)
{
    static const char *const forms[] = {
        "mysql://shop:pw@localhost/shop?socket=/work/var/svc/mariadb/mariadb.sock",
        "mysql://shop:pw@/shop?socket=/work/var/svc/mariadb/mariadb.sock",
        "mysql://shop:pw@%2Fwork%2Fvar%2Fsvc%2Fmariadb%2Fmariadb.sock/shop",
        "mysql://shop:pw@%2fwork%2fvar%2fsvc%2fmariadb%2fmariadb.sock/shop",
    };
    struct config cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        set_env("SHOPD_DB_URL", forms[i]);
        load_ok(&cfg);
        assert_string_equal(cfg.db_user, "shop");
        assert_string_equal(cfg.db_pass, "pw");
        assert_string_equal(cfg.db_host, "/work/var/svc/mariadb/mariadb.sock");
        assert_int_equal(cfg.db_port, 0);
        assert_string_equal(cfg.db_name, "shop");
    }
    /* A password may hold '?' and '/': the query begins after the database name. */
    set_env("SHOPD_DB_URL", "mysql://shop:p?w/d@localhost/shop?socket=/s.sock");
    load_ok(&cfg);
    assert_string_equal(cfg.db_pass, "p?w/d");
    assert_string_equal(cfg.db_host, "/s.sock");
    assert_string_equal(cfg.db_name, "shop");
}

static void test_redis_url_socket(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_REDIS_URL", "unix:///work/var/svc/redis/redis.sock?db=3");
    load_ok(&cfg);
    assert_string_equal(cfg.redis_host, "/work/var/svc/redis/redis.sock");
    assert_int_equal(cfg.redis_port, 0);
    assert_int_equal(cfg.redis_db, 3);
    set_env("SHOPD_REDIS_URL", "unix:///tmp/redis.sock");
    load_ok(&cfg);
    assert_string_equal(cfg.redis_host, "/tmp/redis.sock");
    assert_int_equal(cfg.redis_db, 0);
}

/* 107 bytes fit sun_path with its NUL; 108 do not. */
static void test_socket_path_length(void **state)
{
    static char path[CONFIG_SOCKET_PATH_MAX + 2];
    static char url[2][256];
    struct config cfg;

    (void)state;
    memset(path, 'p', sizeof(path));
    path[0] = '/';
    path[CONFIG_SOCKET_PATH_MAX] = '\0';
    snprintf(url[0], sizeof(url[0]), "unix://%s", path);
    snprintf(url[1], sizeof(url[1]), "mysql://a:b@localhost/db?socket=%s", path);
    set_env("SHOPD_REDIS_URL", url[0]);
    set_env("SHOPD_DB_URL", url[1]);
    load_ok(&cfg);
    assert_int_equal(strlen(cfg.redis_host), CONFIG_SOCKET_PATH_MAX);
    assert_int_equal(strlen(cfg.db_host), CONFIG_SOCKET_PATH_MAX);
    path[CONFIG_SOCKET_PATH_MAX] = 'p';
    path[CONFIG_SOCKET_PATH_MAX + 1] = '\0';
    snprintf(url[0], sizeof(url[0]), "unix://%s", path);
    snprintf(url[1], sizeof(url[1]), "mysql://a:b@localhost/db?socket=%s", path);
    expect_bad("SHOPD_REDIS_URL", url[0]);
    expect_bad("SHOPD_DB_URL", url[1]);
}

static void test_bad_socket_urls(void **state)
{
    static const char *const bad_db[] = {
        "mysql://shop:pw@localhost/shop?socket=",
        "mysql://shop:pw@localhost/shop?socket=relative.sock",
        "mysql://shop:pw@db.internal/shop?socket=/s.sock", /* a socket is local */
        "mysql://shop:pw@localhost/shop?sock=/s.sock",
        "mysql://shop:pw@localhost/?socket=/s.sock",
        "mysql://shop:pw@%2/shop",
        "mysql://shop:pw@%2Gs.sock/shop",
        "mysql://shop:pw@%2Fs.sock%/shop",
    };
    static const char *const bad_redis[] = {
        "unix://",
        "unix://relative.sock",
        "unix:///s.sock?db=16",
        "unix:///s.sock?db=x",
        "unix:///s.sock?database=1",
        "redis+unix:///s.sock",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad_db) / sizeof(bad_db[0]); i++)
        expect_bad("SHOPD_DB_URL", bad_db[i]);
    for (size_t i = 0; i < sizeof(bad_redis) / sizeof(bad_redis[0]); i++)
        expect_bad("SHOPD_REDIS_URL", bad_redis[i]);
}

static void test_override_secret_ttl_threads(void **state)
{
    struct config cfg;

    (void)state;
    set_env("SHOPD_JWT_SECRET", "dev-secret");
    set_env("SHOPD_ORDER_TTL", "30");
    set_env("SHOPD_THREADS", "8");
    load_ok(&cfg);
    assert_string_equal(cfg.jwt_secret, "dev-secret");
    assert_int_equal(cfg.order_ttl_s, 30);
    assert_int_equal(cfg.threads, 8);
}

static void test_secret_255_bytes_ok(void **state)
{
    char secret[256];
    struct config cfg;

    (void)state;
    memset(secret, 's', 255);
    secret[255] = '\0';
    set_env("SHOPD_JWT_SECRET", secret);
    load_ok(&cfg);
    assert_int_equal(strlen(cfg.jwt_secret), 255);
}

/* ---- malformed values ---- */

static void test_bad_listen(void **state)
{
    static const char *const bad[] = {
        "8080",          ":8080",         "127.0.0.1:",    "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:80x", "127.0.0.1:-80", "127.0.0.1: 80", "127.0.0.1",   "127.0.0.1:8080:1",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("SHOPD_LISTEN", bad[i]);
}

static void test_bad_db_url(void **state)
{
    static const char *const bad[] = {
        "postgres://shop:pw@127.0.0.1:5432/shop",
        "shop:pw@127.0.0.1:13306/shop",
        "mysql://127.0.0.1:13306/shop",
        "mysql://shop:pw@127.0.0.1:13306",
        "mysql://shop:pw@127.0.0.1:13306/",
        "mysql://shop:pw@:13306/shop",
        "mysql://shop:pw@127.0.0.1:0/shop",
        "mysql://shop:pw@127.0.0.1:65536/shop",
        "mysql://shop:pw@127.0.0.1:port/shop",
        "mysql://shop:pw@127.0.0.1:/shop",
        "mysql://",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("SHOPD_DB_URL", bad[i]);
}

static void test_bad_db_url_does_not_echo_password(void **state)
{
    struct config cfg;
    struct err e;

    (void)state;
    set_env("SHOPD_DB_URL", "mysql://shop:hunter2@127.0.0.1:0/shop");
    assert_int_equal(config_load(&cfg, fake_get, &e), -1);
    assert_null(strstr(e.detail, "hunter2"));
}

static void test_bad_redis_url(void **state)
{
    static const char *const bad[] = {
        "http://127.0.0.1:16379/0",
        "127.0.0.1:16379",
        "redis://",
        "redis://:16379/0",
        "redis://127.0.0.1:0/0",
        "redis://127.0.0.1:x/0",
        "redis://127.0.0.1:16379/x",
        "redis://127.0.0.1:16379/16",
        "redis://127.0.0.1:16379/-1",
        "redis://127.0.0.1:/0",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("SHOPD_REDIS_URL", bad[i]);
}

static void test_bad_threads(void **state)
{
    static const char *const bad[] = {
        "0", "-1", "abc", "8x", " 8", "8 ", "+8", "1025", "99999999999999999999"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("SHOPD_THREADS", bad[i]);
}

static void test_bad_order_ttl(void **state)
{
    static const char *const bad[] = {"0", "-600", "600s", "6e2", "ten"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_bad("SHOPD_ORDER_TTL", bad[i]);
}

/* SHOPD_LOCKS, SHOPD_COUPON_STRATEGY and SHOPD_GROUP_COMMIT: one of their names, the first
 * when unset or empty. */
static void test_choices(void **state)
{
    static const char *const bad_locks[] = {"Redis", "mariadb", "db ", "x"};
    static const char *const bad_strategies[] = {"GATE", "none", "lock2"};
    static const char *const bad_switches[] = {"1", "true", "ON", "off "};
    struct config cfg;
    struct err e;

    (void)state;
    load_ok(&cfg);
    assert_int_equal(cfg.locks, CONFIG_LOCKS_DB);
    assert_int_equal(cfg.coupon_strategy, CONFIG_COUPON_GATE);
    assert_true(cfg.group_commit);
    set_env("SHOPD_GROUP_COMMIT", "off");
    load_ok(&cfg);
    assert_false(cfg.group_commit);
    set_env("SHOPD_GROUP_COMMIT", "on");
    load_ok(&cfg);
    assert_true(cfg.group_commit);
    set_env("SHOPD_LOCKS", "");
    load_ok(&cfg);
    assert_int_equal(cfg.locks, CONFIG_LOCKS_DB);
    set_env("SHOPD_LOCKS", "redis");
    set_env("SHOPD_COUPON_STRATEGY", "lock");
    load_ok(&cfg);
    assert_int_equal(cfg.locks, CONFIG_LOCKS_REDIS);
    assert_int_equal(cfg.coupon_strategy, CONFIG_COUPON_LOCK);
    set_env("SHOPD_LOCKS", "db");
    set_env("SHOPD_COUPON_STRATEGY", "db");
    load_ok(&cfg);
    assert_int_equal(cfg.locks, CONFIG_LOCKS_DB);
    assert_int_equal(cfg.coupon_strategy, CONFIG_COUPON_DB);
    for (size_t i = 0; i < ARRAY_SIZE(bad_locks); i++)
        expect_bad("SHOPD_LOCKS", bad_locks[i]);
    for (size_t i = 0; i < ARRAY_SIZE(bad_strategies); i++)
        expect_bad("SHOPD_COUPON_STRATEGY", bad_strategies[i]);
    for (size_t i = 0; i < ARRAY_SIZE(bad_switches); i++)
        expect_bad("SHOPD_GROUP_COMMIT", bad_switches[i]);
    /* The refusal lists what is accepted. */
    nenv = 0;
    set_env("SHOPD_LOCKS", "x");
    err_clear(&e);
    assert_int_equal(config_load(&cfg, fake_get, &e), -1);
    assert_string_equal(e.detail, "SHOPD_LOCKS 'x' is not db or redis");
    set_env("SHOPD_LOCKS", "db");
    set_env("SHOPD_COUPON_STRATEGY", "x");
    assert_int_equal(config_load(&cfg, fake_get, &e), -1);
    assert_string_equal(e.detail, "SHOPD_COUPON_STRATEGY 'x' is not gate, lock or db");
}

static void test_secret_too_long(void **state)
{
    char secret[300];

    (void)state;
    memset(secret, 's', 256);
    secret[256] = '\0';
    expect_bad("SHOPD_JWT_SECRET", secret);
}

/* ---- the parsers on their own ---- */

static void test_parse_listen_direct(void **state)
{
    struct config cfg;
    struct err e;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_parse_listen(&cfg, "localhost:1", &e), 0);
    assert_string_equal(cfg.listen_host, "localhost");
    assert_int_equal(cfg.listen_port, 1);
    assert_int_equal(config_parse_listen(&cfg, "localhost:65535", &e), 0);
    assert_int_equal(cfg.listen_port, 65535);
}

static void test_parse_host_too_long(void **state)
{
    char addr[200];
    struct config cfg;
    struct err e;

    (void)state;
    memset(addr, 'h', 150);
    memcpy(addr + 150, ":80", 4);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_parse_listen(&cfg, addr, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

/* A host of 120 bytes with a port fits db_host: host and port together once did not (the
 * whole place went through the socket path's decoding buffer; found by fuzz_config). */
static void test_db_url_long_host_with_port(void **state)
{
    char url[300];
    char host[121];
    struct config cfg;
    struct err e;

    (void)state;
    memset(host, 'h', 120);
    host[120] = '\0';
    snprintf(url, sizeof(url), "mysql://u:p@%s:3307/db", host);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_parse_db_url(&cfg, url, &e), 0);
    assert_string_equal(cfg.db_host, host);
    assert_int_equal(cfg.db_port, 3307);
}

#define T(fn) cmocka_unit_test_setup(fn, reset_env)

/* API.md: serve refuses a secret shorter than 32 bytes or equal to a placeholder that the
 * repository publishes. */
static void test_jwt_secret_strength(void **state)
{
    struct err e;

    (void)state;
    assert_int_equal(config_check_jwt_secret("", &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
    assert_int_equal(config_check_jwt_secret(NULL, &e), -1);
    assert_int_equal(config_check_jwt_secret("0123456789abcdef0123456789abcde", &e), -1); /* 31 */
    assert_int_equal(config_check_jwt_secret("0123456789abcdef0123456789abcdef", &e), 0); /* 32 */
    for (const char *const *p = config_published_secrets; *p; p++) {
        err_set(&e, ERR_NONE, "%s", "");
        if (config_check_jwt_secret(*p, &e) != -1)
            fail_msg("published secret '%s' was accepted", *p);
    }
    assert_int_equal(config_check_jwt_secret("dev-secret-change-me", &e), -1);
    assert_non_null(strstr(e.detail, "placeholder"));
}

/* Opens path relative to the working directory, or to the repository when the test runs from
 * build/<dir>/ (its executable's grandparent directory). */
static FILE *open_repo_file(const char *path)
{
    char self[512], full[700];
    FILE *f = fopen(path, "r");
    ssize_t n;

    if (f)
        return f;
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(self, '/');
        if (!slash)
            return NULL;
        *slash = '\0';
    }
    snprintf(full, sizeof(full), "%s/%s", self, path);
    return fopen(full, "r");
}

/* Every SHOPD_JWT_SECRET value that a file of the repository sets literally is in the list. */
static void test_published_placeholders_listed(void **state)
{
    static const char *const files[] = {"deploy/shopd.env", "scripts/run.sh", "scripts/cluster.sh"};
    static const char var[] = "SHOPD_JWT_SECRET=";
    char line[512];
    int seen = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        FILE *f = open_repo_file(files[i]);
        if (!f)
            fail_msg("cannot open %s", files[i]);
        while (fgets(line, sizeof(line), f)) {
            char *v = strstr(line, var);
            if (!v)
                continue;
            v += sizeof(var) - 1;
            v[strcspn(v, "\r\n \"")] = '\0';
            if (!*v || *v == '$')
                continue; /* generated, not published */
            bool listed = false;
            for (const char *const *p = config_published_secrets; *p && !listed; p++)
                listed = !strcmp(*p, v);
            if (!listed)
                fail_msg("%s publishes '%s', which config_published_secrets lacks", files[i], v);
            seen++;
        }
        fclose(f);
    }
    assert_true(seen >= 1); /* deploy/shopd.env's placeholder at least */
}

static void test_read_secret_file(void **state)
{
    char path[] = "/tmp/shopd-secret-XXXXXX";
    struct config cfg;
    struct err e;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_true(write(fd, "abcdef0123456789abcdef0123456789\n", 33) == 33);
    close(fd);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(config_read_secret_file(&cfg, path, &e), 0);
    assert_string_equal(cfg.jwt_secret, "abcdef0123456789abcdef0123456789");
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_true(write(fd, "\n", 1) == 1);
    close(fd);
    assert_int_equal(config_read_secret_file(&cfg, path, &e), -1);
    unlink(path);
    assert_int_equal(config_read_secret_file(&cfg, path, &e), -1);
    assert_int_equal(e.code, ERR_INVALID_INPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_listen),
        T(test_jwt_secret_strength),
        T(test_published_placeholders_listed),
        T(test_read_secret_file),
        T(test_defaults_db),
        T(test_defaults_redis),
        T(test_defaults_rest),
        T(test_idem_keep),
        T(test_empty_values_mean_default),
        T(test_override_listen),
        T(test_override_db),
        T(test_override_db_default_port),
        T(test_override_db_nodes),
        T(test_bad_db_nodes),
        T(test_override_redis_sentinels),
        T(test_bad_redis_sentinels),
        T(test_override_db_password_with_specials),
        T(test_override_redis),
        T(test_override_redis_without_db_or_port),
        T(test_db_url_socket),
        T(test_redis_url_socket),
        T(test_socket_path_length),
        T(test_bad_socket_urls),
        T(test_override_secret_ttl_threads),
        T(test_secret_255_bytes_ok),
        T(test_bad_listen),
        T(test_bad_db_url),
        T(test_bad_db_url_does_not_echo_password),
        T(test_bad_redis_url),
        T(test_bad_threads),
        T(test_bad_order_ttl),
        T(test_secret_too_long),
        T(test_choices),
        T(test_parse_listen_direct),
        T(test_parse_host_too_long),
        T(test_db_url_long_host_with_port),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
