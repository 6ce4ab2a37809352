#ifndef SHOPD_TESTS_HARNESS_H
#define SHOPD_TESTS_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The integration tests' fixture, as Testcontainers would give it: a fresh MariaDB database
 * (shopd_t_<pid>_<n>) on the server named by SHOPD_TEST_DB, the Redis named by
 * SHOPD_TEST_REDIS, and real `shopd serve` (and `shopd platform`) processes started on free
 * loopback ports and stopped by pid. Tests skip when SHOPD_TEST_DB is unset.
 */

struct db_pool;

struct harness {
    char db_name[64];
    char db_url[256];
    char redis_url[256];
    const char *secret;
    struct db_pool *pool; /* to the test database, for direct checks */
};

struct harness_server {
    pid_t pid;
    int port;
    char url[64]; /* http://127.0.0.1:PORT */
    char log_path[256];
    int exit_status; /* set by harness_server_running once it saw the process exit */
};

/* 0 when ready; -1 when SHOPD_TEST_DB is unset (skip) or set-up failed (reason on stderr). */
int harness_setup(struct harness *h);
void harness_teardown(struct harness *h);

/* Starts `shopd serve` (the binary beside the test binary) on the test database with
 * extra_env ("NAME=value" strings, NULL-terminated, may be NULL) and waits for /healthz. The
 * test's own SHOPD_* variables are not passed on, but SHOPD_TEST_LOCKS, when set, is passed
 * as SHOPD_LOCKS (after extra_env, which wins). */
int harness_server_start(struct harness *h, struct harness_server *s, const char *const *extra_env);
/* Starts `shopd platform --listen 127.0.0.1:PORT` (the data-platform consumer) the same way,
 * with the same environment, and waits for its /healthz. Stop or kill it as a server. */
int harness_platform_start(struct harness *h, struct harness_server *s,
                           const char *const *extra_env);
/* SIGTERM and wait; returns the exit status (0 for a clean stop, non-zero on a leak). */
int harness_server_stop(struct harness_server *s);
/* SIGKILL and wait. */
void harness_server_kill(struct harness_server *s);
/* SIGSTOP, then waits until every thread of the process has stopped: from then on it does
 * nothing at all (no request, no acknowledgement) until resumed or killed. 0 or -1. */
int harness_server_pause(struct harness_server *s);
/* SIGCONT after a pause. 0 or -1. */
int harness_server_resume(struct harness_server *s);
/* Whether the process still runs. One that exited is reaped: its pid becomes -1 (stop and
 * kill then do nothing) and its status goes to exit_status, as harness_server_stop reports it. */
bool harness_server_running(struct harness_server *s);

/* execve / execvp with const arrays (NULL-terminated); return only on failure. */
void harness_execve(const char *path, const char *const *argv, const char *const *envp);
void harness_execvp(const char *const *argv);

/* Whether this run's servers keep writes apart in MariaDB alone (SHOPD_LOCKS=db, the default
 * unless SHOPD_TEST_LOCKS says redis). */
bool harness_locks_db(void);

char *harness_token(struct harness *h, int64_t user_id); /* malloc'd */
char *harness_admin_token(struct harness *h);            /* malloc'd */

/* Creates a user through the admin API; returns its id or -1. */
int64_t harness_create_user(struct harness *h, const struct harness_server *s, const char *name);

/* Runs a query with int64 parameters that returns one integer (NULL → 0); -1 on error. */
int64_t harness_sql_int(struct harness *h, const char *sql, int nparams, ...);

/* The same with parameters of any type. */
struct db_val;
int64_t harness_sql_vals(struct harness *h, const char *sql, const struct db_val *params,
                         size_t nparams);

/* Polls cond(arg) every 5 ms for at most timeout_ms: a wait on a condition, never a fixed
 * sleep. Returns whether it came true. */
bool harness_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms);
/* The same, polling every poll_ms: for a condition that costs real work (many queries) to
 * evaluate, so that waiting does not take the machine from the processes under test. */
bool harness_wait_for_every(bool (*cond)(void *arg), void *arg, int timeout_ms, int poll_ms);

/* The value of one series of the server's /metrics, named exactly as it is printed
 * (`shopd_cache_hits_total{cache="product"}`); -1 when it is absent or /metrics failed. */
int64_t harness_metric(const struct harness_server *s, const char *series);

/* Creates a product through the admin API (no description); returns its id or -1. */
int64_t harness_create_product(struct harness *h, const struct harness_server *s, const char *name,
                               int64_t price, int64_t stock);

/*
 * A private `redis-server` (the binary on PATH) on a free loopback port, for tests that kill
 * Redis and must leave the shared one alone: no persistence, its log beside the servers' logs.
 * Pass env in harness_server_start's extra_env to point shopd at it.
 */
struct harness_redis {
    pid_t pid;
    int port;
    char url[64]; /* redis://127.0.0.1:PORT/0 */
    char env[96]; /* SHOPD_REDIS_URL=<url> */
    char log_path[256];
    int replica_of;      /* the master's port for a replica, else 0 */
    int sentinel_of;     /* for a Sentinel: the port of the master it watches, as "shopd" */
    char conf_path[256]; /* a Sentinel's configuration, which it rewrites */
};

/* Starts it and waits until it answers PING; 0, or -1 (reason on stderr). */
int harness_redis_start(struct harness *h, struct harness_redis *r);
/* The same as a replica of master (--replicaof); it may not have synced yet. */
int harness_redis_start_replica(struct harness *h, struct harness_redis *r,
                                const struct harness_redis *master);
/* A Redis Sentinel (redis-server --sentinel) watching master as "shopd", with a quorum of 1
 * (it alone may fail over) and down-after-milliseconds 1000. */
int harness_sentinel_start(struct harness *h, struct harness_redis *r,
                           const struct harness_redis *master);
/* Starts it again on the same port (after harness_redis_kill) and waits for PING. */
int harness_redis_restart(struct harness_redis *r);
/* SIGKILL and wait: a crash, as a test injects it. The port stays reserved in r. */
void harness_redis_kill(struct harness_redis *r);
/* SIGTERM and wait; returns the exit status (0 for a clean stop). */
int harness_redis_stop(struct harness_redis *r);
/* True when something on r's port answers PING with +PONG within a second. */
bool harness_redis_ping(const struct harness_redis *r);

#endif
