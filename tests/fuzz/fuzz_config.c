/*
 * Configuration parsing (core/config.c): SHOPD_DB_URL, SHOPD_REDIS_URL, SHOPD_LISTEN and the
 * whole of config_load() with every variable taken from the input (one value per line, in the
 * order of the vars[] table; a missing line is an unset variable). Beyond "no crash, no UB":
 * a URL that parses is rebuilt from its fields ("mysql://user:pass@host:port/db") and must parse
 * to the same fields again; ports are in 1..65535, the Redis db in 0..15, every field is a
 * terminated string that fits; config_load() agrees with the single parsers and keeps every
 * number in its documented range; every refusal is ERR_INVALID_INPUT naming the variable.
 */
#include <string.h>

#include "core/config.h"
#include "core/err.h"
#include "fuzz_common.h"

static const char *const vars[] = {
    "SHOPD_DB_URL",
    "SHOPD_REDIS_URL",
    "SHOPD_LISTEN",
    "SHOPD_JWT_SECRET",
    "SHOPD_ORDER_TTL",
    "SHOPD_THREADS",
    "SHOPD_DB_LOCK_WAIT",
    "SHOPD_LOCK_WAIT",
    "SHOPD_ACCESS_LOG",
    "SHOPD_COUPON_STRATEGY",
    "SHOPD_EVENTS_CLAIM_IDLE_MS",
    "SHOPD_EVENTS_MAX_DELIVERIES",
    "SHOPD_LOCKS",
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

/* The current input's values; the getter has no context argument. */
static const char *values[NVARS];

static const char *getter(const char *name)
{
    for (size_t i = 0; i < NVARS; i++)
        if (!strcmp(vars[i], name))
            return values[i];
    return NULL;
}

static void check_refusal(const struct err *e, const char *var)
{
    FUZZ_CHECK(e->code == ERR_INVALID_INPUT, "refusal code %d", (int)e->code);
    FUZZ_CHECK(strstr(e->detail, var) != NULL, "detail '%s' does not name %s", e->detail, var);
}

static void check_db_url(const char *url)
{
    struct config a = {0}, b = {0};
    struct err e;
    char rebuilt[1024];

    err_clear(&e);
    if (config_parse_db_url(&a, url, &e)) {
        check_refusal(&e, "SHOPD_DB_URL");
        return;
    }
    FUZZ_CHECK(a.db_host[0] && a.db_name[0], "empty host or db from '%s'", url);
    if (a.db_host[0] == '/') {
        /* A Unix socket: an absolute path that fits sun_path, no port. */
        FUZZ_CHECK(a.db_port == 0 && strlen(a.db_host) <= CONFIG_SOCKET_PATH_MAX,
                   "socket '%s' port %d", a.db_host, a.db_port);
        /* The ?socket= form takes the path as it is, so a path holding an '@' (which can only
         * have come percent-encoded) is rebuilt in the encoded form (found by fuzz_config). */
        if (!strchr(a.db_host, '@')) {
            snprintf(rebuilt, sizeof(rebuilt), "mysql://%s:%s@localhost/%s?socket=%s", a.db_user,
                     a.db_pass, a.db_name, a.db_host);
        } else {
            int n = snprintf(rebuilt, sizeof(rebuilt), "mysql://%s:%s@", a.db_user, a.db_pass);
            for (const char *c = a.db_host; *c; c++)
                n += snprintf(rebuilt + n, sizeof(rebuilt) - (size_t)n, "%%%02X",
                              (unsigned char)*c);
            snprintf(rebuilt + n, sizeof(rebuilt) - (size_t)n, "/%s", a.db_name);
        }
    } else {
        FUZZ_CHECK(a.db_port >= 1 && a.db_port <= 65535, "port %d", a.db_port);
        snprintf(rebuilt, sizeof(rebuilt), "mysql://%s:%s@%s:%d/%s", a.db_user, a.db_pass,
                 a.db_host, a.db_port, a.db_name);
    }
    FUZZ_CHECK(config_parse_db_url(&b, rebuilt, &e) == 0, "'%s' (from '%s') fails", rebuilt, url);
    FUZZ_CHECK(!strcmp(a.db_user, b.db_user) && !strcmp(a.db_pass, b.db_pass) &&
                   !strcmp(a.db_host, b.db_host) && a.db_port == b.db_port &&
                   !strcmp(a.db_name, b.db_name),
               "'%s' and '%s' differ", url, rebuilt);
}

static void check_redis_url(const char *url)
{
    struct config a = {0}, b = {0};
    struct err e;
    char rebuilt[512];

    err_clear(&e);
    if (config_parse_redis_url(&a, url, &e)) {
        check_refusal(&e, "SHOPD_REDIS_URL");
        return;
    }
    FUZZ_CHECK(a.redis_db >= 0 && a.redis_db <= 15, "db %d", a.redis_db);
    FUZZ_CHECK(a.redis_host[0], "empty host from '%s'", url);
    if (a.redis_host[0] == '/') {
        /* A Unix socket: an absolute path that fits sun_path, no port. */
        FUZZ_CHECK(a.redis_port == 0 && strlen(a.redis_host) <= CONFIG_SOCKET_PATH_MAX,
                   "socket '%s' port %d", a.redis_host, a.redis_port);
        snprintf(rebuilt, sizeof(rebuilt), "unix://%s?db=%d", a.redis_host, a.redis_db);
    } else {
        FUZZ_CHECK(a.redis_port >= 1 && a.redis_port <= 65535, "port %d", a.redis_port);
        snprintf(rebuilt, sizeof(rebuilt), "redis://%s:%d/%d", a.redis_host, a.redis_port,
                 a.redis_db);
    }
    FUZZ_CHECK(config_parse_redis_url(&b, rebuilt, &e) == 0, "'%s' (from '%s') fails", rebuilt,
               url);
    FUZZ_CHECK(!strcmp(a.redis_host, b.redis_host) && a.redis_port == b.redis_port &&
                   a.redis_db == b.redis_db,
               "'%s' and '%s' differ", url, rebuilt);
}

static void check_listen(const char *addr)
{
    struct config a = {0}, b = {0};
    struct err e;
    char rebuilt[256];

    err_clear(&e);
    if (config_parse_listen(&a, addr, &e)) {
        check_refusal(&e, "SHOPD_LISTEN");
        return;
    }
    FUZZ_CHECK(a.listen_port >= 1 && a.listen_port <= 65535, "port %d", a.listen_port);
    snprintf(rebuilt, sizeof(rebuilt), "%s:%d", a.listen_host, a.listen_port);
    FUZZ_CHECK(config_parse_listen(&b, rebuilt, &e) == 0 && !strcmp(a.listen_host, b.listen_host) &&
                   a.listen_port == b.listen_port,
               "'%s' and '%s' differ", addr, rebuilt);
}

static void check_load(void)
{
    struct config cfg, single;
    struct err e;

    err_clear(&e);
    if (config_load(&cfg, getter, &e)) {
        FUZZ_CHECK(e.code == ERR_INVALID_INPUT && strstr(e.detail, "SHOPD_"),
                   "refusal '%s' names no variable", e.detail);
        return;
    }
    FUZZ_CHECK(cfg.threads >= 1 && cfg.threads <= 1024, "threads %d", cfg.threads);
    FUZZ_CHECK(cfg.order_ttl_s >= 1 && cfg.order_ttl_s <= 86400 * 30, "ttl");
    FUZZ_CHECK(cfg.db_lock_wait_s >= 1 && cfg.lock_wait_s >= 1, "lock waits");
    FUZZ_CHECK(cfg.events_max_deliveries >= 1 && cfg.events_claim_idle_ms >= 50, "events");
    FUZZ_CHECK(memchr(cfg.jwt_secret, '\0', sizeof(cfg.jwt_secret)) != NULL, "secret");
    FUZZ_CHECK(cfg.locks == CONFIG_LOCKS_REDIS || cfg.locks == CONFIG_LOCKS_DB, "locks %d",
               (int)cfg.locks);
    memset(&single, 0, sizeof(single));
    if (values[0] && *values[0]) {
        FUZZ_CHECK(config_parse_db_url(&single, values[0], &e) == 0, "db url");
        FUZZ_CHECK(!strcmp(single.db_host, cfg.db_host) && single.db_port == cfg.db_port &&
                       !strcmp(single.db_name, cfg.db_name),
                   "config_load and config_parse_db_url disagree on '%s'", values[0]);
    }
    if (values[1] && *values[1]) {
        FUZZ_CHECK(config_parse_redis_url(&single, values[1], &e) == 0, "redis url");
        FUZZ_CHECK(!strcmp(single.redis_host, cfg.redis_host) &&
                       single.redis_port == cfg.redis_port && single.redis_db == cfg.redis_db,
                   "config_load and config_parse_redis_url disagree on '%s'", values[1]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char *line = text;

    memcpy(text, data, size);
    text[size] = '\0';
    for (size_t i = 0; i < NVARS; i++) {
        values[i] = line;
        if (!line)
            continue;
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        line = nl ? nl + 1 : NULL;
    }
    check_db_url(values[0]);
    if (values[1])
        check_redis_url(values[1]);
    if (values[2])
        check_listen(values[2]);
    check_load();
    for (size_t i = 0; i < NVARS; i++)
        values[i] = NULL;
    free(text);
    return 0;
}
