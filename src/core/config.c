#include "core/config.h"

#include <stdio.h>
#include <string.h>

#include "core/array.h"
#include "core/err.h"
#include "core/num.h"

#include "core/banned.h"

static int copy_field(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* Splits "host:port" (the port optional when dflt_port > 0). */
static int parse_host_port(const char *s, size_t len, char *host, size_t host_size, int *port)
{
    const char *colon = memchr(s, ':', len);
    int64_t p;

    if (!colon)
        return len && !copy_field(host, host_size, s, len) && *port > 0 ? 0 : -1;
    if (colon == s || copy_field(host, host_size, s, (size_t)(colon - s)))
        return -1;
    if (num_parse_i64_n(colon + 1, len - (size_t)(colon - s) - 1, 1, 65535, &p))
        return -1;
    *port = (int)p;
    return 0;
}

int config_parse_listen(struct config *cfg, const char *addr, struct err *e)
{
    int port = 0;

    if (parse_host_port(addr, strlen(addr), cfg->listen_host, sizeof(cfg->listen_host), &port))
        return err_set(e, ERR_INVALID_INPUT, "SHOPD_LISTEN '%s' is not host:port", addr);
    cfg->listen_port = port;
    return 0;
}

/* Decodes the %XX escapes of src[0..len) into dst (NUL-terminated); -1 if malformed or long. */
static int percent_decode(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++, n++) {
        if (n + 1 >= size)
            return -1;
        dst[n] = src[i];
        if (src[i] != '%')
            continue;
        int hi = i + 2 < len ? num_hex_digit(src[i + 1]) : -1;
        int lo = hi >= 0 ? num_hex_digit(src[i + 2]) : -1;
        if (lo < 0)
            return -1;
        dst[n] = (char)(hi * 16 + lo);
        i += 2;
    }
    dst[n] = '\0';
    return 0;
}

/* A socket path: absolute, and short enough for sun_path (with its NUL). */
static bool socket_path_ok(const char *path)
{
    return path[0] == '/' && strlen(path) <= CONFIG_SOCKET_PATH_MAX;
}

/*
 * One node of SHOPD_DB_URL: host[:port] (port 3306 when omitted), or a percent-encoded socket
 * path (port 0).
 */
static int parse_db_node(const char *s, size_t len, char *host, size_t host_size, int *port)
{
    char decoded[CONFIG_SOCKET_PATH_MAX + 2];

    /* Percent-encoding is for the socket form only (no host name holds a '%'); a plain
     * host:port is not decoded at all, so a long one is not refused for the decoding buffer
     * (found by fuzz_config). */
    if (memchr(s, '%', len)) {
        *port = 0;
        if (percent_decode(decoded, sizeof(decoded), s, len) || !socket_path_ok(decoded))
            return -1;
        return copy_field(host, host_size, decoded, strlen(decoded));
    }
    *port = 3306;
    return parse_host_port(s, len, host, host_size, port);
}

/*
 * Where the database is: the host part (host[:port], or a percent-encoded socket path) and the
 * query ("socket=/path", or NULL). A socket goes into db_host with db_port 0.
 */
static int parse_db_place(struct config *cfg, const char *host, size_t host_len, const char *query)
{
    static const char socket_opt[] = "socket=";

    if (query) {
        bool local = !host_len || (host_len == 9 && !memcmp(host, "localhost", 9));
        if (!local || strncmp(query, socket_opt, sizeof(socket_opt) - 1))
            return -1;
        query += sizeof(socket_opt) - 1;
        if (!socket_path_ok(query) ||
            copy_field(cfg->db_host, sizeof(cfg->db_host), query, strlen(query)))
            return -1;
        cfg->db_port = 0;
        return 0;
    }
    return parse_db_node(host, host_len, cfg->db_host, sizeof(cfg->db_host), &cfg->db_port);
}

/* The nodes after the first: ",node,node" from comma up to slash, into db_failover_*. */
static int parse_db_failover(struct config *cfg, const char *comma, const char *slash)
{
    cfg->db_nfailover = 0;
    while (comma) {
        const char *node = comma + 1;
        comma = memchr(node, ',', (size_t)(slash - node));
        const char *end = comma ? comma : slash;
        int i = cfg->db_nfailover;
        if (i == CONFIG_DB_FAILOVER_MAX || end == node ||
            parse_db_node(node, (size_t)(end - node), cfg->db_failover_host[i],
                          sizeof(cfg->db_failover_host[i]), &cfg->db_failover_port[i]))
            return -1;
        cfg->db_nfailover++;
    }
    return 0;
}

int config_parse_db_url(struct config *cfg, const char *url, struct err *e)
{
    static const char scheme[] = "mysql://";
    const char *p = url;
    const char *at;
    const char *colon;
    const char *slash;
    const char *query;

    if (strncmp(p, scheme, sizeof(scheme) - 1))
        goto bad;
    p += sizeof(scheme) - 1;
    at = strrchr(p, '@');
    slash = strchr(at ? at : p, '/');
    if (!at || !slash)
        goto bad;
    query = strchr(slash, '?');
    colon = memchr(p, ':', (size_t)(at - p));
    if (!colon || copy_field(cfg->db_user, sizeof(cfg->db_user), p, (size_t)(colon - p)) ||
        copy_field(cfg->db_pass, sizeof(cfg->db_pass), colon + 1, (size_t)(at - colon - 1)))
        goto bad;
    /* "node,node,…": the first is the preferred node, the others are moved to in turn when it
     * is lost (repo/db.h). */
    const char *hosts = at + 1;
    const char *comma = memchr(hosts, ',', (size_t)(slash - hosts));
    const char *first_end = comma ? comma : slash;
    if (parse_db_place(cfg, hosts, (size_t)(first_end - hosts), query ? query + 1 : NULL) ||
        (comma && query))
        goto bad;
    if (parse_db_failover(cfg, comma, slash))
        goto bad;
    size_t name_len = query ? (size_t)(query - slash - 1) : strlen(slash + 1);
    if (!name_len || copy_field(cfg->db_name, sizeof(cfg->db_name), slash + 1, name_len))
        goto bad;
    return 0;
bad:
    return err_set(e, ERR_INVALID_INPUT,
                   "SHOPD_DB_URL is not mysql://user:pass@host:port[,host:port…]/db (at most %d "
                   "nodes) or mysql://user:pass@localhost/db?socket=/path (a path of at most %d "
                   "bytes)",
                   CONFIG_DB_FAILOVER_MAX + 1, CONFIG_SOCKET_PATH_MAX);
}

/* "unix:///path/redis.sock" with an optional "?db=N": the path into redis_host, port 0. */
static int parse_redis_socket(struct config *cfg, const char *p)
{
    static const char db_opt[] = "db=";
    const char *query = strchr(p, '?');
    size_t len = query ? (size_t)(query - p) : strlen(p);
    int64_t db = 0;

    if (copy_field(cfg->redis_host, sizeof(cfg->redis_host), p, len) ||
        !socket_path_ok(cfg->redis_host))
        return -1;
    if (query && (strncmp(query + 1, db_opt, sizeof(db_opt) - 1) ||
                  num_parse_i64(query + sizeof(db_opt), 0, 15, &db)))
        return -1;
    cfg->redis_port = 0;
    cfg->redis_db = (int)db;
    return 0;
}

int config_parse_redis_url(struct config *cfg, const char *url, struct err *e)
{
    static const char scheme[] = "redis://";
    static const char unix_scheme[] = "unix://";
    const char *p = url;
    const char *slash;
    int64_t db = 0;

    if (!strncmp(p, unix_scheme, sizeof(unix_scheme) - 1)) {
        if (parse_redis_socket(cfg, p + sizeof(unix_scheme) - 1))
            goto bad;
        return 0;
    }
    if (strncmp(p, scheme, sizeof(scheme) - 1))
        goto bad;
    p += sizeof(scheme) - 1;
    slash = strchr(p, '/');
    cfg->redis_port = 6379;
    if (parse_host_port(p, slash ? (size_t)(slash - p) : strlen(p), cfg->redis_host,
                        sizeof(cfg->redis_host), &cfg->redis_port))
        goto bad;
    if (slash && slash[1] && num_parse_i64(slash + 1, 0, 15, &db))
        goto bad;
    cfg->redis_db = (int)db;
    return 0;
bad:
    return err_set(e, ERR_INVALID_INPUT,
                   "SHOPD_REDIS_URL is not redis://host:port/db or unix:///path?db=N (a path of "
                   "at most %d bytes)",
                   CONFIG_SOCKET_PATH_MAX);
}

const char *const config_published_secrets[] = {
    "CHANGE-ME-to-32-or-more-random-bytes", /* deploy/shopd.env */
    "CHANGE-ME",                            /* deploy/shopd.env's other placeholder */
    "dev-secret-change-me",                 /* scripts/run.sh and scripts/cluster.sh, once */
    "integration-test-secret",              /* tests/support/harness.c, once */
    NULL,
};

int config_check_jwt_secret(const char *secret, struct err *e)
{
    size_t len = secret ? strlen(secret) : 0;

    if (!len)
        return err_set(e, ERR_INVALID_INPUT, "SHOPD_JWT_SECRET is not set");
    for (const char *const *p = config_published_secrets; *p; p++)
        if (!strcmp(secret, *p))
            return err_set(e, ERR_INVALID_INPUT,
                           "SHOPD_JWT_SECRET is a placeholder published in the repository; "
                           "set a random secret of at least %d bytes",
                           CONFIG_JWT_SECRET_MIN);
    if (len < CONFIG_JWT_SECRET_MIN)
        return err_set(e, ERR_INVALID_INPUT,
                       "SHOPD_JWT_SECRET has %zu bytes; at least %d are needed", len,
                       CONFIG_JWT_SECRET_MIN);
    return 0;
}

int config_read_secret_file(struct config *cfg, const char *path, struct err *e)
{
    char line[sizeof(cfg->jwt_secret) + 2];
    FILE *f = fopen(path, "r");

    if (!f)
        return err_set(e, ERR_INVALID_INPUT, "cannot open '%s'", path);
    bool ok = fgets(line, sizeof(line), f) != NULL;
    (void)fclose(f); /* opened for reading: a failed close loses nothing */
    size_t len = ok ? strcspn(line, "\r\n") : 0;
    if (!len || len >= sizeof(cfg->jwt_secret))
        return err_set(e, ERR_INVALID_INPUT, "'%s' does not hold a secret on its first line", path);
    memcpy(cfg->jwt_secret, line, len);
    cfg->jwt_secret[len] = '\0';
    return 0;
}

static int int_var(config_getter_fn *get, const char *name, int64_t min, int64_t max, int64_t *out,
                   struct err *e)
{
    const char *v = get(name);

    if (!v || !*v)
        return 0;
    if (num_parse_i64(v, min, max, out))
        return err_set(e, ERR_INVALID_INPUT, "%s '%s' is not an integer in %lld..%lld", name, v,
                       (long long)min, (long long)max);
    return 0;
}

int config_parse_redis_sentinels(struct config *cfg, const char *list, struct err *e)
{
    const char *node = list;

    cfg->redis_nsentinels = 0;
    if (!*list)
        return 0;
    for (;;) {
        const char *comma = strchr(node, ',');
        size_t len = comma ? (size_t)(comma - node) : strlen(node);
        int i = cfg->redis_nsentinels;
        cfg->redis_sentinel_port[i < CONFIG_REDIS_SENTINELS_MAX ? i : 0] = 26379;
        if (i == CONFIG_REDIS_SENTINELS_MAX ||
            parse_host_port(node, len, cfg->redis_sentinel_host[i],
                            sizeof(cfg->redis_sentinel_host[i]), &cfg->redis_sentinel_port[i]))
            return err_set(e, ERR_INVALID_INPUT,
                           "SHOPD_REDIS_SENTINELS is not host:port,host:port,... (at most %d)",
                           CONFIG_REDIS_SENTINELS_MAX);
        cfg->redis_nsentinels++;
        if (!comma)
            return 0;
        node = comma + 1;
    }
}

/* SHOPD_REDIS_SENTINELS and the master's name they know it by (SHOPD_REDIS_MASTER). */
static int load_sentinels(struct config *cfg, config_getter_fn *get, struct err *e)
{
    const char *v = get("SHOPD_REDIS_SENTINELS");
    const char *name = get("SHOPD_REDIS_MASTER");

    if (config_parse_redis_sentinels(cfg, v ? v : "", e))
        return -1;
    if (!name || !*name)
        name = "shopd";
    size_t len = strlen(name);
    if (len >= sizeof(cfg->redis_master) || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
                                                         "nopqrstuvwxyz0123456789._-") != len)
        return err_set(e, ERR_INVALID_INPUT,
                       "SHOPD_REDIS_MASTER must be 1-%zu letters, digits, '.', '_' or '-'",
                       sizeof(cfg->redis_master) - 1);
    memcpy(cfg->redis_master, name, len + 1);
    return 0;
}

/* The three service addresses, each with its local default, and the optional JWT secret. */
static int load_addresses(struct config *cfg, config_getter_fn *get, struct err *e)
{
    const char *v;

    v = get("SHOPD_LISTEN");
    if (config_parse_listen(cfg, v && *v ? v : "127.0.0.1:8080", e))
        return -1;
    v = get("SHOPD_DB_URL");
    if (config_parse_db_url(cfg, v && *v ? v : "mysql://shop:shop-pass@127.0.0.1:13306/shop", e))
        return -1;
    v = get("SHOPD_REDIS_URL");
    if (config_parse_redis_url(cfg, v && *v ? v : "redis://127.0.0.1:16379/0", e) ||
        load_sentinels(cfg, get, e))
        return -1;
    v = get("SHOPD_REDIS_FAULT");
    if (v && copy_field(cfg->redis_fault, sizeof(cfg->redis_fault), v, strlen(v)))
        return err_set(e, ERR_INVALID_INPUT, "SHOPD_REDIS_FAULT is longer than %zu bytes",
                       sizeof(cfg->redis_fault) - 1);
    v = get("SHOPD_JWT_SECRET");
    if (v && copy_field(cfg->jwt_secret, sizeof(cfg->jwt_secret), v, strlen(v)))
        return err_set(e, ERR_INVALID_INPUT, "SHOPD_JWT_SECRET is longer than %zu bytes",
                       sizeof(cfg->jwt_secret) - 1);
    return 0;
}

/* The integer settings: each is range-checked as int64_t before it is narrowed into cfg. */
static int load_numbers(struct config *cfg, config_getter_fn *get, struct err *e)
{
    int64_t threads = 64;
    int64_t ttl = 600;
    int64_t lock_wait = 5;
    int64_t idle_trx = 1;
    int64_t access_log = 1;
    int64_t dlock_wait = 5;
    int64_t claim_idle = 30000;
    int64_t max_deliveries = 5;
    int64_t http_loops = 0;
    int64_t http_head = 10;
    int64_t http_idle = 60;
    int64_t max_connections = 20000;
    int64_t max_conns_per_ip = 10240;
    int64_t idem_keep = 1000;

    if (int_var(get, "SHOPD_ORDER_TTL", 1, (int64_t)86400 * 30, &ttl, e) ||
        int_var(get, "SHOPD_THREADS", 1, 1024, &threads, e) ||
        int_var(get, "SHOPD_DB_LOCK_WAIT", 1, 3600, &lock_wait, e) ||
        int_var(get, "SHOPD_DB_IDLE_TRX_TIMEOUT", 0, 3600, &idle_trx, e) ||
        int_var(get, "SHOPD_LOCK_WAIT", 1, 3600, &dlock_wait, e) ||
        int_var(get, "SHOPD_ACCESS_LOG", 0, 1, &access_log, e) ||
        int_var(get, "SHOPD_EVENTS_CLAIM_IDLE_MS", 50, 86400000, &claim_idle, e) ||
        int_var(get, "SHOPD_EVENTS_MAX_DELIVERIES", 1, 1000, &max_deliveries, e) ||
        int_var(get, "SHOPD_HTTP_LOOPS", 0, 64, &http_loops, e) ||
        int_var(get, "SHOPD_HTTP_HEAD_TIMEOUT", 1, 3600, &http_head, e) ||
        int_var(get, "SHOPD_HTTP_IDLE_TIMEOUT", 1, 86400, &http_idle, e) ||
        int_var(get, "SHOPD_MAX_CONNECTIONS", 1, 1000000, &max_connections, e) ||
        int_var(get, "SHOPD_MAX_CONNS_PER_IP", 1, 1000000, &max_conns_per_ip, e) ||
        int_var(get, "SHOPD_IDEM_KEEP_MS", 0, 60000, &idem_keep, e))
        return -1;
    cfg->http_loops = (int)http_loops;
    cfg->http_head_s = (int)http_head;
    cfg->http_idle_s = (int)http_idle;
    cfg->max_connections = (int)max_connections;
    cfg->max_conns_per_ip = (int)max_conns_per_ip;
    cfg->events_claim_idle_ms = claim_idle;
    cfg->events_max_deliveries = (int)max_deliveries;
    cfg->order_ttl_s = ttl;
    cfg->threads = (int)threads;
    cfg->db_lock_wait_s = (int)lock_wait;
    cfg->db_idle_trx_timeout_s = (int)idle_trx;
    cfg->lock_wait_s = (int)dlock_wait;
    cfg->access_log = access_log != 0;
    cfg->idem_keep_ms = idem_keep;
    return 0;
}

/*
 * A variable that names one of choices (the first is the default, taken when it is unset or
 * empty): its index into *out.
 */
static int choice_var(config_getter_fn *get, const char *name, const char *const *choices,
                      size_t count, int *out, struct err *e)
{
    const char *v = get(name);

    *out = 0;
    if (!v || !*v)
        return 0;
    for (size_t i = 0; i < count; i++)
        if (!strcmp(v, choices[i])) {
            *out = (int)i;
            return 0;
        }
    char list[128] = "";
    size_t len = 0;
    for (size_t i = 0; i < count && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
                                !i               ? ""
                                : i + 1 == count ? " or "
                                                 : ", ",
                                choices[i]);
    return err_set(e, ERR_INVALID_INPUT, "%s '%.64s' is not %s", name, v, list);
}

static int load_choices(struct config *cfg, config_getter_fn *get, struct err *e)
{
    /* In the order of the enums of core/config.h. */
    static const char *const strategies[] = {"gate", "lock", "db"};
    static const char *const locks[] = {"db", "redis"};
    static const char *const switches[] = {"on", "off"};
    int strategy = 0;
    int lock_mode = 0;
    int group_commit = 0;

    if (choice_var(get, "SHOPD_COUPON_STRATEGY", strategies, ARRAY_SIZE(strategies), &strategy,
                   e) ||
        choice_var(get, "SHOPD_LOCKS", locks, ARRAY_SIZE(locks), &lock_mode, e) ||
        choice_var(get, "SHOPD_GROUP_COMMIT", switches, ARRAY_SIZE(switches), &group_commit, e))
        return -1;
    cfg->group_commit = group_commit == 0;
    cfg->coupon_strategy = (enum config_coupon_strategy)strategy;
    cfg->locks = (enum config_locks)lock_mode;
    return 0;
}

int config_load(struct config *cfg, config_getter_fn *get, struct err *e)
{
    memset(cfg, 0, sizeof(*cfg));
    if (load_addresses(cfg, get, e) || load_numbers(cfg, get, e) || load_choices(cfg, get, e))
        return -1;
    return 0;
}
