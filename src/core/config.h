#ifndef SHOPD_CORE_CONFIG_H
#define SHOPD_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The service's configuration, read once at start-up (see the table in README.md) and then
 * shared read-only by every thread. No code reads the environment after config_load().
 */

struct err;

/* How coupon issue guards its count (SHOPD_COUPON_STRATEGY), for comparison in benchmarks. */
enum config_coupon_strategy {
    CONFIG_COUPON_GATE, /* Redis admission, then MariaDB (default) */
    CONFIG_COUPON_LOCK, /* the reference system's per-coupon distributed lock, then MariaDB */
    CONFIG_COUPON_DB,   /* MariaDB alone */
};

/*
 * How writes of one user, order or idempotency key are kept apart (SHOPD_LOCKS). In both,
 * MariaDB enforces every invariant (conditional updates, unique keys, row locks); the mode
 * decides only who waits where.
 */
enum config_locks {
    CONFIG_LOCKS_DB,    /* MariaDB's row locks alone: waiters queue on the rows they write */
    CONFIG_LOCKS_REDIS, /* distributed locks in Redis with leases and fences, as the reference */
};

/* Nodes of SHOPD_DB_URL besides the first (a 4-node cluster at most: Galera's advice is 3). */
#define CONFIG_DB_FAILOVER_MAX 3
/* Redis Sentinels of SHOPD_REDIS_SENTINELS (a quorum needs 3; 5 at most). */
#define CONFIG_REDIS_SENTINELS_MAX 5

struct config {
    char listen_host[64];
    int listen_port;

    char db_host[128];
    int db_port;
    char db_user[64];
    char db_pass[128];
    char db_name[64];
    /* The other nodes of a cluster (Galera), in the order they are moved to when the node in
     * use is lost or not ready (port 0: a socket). db_host/db_port is the first, preferred node. */
    char db_failover_host[CONFIG_DB_FAILOVER_MAX][128];
    int db_failover_port[CONFIG_DB_FAILOVER_MAX];
    int db_nfailover;

    char redis_host[128];
    int redis_port;
    int redis_db;
    /* With SHOPD_REDIS_SENTINELS, the master is the one these name for redis_master
     * (SHOPD_REDIS_MASTER), and redis_host/redis_port only its first guess. */
    char redis_sentinel_host[CONFIG_REDIS_SENTINELS_MAX][128];
    int redis_sentinel_port[CONFIG_REDIS_SENTINELS_MAX];
    int redis_nsentinels;
    char redis_master[64];
    /* SHOPD_REDIS_FAULT: a test's fault for the Redis seam (redis/redis_fault.h); "" = none */
    char redis_fault[80];

    char jwt_secret[256]; /* empty when unset: serve refuses to start */
    int64_t order_ttl_s;
    int threads;        /* requests served at once = MariaDB and Redis connections */
    int db_lock_wait_s; /* innodb_lock_wait_timeout for request connections */
    /* idle_transaction_timeout for request connections (0 = none): a frozen process's
     * transaction, and its row locks, end after this long */
    int db_idle_trx_timeout_s;
    int lock_wait_s; /* how long a request waits for a distributed lock */
    bool access_log;
    /* The HTTP front end (API.md "Connections"): event-loop threads (SHOPD_HTTP_LOOPS, 0 = one
     * per core), open connections per instance (SHOPD_MAX_CONNECTIONS) and per client address
     * (SHOPD_MAX_CONNS_PER_IP); past either, a new connection is answered 503. */
    int http_loops;
    int http_head_s; /* SHOPD_HTTP_HEAD_TIMEOUT: a request whole this long after its first byte */
    int http_idle_s; /* SHOPD_HTTP_IDLE_TIMEOUT: an idle keep-alive connection closes */
    int max_connections;
    int max_conns_per_ip;
    enum config_coupon_strategy coupon_strategy;
    enum config_locks locks;
    /* SHOPD_GROUP_COMMIT=on|off: with locks db, concurrent charges batched into one
     * transaction each (service/charge_batch.h) */
    bool group_commit;
    /* SHOPD_IDEM_KEEP_MS: how long an instance keeps a committed success for the duplicates of
     * its key (service/idem_flight.h); 0: duplicates all go to MariaDB, none waits in shopd */
    int64_t idem_keep_ms;
    int64_t events_claim_idle_ms; /* a pending event idle this long is taken over */
    int events_max_deliveries;    /* deliveries without success before the dead-letter stream */
};

/* Returns the value of a configuration variable or NULL; getenv in production. */
typedef const char *config_getter_fn(const char *name);

/* Fills cfg from defaults and the variables that get() returns; -1 with ERR_INVALID_INPUT
 * naming the variable when one is malformed. */
int config_load(struct config *cfg, config_getter_fn *get, struct err *e);

/* The shortest SHOPD_JWT_SECRET that serve accepts (API.md "Authentication"). */
#define CONFIG_JWT_SECRET_MIN 32

/*
 * The secrets this repository publishes as placeholders or development defaults
 * (deploy/shopd.env, and what scripts/run.sh and scripts/cluster.sh used before they generated
 * one): anyone can read them, so serve refuses each. The one list; NULL-terminated.
 */
extern const char *const config_published_secrets[];

/* 0 when secret may sign tokens in production; -1 with ERR_INVALID_INPUT saying why (unset,
 * shorter than CONFIG_JWT_SECRET_MIN bytes, or one of config_published_secrets). */
int config_check_jwt_secret(const char *secret, struct err *e);

/* Reads a development secret from path (one line, as scripts/dev-secret.sh writes it) into
 * cfg->jwt_secret. 0, or -1 with ERR_INVALID_INPUT when the file is missing or malformed. */
int config_read_secret_file(struct config *cfg, const char *path, struct err *e);

/*
 * A Unix socket is named by its absolute path, at most CONFIG_SOCKET_PATH_MAX bytes (sun_path
 * holds 108 with the NUL). It lands in db_host / redis_host with port 0: a host that begins
 * with '/' is a socket path, for every user of these fields (repo/db.c, redis/redis_pool.c).
 */
#define CONFIG_SOCKET_PATH_MAX 107

/*
 * Parses into cfg's db_* fields one of
 *   mysql://user:pass@host:port/db                  TCP (port 3306 when omitted)
 *   mysql://user:pass@h1:p1,h2:p2,h3:p3/db          the nodes of a cluster, the first preferred
 *   mysql://user:pass@localhost/db?socket=/path     a Unix socket (the host may be empty)
 *   mysql://user:pass@%2Fpath%2Fmariadb.sock/db     the same, percent-encoded as the host
 * The socket form follows the server's own option (my.cnf's socket=, mariadb --socket).
 */
int config_parse_db_url(struct config *cfg, const char *url, struct err *e);
/*
 * Parses into cfg's redis_* fields "redis://host:port/db" (port 6379 and db 0 when omitted),
 * or "unix:///path/redis.sock?db=N" (db optional), the Unix-socket URL of redis-py and
 * hiredis-based clients.
 */
int config_parse_redis_url(struct config *cfg, const char *url, struct err *e);
/*
 * Parses "host:port,host:port,..." (port 26379 when omitted) into cfg's redis_sentinel_*
 * fields; "" means no Sentinels.
 */
int config_parse_redis_sentinels(struct config *cfg, const char *list, struct err *e);
/* Parses "host:port" into cfg's listen_* fields. */
int config_parse_listen(struct config *cfg, const char *addr, struct err *e);

#endif
