/*
 * shopd: config → pools → migrations → HTTP server and sweeper → wait for a signal → shut
 * down. The subcommands are those of API.md "Running it".
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/routes.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/num.h"
#include "http/auth.h"
#include "http/server.h"
#include "redis/redis_fault.h"
#include "redis/redis_pool.h"
#include "repo/check_repo.h"
#include "repo/db.h"
#include "repo/migrate.h"
#include "service/charge_batch.h"
#include "service/event_consumer.h"
#include "service/idem_flight.h"
#include "service/order_batch.h"
#include "service/outbox_relay.h"
#include "service/pay_batch.h"
#include "service/platform_svc.h"
#include "service/price_memo.h"
#include "service/ranking_svc.h"
#include "service/seed_svc.h"
#include "service/svc.h"
#include "service/sweeper.h"
#include "service/write_batch.h"

#include "core/banned.h"

#define SHUTDOWN_GRACE_MS   10000
#define REDIS_TIMEOUT_MS    200
#define DEFAULT_TOKEN_TTL_S ((int64_t)24 * 3600)
/* What scripts/dev-secret.sh writes (make run, make cluster), relative to the repository. */
#define DEV_SECRET_FILE "var/dev-jwt-secret"

static const char usage[] =
    "usage: shopd serve [--listen HOST:PORT]\n"
    "       shopd platform [--listen HOST:PORT]\n"
    "       shopd migrate\n"
    "       shopd seed\n"
    "       shopd check\n"
    "       shopd token [--admin] [USER_ID...] [--ttl SECONDS]\n"
    "Configuration comes from the environment; see README.md.\n"
    "serve needs SHOPD_JWT_SECRET (32 bytes or more, not a placeholder\n"
    "of the repository). token signs with SHOPD_JWT_SECRET, or when it is\n"
    "unset with the development secret of make run, ./" DEV_SECRET_FILE ".\n";

static const char *env(const char *name)
{
    return getenv(name);
}

/* What the pools serve: requests (short statements, answered before nginx's 8 s read timeout;
 * a transaction is never idle but for a frozen process) or a batch command (shopd check's
 * scans, migrations, the platform's batches: long statements allowed). */
enum pool_use { POOLS_FOR_REQUESTS, POOLS_FOR_BATCHES };

#define BATCH_READ_TIMEOUT_S 600

static void open_pools(const struct config *cfg, struct svc *s, enum pool_use use)
{
    bool requests = use == POOLS_FOR_REQUESTS;
    struct db_options dbo = {
        .host = cfg->db_host,
        .port = cfg->db_port,
        .user = cfg->db_user,
        .pass = cfg->db_pass,
        .name = cfg->db_name,
        .size = cfg->threads,
        .lock_wait_s = cfg->db_lock_wait_s,
        .read_timeout_s = requests ? 0 : BATCH_READ_TIMEOUT_S,
        .idle_trx_timeout_s = requests ? cfg->db_idle_trx_timeout_s : 0,
    };
    for (int i = 0; i < cfg->db_nfailover; i++)
        dbo.failover[dbo.nfailover++] =
            (struct db_node){.host = cfg->db_failover_host[i], .port = cfg->db_failover_port[i]};
    struct redis_options ro = {
        .host = cfg->redis_host,
        .port = cfg->redis_port,
        .db = cfg->redis_db,
        .size = cfg->threads,
        .timeout_ms = REDIS_TIMEOUT_MS,
        .master_name = cfg->redis_master,
    };
    for (int i = 0; i < cfg->redis_nsentinels; i++)
        ro.sentinels[ro.nsentinels++] = (struct redis_node){.host = cfg->redis_sentinel_host[i],
                                                            .port = cfg->redis_sentinel_port[i]};

    s->cfg = cfg;
    s->db = db_pool_new(&dbo);
    s->redis = redis_pool_new(&ro);
    svc_redis_init(s);
}

static void close_pools(struct svc *s)
{
    svc_redis_release(s);
    redis_pool_free(s->redis);
    db_pool_free(s->db);
}

static int migrate(struct svc *s)
{
    struct err e;
    int applied;

    if (migrate_run(s->db, &applied, &e)) {
        log_error("migrate failed: %s", e.detail);
        return -1;
    }
    log_info("migrate: %d migration(s) applied, %zu known", applied, migrations_count);
    return 0;
}

static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigwait(&set, &sig);
    return sig;
}

/* The only flag of serve and platform: --listen HOST:PORT. 0, or 2 after the usage. */
static int parse_listen_flag(struct config *cfg, int argc, char **argv, bool *given)
{
    struct err e;

    *given = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--listen") || i + 1 == argc) {
            fputs(usage, stderr);
            return 2;
        }
        if (config_parse_listen(cfg, argv[++i], &e)) {
            log_error("%s", e.detail);
            return 2;
        }
        *given = true;
    }
    return 0;
}

/* Every thread started from here on inherits the blocked signals; main takes them. */
static void block_stop_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The HTTP front end of serve, as configured. */
static struct server *start_http(const struct config *cfg, struct svc *s, struct err *e)
{
    struct server_options opt = {
        .host = cfg->listen_host,
        .port = cfg->listen_port,
        .routes = routes,
        .route_count = routes_count,
        .jwt_secret = cfg->jwt_secret,
        .app = s,
        .access_log = cfg->access_log,
        .max_connections = cfg->max_connections,
        .max_conns_per_ip = cfg->max_conns_per_ip,
        .loops = cfg->http_loops,
        .head_timeout_s = cfg->http_head_s,
        .idle_timeout_s = cfg->http_idle_s,
        .workers = cfg->threads,
        .queue_max = SERVER_QUEUE_PER_WORKER * (size_t)cfg->threads,
        .redis_connect = svc_loop_redis_connect,
        .redis_generation = svc_loop_redis_generation,
    };

    return server_start(&opt, e);
}

/* SHOPD_REDIS_FAULT, for a test that starts servers whose Redis commands must fail. */
static int arm_redis_fault(const struct config *cfg)
{
    struct redis_fault f;
    struct err e;

    if (!cfg->redis_fault[0])
        return 0;
    if (redis_fault_parse(cfg->redis_fault, &f, &e)) {
        log_error("SHOPD_REDIS_FAULT: %s; refusing to serve", e.detail);
        return -1;
    }
    log_warn("SHOPD_REDIS_FAULT=%s: Redis commands fail on purpose (a test's setting)",
             cfg->redis_fault);
    redis_fault_set(&f);
    return 0;
}

/* What the writes of `shopd serve` share: the group commits and the duplicates' table. */
static void start_write_paths(const struct config *cfg, struct svc *s)
{
    /* Group commit needs no Redis lock around a write: with locks in Redis each user's charges,
     * each key's order and each order's payments go one at a time anyway. */
    if (cfg->group_commit && cfg->locks == CONFIG_LOCKS_DB) {
        s->charges = charge_batcher_new(s);
        s->orders = order_batcher_new(s);
        s->prices = price_memo_new();
        s->payments = pay_batcher_new(s);
    }
    /* A duplicate waits here as long as it would for its key in MariaDB or for its lock. */
    if (cfg->idem_keep_ms)
        s->flights = idem_flights_new(
            1000LL * (cfg->locks == CONFIG_LOCKS_DB ? cfg->db_lock_wait_s : cfg->lock_wait_s),
            cfg->idem_keep_ms);
}

static void stop_write_paths(struct svc *s)
{
    write_batcher_free(s->charges);
    s->charges = NULL;
    write_batcher_free(s->orders);
    s->orders = NULL;
    price_memo_free(s->prices);
    s->prices = NULL;
    write_batcher_free(s->payments);
    s->payments = NULL;
    idem_flights_free(s->flights);
    s->flights = NULL;
}

static int cmd_serve(struct config *cfg, int argc, char **argv)
{
    struct svc s = {0};
    struct err e;
    bool listen_given;

    if (parse_listen_flag(cfg, argc, argv, &listen_given))
        return 2;
    /* No fallback to DEV_SECRET_FILE here: a production server takes its secret from its
     * environment only (make run exports the development one). */
    if (config_check_jwt_secret(cfg->jwt_secret, &e)) {
        log_error("%s; refusing to serve", e.detail);
        return 2;
    }
    if (arm_redis_fault(cfg))
        return 2;
    block_stop_signals();

    open_pools(cfg, &s, POOLS_FOR_REQUESTS);
    if (migrate(&s)) {
        close_pools(&s);
        return 1;
    }
    metrics_routes_init(routes_names(), (int)routes_count);
    start_write_paths(cfg, &s);
    struct server *srv = start_http(cfg, &s, &e);
    if (!srv) {
        log_error("%s", e.detail);
        stop_write_paths(&s);
        close_pools(&s);
        return 1;
    }
    struct sweeper *sweeper = sweeper_start(&s);
    s.relay = outbox_relay_start(&s);
    struct event_consumer *ranking = event_consumer_start(&s, &ranking_group);
    log_info("serving on http://%s:%d with %d database connections", cfg->listen_host,
             cfg->listen_port, cfg->threads);
    int sig = wait_for_signal();
    log_info("signal %d: stopping; requests in flight get %d ms", sig, SHUTDOWN_GRACE_MS);
    server_stop(srv, SHUTDOWN_GRACE_MS);
    event_consumer_stop(ranking);
    outbox_relay_stop(s.relay);
    s.relay = NULL;
    sweeper_stop(sweeper);
    stop_write_paths(&s);
    close_pools(&s);
    log_info("stopped");
    return 0;
}

/* The data platform: the "platform" consumer group, until SIGTERM or SIGINT; with --listen,
 * /healthz and /metrics too. */
static int cmd_platform(struct config *cfg, int argc, char **argv)
{
    struct svc s = {0};
    struct server *srv = NULL;
    struct err e;
    bool listen;

    if (parse_listen_flag(cfg, argc, argv, &listen))
        return 2;
    block_stop_signals();

    open_pools(cfg, &s, POOLS_FOR_BATCHES);
    if (migrate(&s)) {
        close_pools(&s);
        return 1;
    }
    if (listen) {
        metrics_routes_init(platform_routes_names(), (int)platform_routes_count);
        struct server_options opt = {
            .host = cfg->listen_host,
            .port = cfg->listen_port,
            .routes = platform_routes,
            .route_count = platform_routes_count,
            .jwt_secret = "",
            .app = &s,
            .max_connections = 64,
            .max_conns_per_ip = 64,
            .loops = 1,
            .workers = 2,
            .queue_max = 64,
        };
        srv = server_start(&opt, &e);
        if (!srv) {
            log_error("%s", e.detail);
            close_pools(&s);
            return 1;
        }
    }
    struct event_consumer *consumer = event_consumer_start(&s, &platform_group);
    log_info("platform: consuming the event stream%s", listen ? " (metrics on --listen)" : "");
    int sig = wait_for_signal();
    log_info("signal %d: stopping", sig);
    event_consumer_stop(consumer);
    if (srv)
        server_stop(srv, SHUTDOWN_GRACE_MS);
    close_pools(&s);
    log_info("stopped");
    return 0;
}

static int cmd_migrate(struct config *cfg)
{
    struct svc s = {0};

    open_pools(cfg, &s, POOLS_FOR_BATCHES);
    int rc = migrate(&s);
    close_pools(&s);
    return rc ? 1 : 0;
}

static int cmd_seed(struct config *cfg)
{
    struct svc s = {0};
    struct err e;
    int created = 0;
    int rc = 1;

    open_pools(cfg, &s, POOLS_FOR_BATCHES);
    if (!migrate(&s)) {
        if (seed_svc_run(&s, &created, &e))
            log_error("seed failed: %s", e.detail);
        else
            rc = 0;
    }
    if (!rc)
        log_info("seed: %d demo user(s) and product(s) created", created);
    close_pools(&s);
    return rc;
}

/* Verifies every invariant of the database; exit status 1 if any fails. */
static int cmd_check(struct config *cfg)
{
    struct svc s = {0};
    struct db_conn *c;
    struct err e;
    int failed = 0;

    open_pools(cfg, &s, POOLS_FOR_BATCHES);
    if (db_acquire(s.db, &c, &e)) {
        log_error("check: %s", e.detail);
        close_pools(&s);
        return 2;
    }
    for (size_t i = 0; i < check_invariants_count; i++) {
        int64_t bad = 0;
        if (check_repo_count(c, &check_invariants[i], &bad, &e)) {
            printf("ERROR %s: %s\n", check_invariants[i].name, e.detail);
            failed++;
        } else if (bad) {
            printf("FAIL  %s (%lld rows break it)\n", check_invariants[i].name, (long long)bad);
            failed++;
        } else {
            printf("PASS  %s\n", check_invariants[i].name);
        }
    }
    db_release(s.db, c);
    close_pools(&s);
    printf("%zu invariants, %d failed\n", check_invariants_count, failed);
    return failed ? 1 : 0;
}

static int print_token(const struct config *cfg, int64_t user_id, bool admin, int64_t ttl)
{
    struct err e;
    char *token = auth_issue(cfg->jwt_secret, user_id, admin, clock_now_us() / 1000000, ttl, &e);

    if (!token) {
        log_error("%s", e.detail);
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

/* Checks cmd_token's arguments before anything is printed: --admin, --ttl SECONDS and user ids. */
static int parse_token_args(int argc, char **argv, bool *admin, int64_t *ttl)
{
    int64_t user_id;
    int users = 0;

    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--admin")) {
            *admin = true;
        } else if (!strcmp(argv[i], "--ttl") && i + 1 < argc) {
            if (num_parse_i64(argv[++i], 0, 10LL * 365 * 86400, ttl))
                return -1;
        } else if (num_parse_i64(argv[i], 1, INT64_MAX, &user_id)) {
            return -1;
        } else {
            users++;
        }
    }
    return *admin || users ? 0 : -1;
}

/* The README's second terminal: make run's development secret, as make run uses it. */
static int load_dev_secret(struct config *cfg)
{
    struct err e;

    if (cfg->jwt_secret[0])
        return 0;
    if (config_read_secret_file(cfg, DEV_SECRET_FILE, &e)) {
        log_error("SHOPD_JWT_SECRET is not set, and no development secret: %s (make run "
                  "creates it)",
                  e.detail);
        return -1;
    }
    return 0;
}

/* One token per line: the admin's with --admin, then one per user id, in argument order (the
 * benchmarks mint thousands in one process). */
static int cmd_token(struct config *cfg, int argc, char **argv)
{
    int64_t ttl = DEFAULT_TOKEN_TTL_S;
    int64_t user_id;
    bool admin = false;

    if (parse_token_args(argc, argv, &admin, &ttl)) {
        fputs(usage, stderr);
        return 2;
    }
    if (load_dev_secret(cfg))
        return 2;
    /* A line per write: several of these processes may share one output file. setvbuf() fails
     * only for a bad mode or size, and these are constants. */
    (void)setvbuf(stdout, NULL, _IOLBF, 0);
    if (admin && print_token(cfg, 0, true, ttl))
        return 1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--ttl"))
            i++;
        else if (strcmp(argv[i], "--admin") && (num_parse_i64(argv[i], 1, INT64_MAX, &user_id) ||
                                                print_token(cfg, user_id, false, ttl)))
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct err e;
    int rc;

    /* signal() fails only for an invalid signal number or handler (EINVAL), and these are
     * constants: nothing to check. */
    (void)signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (config_load(&cfg, env, &e)) {
        log_error("configuration: %s", e.detail);
        return 2;
    }
    if (!strcmp(argv[1], "token"))
        return cmd_token(&cfg, argc - 2, argv + 2);
    if (db_library_init()) {
        log_error("cannot initialise the MariaDB client library");
        return 1;
    }
    if (!strcmp(argv[1], "serve")) {
        rc = cmd_serve(&cfg, argc - 2, argv + 2);
    } else if (!strcmp(argv[1], "platform")) {
        rc = cmd_platform(&cfg, argc - 2, argv + 2);
    } else if (!strcmp(argv[1], "migrate")) {
        rc = cmd_migrate(&cfg);
    } else if (!strcmp(argv[1], "check")) {
        rc = cmd_check(&cfg);
    } else if (!strcmp(argv[1], "seed")) {
        rc = cmd_seed(&cfg);
    } else {
        fputs(usage, stderr);
        rc = 2;
    }
    db_library_end();
    return rc;
}
