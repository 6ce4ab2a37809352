/*
 * The distributed lock (src/redis/dlock.c) against the real Redis and MariaDB: mutual exclusion
 * across processes and threads, the paused holder whose late write the fence refuses (the case
 * Kleppmann describes), releases by non-owners, prompt wake-ups and time-outs, renewal of a long
 * section, fences that only grow (even after Redis loses the counter), Redis away, and Redis
 * slow (a private Redis stalled by a busy script): never taken for "away", no lease left.
 *
 * Every lock name lives under a per-run prefix (the harness database name and a colon), so runs
 * never collide. Children are forked while the process has no threads of ours; each builds its
 * own pools and manager, reports through its exit code, and leaves with _exit(). Waits are on
 * conditions (harness_wait_for), never fixed sleeps.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/metrics.h"
#include "harness.h"
#include "it_main.h"
#include "redis/dlock.h"
#include "redis/redis_pool.h"
#include "repo/db.h"

static struct harness h;
static struct config cfg; /* db_* and redis_* of the harness's URLs */
static char prefix[80];   /* "<db name>:" */
static redisContext *raw; /* the parent's main thread's own connection, for direct checks */

static const char sql_schema[] =
    "CREATE TABLE counter (id INT PRIMARY KEY, value BIGINT NOT NULL);"
    "CREATE TABLE fenced (id INT PRIMARY KEY, value BIGINT NOT NULL, fence BIGINT NOT NULL, "
    "writes INT NOT NULL);"
    "INSERT INTO counter VALUES (1, 0);"
    "INSERT INTO fenced VALUES (1, 0, 0, 0)";
static const char sql_counter_reset[] = "UPDATE counter SET value = 0 WHERE id = 1";
/* Deliberately a plain, non-locking read and an unconditional write: only the lock keeps two
 * read-modify-writes from interleaving and losing an update. */
static const char sql_counter_read[] = "SELECT value FROM counter WHERE id = 1";
static const char sql_counter_write[] = "UPDATE counter SET value = ? WHERE id = 1";
static const char sql_counter_value[] = "SELECT value FROM counter WHERE id = 1";
static const char sql_fenced_reset[] =
    "UPDATE fenced SET value = 0, fence = 0, writes = 0 WHERE id = 1";
/* The protected write: refused when a newer holder already wrote. writes counts the ones that
 * were accepted, so that a doubled write would show. */
static const char sql_fenced_write[] =
    "UPDATE fenced SET value = ?, fence = ?, writes = writes + 1 WHERE id = 1 AND fence <= ?";
static const char sql_fenced_value[] = "SELECT value FROM fenced WHERE id = 1";
static const char sql_fenced_fence[] = "SELECT fence FROM fenced WHERE id = 1";
static const char sql_fenced_writes[] = "SELECT writes FROM fenced WHERE id = 1";

/* ---- helpers: pools, raw Redis, children ---- */

static struct db_pool *open_db(int size)
{
    struct db_options o = {.host = cfg.db_host,
                           .port = cfg.db_port,
                           .user = cfg.db_user,
                           .pass = cfg.db_pass,
                           .name = cfg.db_name,
                           .size = size,
                           .lock_wait_s = 30};

    return db_pool_new(&o);
}

static int db_run(struct db_pool *p, const char *sql, const struct db_val *params, size_t n,
                  uint64_t *affected, struct err *e)
{
    struct db_conn *c;

    if (db_acquire(p, &c, e))
        return -1;
    int rc = db_exec(c, sql, params, n, affected, NULL, e);
    db_release(p, c);
    return rc;
}

static int fenced_write(struct db_pool *p, int64_t value, int64_t fence, uint64_t *affected,
                        struct err *e)
{
    struct db_val params[] = {DB_INT(value), DB_INT(fence), DB_INT(fence)};

    return db_run(p, sql_fenced_write, params, 3, affected, e);
}

struct locks {
    struct redis_pool *redis;
    struct dlock_manager *m;
};

/* A Redis pool with a command time-out of timeout_ms and a lock manager on host:port. */
static void locks_open_timeout(struct locks *l, const char *host, int port, int size,
                               int timeout_ms)
{
    struct redis_options ro = {
        .host = host, .port = port, .db = cfg.redis_db, .size = size, .timeout_ms = timeout_ms};
    struct dlock_options lo = {.prefix = prefix};

    l->redis = redis_pool_new(&ro);
    l->m = dlock_manager_new(l->redis, &lo);
}

/* A Redis pool and a lock manager on host:port, as one shopd process has them. */
static void locks_open(struct locks *l, const char *host, int port, int size)
{
    locks_open_timeout(l, host, port, size, 1000);
}

static void locks_close(struct locks *l)
{
    /* The manager first: its threads use the pool. */
    dlock_manager_free(l->m);
    redis_pool_free(l->redis);
}

static void lock_key(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%slock:%s", prefix, name);
}

static redisReply *raw_cmd(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    return r;
}

/* The value of the lock key of name, copied into buf; "" when there is none. */
static void raw_lock_value(const char *name, char *buf, size_t size)
{
    char key[256];

    lock_key(name, key, sizeof(key));
    redisReply *r = raw_cmd("GET %s", key);
    snprintf(buf, size, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
}

/* PTTL of the lock key of name: -2 when it is gone, -3 when the command failed. */
static long long raw_lock_pttl(const char *name)
{
    char key[256];

    lock_key(name, key, sizeof(key));
    redisReply *r = raw_cmd("PTTL %s", key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    if (r)
        freeReplyObject(r);
    return v;
}

static bool lock_key_gone(void *arg)
{
    return raw_lock_pttl(arg) == -2;
}

/* Deletes every key matching pattern (a test database's few keys: KEYS is fine here). */
static int raw_delete_matching(const char *pattern)
{
    redisReply *r = raw_cmd("KEYS %s", pattern);
    int n = 0;

    if (r && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *d = raw_cmd("DEL %b", r->element[i]->str, r->element[i]->len);
            if (d && d->type == REDIS_REPLY_INTEGER)
                n += (int)d->integer;
            if (d)
                freeReplyObject(d);
        }
    }
    if (r)
        freeReplyObject(r);
    return n;
}

/* Forks a child that runs child_main(arg) and leaves with _exit() (no atexit handlers, so no
 * leak check or cmocka report from the child). The child dies with the test binary. */
static pid_t spawn(int (*child_main)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        _exit(child_main(arg));
    }
    return pid;
}

struct reaping {
    pid_t pid;
    int status;
};

static bool exited(void *arg)
{
    struct reaping *r = arg;

    return waitpid(r->pid, &r->status, WNOHANG) == r->pid;
}

/* Waits up to timeout_ms for the child to exit, else kills it; always reaps. Returns its exit
 * code, or -1 when it had to be killed or died of a signal. */
static int reap(pid_t pid, int timeout_ms)
{
    struct reaping r = {pid, 0};

    if (pid <= 0)
        return -1;
    if (!harness_wait_for(exited, &r, timeout_ms)) {
        fprintf(stderr, "test_dlock: child %d did not finish in %d ms; killing it\n", (int)pid,
                timeout_ms);
        kill(pid, SIGKILL);
        while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR)
            ;
        return -1;
    }
    return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1;
}

static bool read_full(int fd, void *buf, size_t n)
{
    char *p = buf;

    while (n) {
        ssize_t got = read(fd, p, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n) {
        ssize_t put = write(fd, p, n);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return false;
        p += put;
        n -= (size_t)put;
    }
    return true;
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    struct db_conn *c;
    struct err e;

    if (harness_setup(&h))
        return -1;
    if (config_parse_db_url(&cfg, h.db_url, &e) || config_parse_redis_url(&cfg, h.redis_url, &e)) {
        fprintf(stderr, "test_dlock: %s\n", e.detail);
        return -1;
    }
    snprintf(prefix, sizeof(prefix), "%s:", h.db_name);
    if (db_acquire(h.pool, &c, &e))
        return -1;
    int rc = db_exec_script(c, sql_schema, &e);
    db_release(h.pool, c);
    if (rc) {
        fprintf(stderr, "test_dlock: schema: %s\n", e.detail);
        return -1;
    }
    struct timeval tv = {2, 0};
    raw = redis_connect_place(cfg.redis_host, cfg.redis_port, 2000);
    if (!raw || raw->err) {
        fprintf(stderr, "test_dlock: cannot connect to redis at %s:%d\n", cfg.redis_host,
                cfg.redis_port);
        return -1;
    }
    redisSetTimeout(raw, tv);
    redisReply *r = raw_cmd("SELECT %d", cfg.redis_db);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    char pattern[128];

    if (raw) {
        snprintf(pattern, sizeof(pattern), "%s*", prefix);
        raw_delete_matching(pattern);
        redisFree(raw);
        raw = NULL;
    }
    harness_teardown(&h);
    return 0;
}

/* ---- 1. mutual exclusion: 4 processes × 8 threads on one counter row ---- */

#define COUNTER_PROCS    4
#define COUNTER_THREADS  8
#define COUNTER_STEPS    25
#define COUNTER_WAIT_MS  120000 /* no fairness is promised: give a starved thread room */
#define COUNTER_LEASE_MS 2000

enum child_code {
    CHILD_OK = 0,
    CHILD_ACQUIRE_FAILED = 10,
    CHILD_UNGUARDED,
    CHILD_SQL_FAILED,
    CHILD_LEASE_LOST,
    CHILD_PIPE,
    CHILD_STILL_HELD,
    CHILD_LATE_WRITE_ACCEPTED,
};

struct counter_worker {
    struct dlock_manager *m;
    struct db_pool *db;
    int status;
};

static int counter_step(struct db_pool *db, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    struct db_conn *c;
    int rc = -1;

    if (db_acquire(db, &c, e))
        return -1;
    if (!db_query(c, sql_counter_read, NULL, 0, &a, &rows, e)) {
        struct db_val p[] = {DB_INT(rows.nrows == 1 ? db_int(&rows, 0, 0) + 1 : -1)};
        rc = rows.nrows == 1 ? db_exec(c, sql_counter_write, p, 1, NULL, NULL, e)
                             : err_set(e, ERR_INTERNAL, "no counter row");
    }
    db_release(db, c);
    arena_release(&a);
    return rc;
}

static void *counter_worker(void *arg)
{
    struct counter_worker *w = arg;

    for (int i = 0; i < COUNTER_STEPS && !w->status; i++) {
        struct dlock l;
        struct err e;
        if (dlock_acquire(w->m, "counter", COUNTER_WAIT_MS, COUNTER_LEASE_MS, &l, &e)) {
            fprintf(stderr, "test_dlock[%d]: acquire: %s\n", (int)getpid(), e.detail);
            w->status = CHILD_ACQUIRE_FAILED;
            break;
        }
        if (!dlock_fenced(&l)) {
            w->status = CHILD_UNGUARDED; /* exclusion was not guaranteed: say so, not "lost" */
        } else if (counter_step(w->db, &e)) {
            fprintf(stderr, "test_dlock[%d]: sql: %s\n", (int)getpid(), e.detail);
            w->status = CHILD_SQL_FAILED;
        } else if (!dlock_held(&l)) {
            w->status = CHILD_LEASE_LOST;
        }
        dlock_release(w->m, &l);
    }
    return NULL;
}

static int counter_child(void *arg)
{
    int *start = arg;
    struct counter_worker w[COUNTER_THREADS];
    pthread_t t[COUNTER_THREADS];
    struct locks l;
    char go;
    int status = CHILD_OK;

    /* Every child starts when the parent closes the start pipe, so that all 32 contend. */
    close(start[1]);
    if (read(start[0], &go, 1) != 0)
        return CHILD_PIPE;
    close(start[0]);
    struct db_pool *db = open_db(COUNTER_THREADS);
    /* One connection more than threads: the watchdog renews through the pool too. */
    locks_open(&l, cfg.redis_host, cfg.redis_port, COUNTER_THREADS + 1);
    for (int i = 0; i < COUNTER_THREADS; i++) {
        w[i] = (struct counter_worker){l.m, db, CHILD_OK};
        if (pthread_create(&t[i], NULL, counter_worker, &w[i]))
            _exit(CHILD_PIPE);
    }
    for (int i = 0; i < COUNTER_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (!status)
            status = w[i].status;
    }
    locks_close(&l);
    db_pool_free(db);
    return status;
}

static void mutual_exclusion_across_processes_and_threads(void **state)
{
    pid_t pids[COUNTER_PROCS];
    int codes[COUNTER_PROCS];
    int start[2];
    struct err e;

    assert_int_equal(db_run(h.pool, sql_counter_reset, NULL, 0, NULL, &e), 0);
    assert_int_equal(pipe(start), 0);
    for (int p = 0; p < COUNTER_PROCS; p++)
        pids[p] = spawn(counter_child, start);
    int64_t t0 = clock_monotonic_us();
    close(start[0]);
    close(start[1]); /* go */
    for (int p = 0; p < COUNTER_PROCS; p++)
        codes[p] = reap(pids[p], 300000);
    int64_t took_ms = (clock_monotonic_us() - t0) / 1000;
    for (int p = 0; p < COUNTER_PROCS; p++) {
        assert_true(pids[p] > 0);
        if (codes[p] != CHILD_OK)
            fail_msg("child %d exited with %d (see enum child_code)", p, codes[p]);
    }
    /* Without the lock, 32 writers' read-modify-writes interleave and lose updates. */
    assert_int_equal(harness_sql_int(&h, sql_counter_value, 0),
                     COUNTER_PROCS * COUNTER_THREADS * COUNTER_STEPS);
    print_message("  %d locked read-modify-writes by %d processes x %d threads in %lld ms\n",
                  COUNTER_PROCS * COUNTER_THREADS * COUNTER_STEPS, COUNTER_PROCS, COUNTER_THREADS,
                  (long long)took_ms);
}

/* ---- 2. the paused holder ---- */

#define PAUSED_LEASE_MS 300
#define CHILD_VALUE     111
#define PARENT_VALUE    222

struct paused {
    int to_parent[2];
    int to_child[2];
};

/* Takes "fenced" with a short lease, tells the parent its fence, and waits (it is stopped
 * meanwhile) to be told to write. Then it checks dlock_held() as a careful holder would, and
 * writes anyway, as a holder paused right after that check would: the fence must refuse it. */
static int paused_child(void *arg)
{
    struct paused *pp = arg;
    struct db_pool *db = open_db(1);
    struct locks l;
    struct dlock lock;
    struct err e;
    int64_t fence = 0;
    uint64_t affected = 0;
    char go = 0;
    int rc = CHILD_OK;

    close(pp->to_parent[0]);
    close(pp->to_child[1]);
    locks_open(&l, cfg.redis_host, cfg.redis_port, 2);
    bool acquired = !dlock_acquire(l.m, "fenced", 5000, PAUSED_LEASE_MS, &lock, &e);
    if (!acquired)
        rc = CHILD_ACQUIRE_FAILED;
    else if (!dlock_fenced(&lock))
        rc = CHILD_UNGUARDED;
    else
        fence = lock.fence;
    if (!write_full(pp->to_parent[1], &fence, sizeof(fence)) && !rc)
        rc = CHILD_PIPE;
    if (!rc && !read_full(pp->to_child[0], &go, 1))
        rc = CHILD_PIPE;
    if (!rc) {
        bool held = dlock_held(&lock);
        if (fenced_write(db, CHILD_VALUE, fence, &affected, &e))
            rc = CHILD_SQL_FAILED;
        else if (affected != 0)
            rc = CHILD_LATE_WRITE_ACCEPTED;
        else if (held)
            rc = CHILD_STILL_HELD;
    }
    if (acquired)
        dlock_release(l.m, &lock); /* harmless: the lock is someone else's or nobody's */
    locks_close(&l);
    db_pool_free(db);
    close(pp->to_parent[1]);
    close(pp->to_child[0]);
    return rc;
}

static void paused_holder_is_fenced_off(void **state)
{
    struct paused pp;
    struct locks l;
    struct dlock lock;
    struct err e;
    int64_t child_fence = 0, parent_fence = 0, paused_ms = 0;
    uint64_t affected = 0;
    bool stopped = false, expired = false, parent_fenced = false;
    int parent_rc = -1, write_rc = -1, st = 0;

    assert_int_equal(db_run(h.pool, sql_fenced_reset, NULL, 0, NULL, &e), 0);
    assert_int_equal(pipe(pp.to_parent), 0);
    assert_int_equal(pipe(pp.to_child), 0);
    pid_t pid = spawn(paused_child, &pp);
    close(pp.to_parent[1]);
    close(pp.to_child[0]);

    /* Nothing below asserts until the child is continued and reaped. */
    if (pid > 0 && read_full(pp.to_parent[0], &child_fence, sizeof(child_fence)) &&
        child_fence > 0) {
        kill(pid, SIGSTOP);
        stopped = waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st);
        int64_t t0 = clock_monotonic_us();
        char name[] = "fenced";
        expired = harness_wait_for(lock_key_gone, name, 10000);
        paused_ms = (clock_monotonic_us() - t0) / 1000;
        if (expired) {
            locks_open(&l, cfg.redis_host, cfg.redis_port, 2);
            parent_rc = dlock_acquire(l.m, "fenced", 0, 5000, &lock, &e);
            if (!parent_rc) {
                parent_fence = lock.fence;
                parent_fenced = dlock_fenced(&lock);
                write_rc = fenced_write(h.pool, PARENT_VALUE, lock.fence, &affected, &e);
                dlock_release(l.m, &lock);
            }
            locks_close(&l);
        }
    }
    if (pid > 0)
        kill(pid, SIGCONT);
    char go = 'w';
    write_full(pp.to_child[1], &go, 1);
    close(pp.to_child[1]);
    close(pp.to_parent[0]);
    int code = reap(pid, 30000);

    assert_true(child_fence > 0);
    assert_true(stopped);
    assert_true(expired); /* the lease ran out while the holder was stopped */
    assert_int_equal(parent_rc, 0);
    assert_true(parent_fenced);
    assert_true(parent_fence > child_fence);
    assert_int_equal(write_rc, 0);
    assert_int_equal(affected, 1);
    if (code != CHILD_OK)
        fail_msg("the paused child exited with %d (see enum child_code)", code);
    assert_int_equal(harness_sql_int(&h, sql_fenced_value, 0), PARENT_VALUE);
    assert_int_equal(harness_sql_int(&h, sql_fenced_fence, 0), parent_fence);
    assert_int_equal(harness_sql_int(&h, sql_fenced_writes, 0), 1);
    print_message("  the stopped holder's %d ms lease was gone after %lld ms\n", PAUSED_LEASE_MS,
                  (long long)paused_ms);
}

/* ---- 3. a release by a non-owner does nothing ---- */

static void release_by_non_owner_does_nothing(void **state)
{
    struct locks l;
    struct dlock a, b, c;
    struct err e;
    char value[128] = "", token[64];
    bool fenced = false, held = false, held_after = true;
    int rival_rc = 0, again_rc = -1;
    enum err_code rival_code = ERR_CODE_COUNT;
    long long pttl_after = 0, pttl_twice = 0;

    /* Nothing below asserts until the manager is closed: a failure must not leave its
     * threads with a pointer into this stack frame. */
    locks_open(&l, cfg.redis_host, cfg.redis_port, 2);
    int rc = dlock_acquire(l.m, "x", 0, 5000, &a, &e);
    if (!rc) {
        fenced = dlock_fenced(&a);
        snprintf(token, sizeof(token), "%s", a.token);
        /* Someone holding a handle for "x" with another token releases it. */
        memcpy(&b, &a, sizeof(b));
        b.token[0] = b.token[0] == 'X' ? 'Y' : 'X';
        b.next = NULL;
        dlock_release(l.m, &b);
        raw_lock_value("x", value, sizeof(value));
        held = dlock_held(&a);
        rival_rc = dlock_acquire(l.m, "x", 0, 5000, &c, &e);
        if (!rival_rc)
            dlock_release(l.m, &c);
        else
            rival_code = e.code;
        /* The owner's release works, and a second one is harmless. */
        dlock_release(l.m, &a);
        held_after = dlock_held(&a);
        pttl_after = raw_lock_pttl("x");
        dlock_release(l.m, &a);
        pttl_twice = raw_lock_pttl("x");
        again_rc = dlock_acquire(l.m, "x", 0, 5000, &c, &e);
        if (!again_rc)
            dlock_release(l.m, &c);
    }
    locks_close(&l);

    assert_int_equal(rc, 0);
    assert_true(fenced);
    assert_string_equal(value, token); /* the non-owner's release left the key alone */
    assert_true(held);
    assert_int_equal(rival_rc, -1);
    assert_int_equal(rival_code, ERR_UNAVAILABLE);
    assert_false(held_after);
    assert_int_equal(pttl_after, -2);
    assert_int_equal(pttl_twice, -2);
    assert_int_equal(again_rc, 0);
}

/* ---- 4. a waiter wakes promptly after release; a waiter times out ---- */

/* How long after the release the waiter may take to get the lock. It only has to tell "woken"
 * (milliseconds) from "timed out at 5 s"; a second is generous enough not to flake under ASan
 * on a loaded machine. */
#define WAKE_BOUND_US  1000000
#define WAITER_WAIT_MS 5000

struct waiter {
    struct dlock_manager *m;
    const char *name;
    int rc;
    struct err e;
    struct dlock lock;
    int64_t done_us;
    atomic_bool done;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;

    w->rc = dlock_acquire(w->m, w->name, WAITER_WAIT_MS, 5000, &w->lock, &w->e);
    w->done_us = clock_monotonic_us();
    atomic_store(&w->done, true);
    return NULL;
}

static bool waits_rose(void *arg)
{
    return metrics_get(METRIC_LOCK_WAITS) > *(const uint64_t *)arg;
}

struct wake_result {
    int holder_rc;
    bool waiting_seen; /* the waiter counted as waiting... */
    bool blocked;      /* ...and had not got the lock while the holder held it */
    int waiter_rc;
    int64_t woke_after_us;
    int64_t holder_fence, waiter_fence;
};

/* The holder takes name on holder_m; a thread waits for it on waiter_m; the holder releases. */
static void wake_round(struct dlock_manager *holder_m, struct dlock_manager *waiter_m,
                       const char *name, struct wake_result *r)
{
    struct waiter w = {.m = waiter_m, .name = name};
    struct dlock holder;
    struct err e;
    pthread_t t;

    memset(r, 0, sizeof(*r));
    r->holder_rc = dlock_acquire(holder_m, name, 0, 5000, &holder, &e);
    if (r->holder_rc)
        return;
    r->holder_fence = holder.fence;
    uint64_t waits = metrics_get(METRIC_LOCK_WAITS);
    atomic_init(&w.done, false);
    if (pthread_create(&t, NULL, waiter_main, &w)) {
        dlock_release(holder_m, &holder);
        r->holder_rc = -1;
        return;
    }
    r->waiting_seen = harness_wait_for(waits_rose, &waits, 5000);
    r->blocked = !atomic_load(&w.done);
    int64_t released_us = clock_monotonic_us();
    dlock_release(holder_m, &holder);
    pthread_join(t, NULL);
    r->waiter_rc = w.rc;
    r->woke_after_us = w.done_us - released_us;
    if (!w.rc) {
        r->waiter_fence = w.lock.fence;
        dlock_release(waiter_m, &w.lock);
    }
}

static void assert_woken(const struct wake_result *r, const char *what)
{
    assert_int_equal(r->holder_rc, 0);
    assert_true(r->waiting_seen);
    assert_true(r->blocked);
    assert_int_equal(r->waiter_rc, 0);
    assert_true(r->waiter_fence > r->holder_fence);
    if (r->woke_after_us >= WAKE_BOUND_US)
        fail_msg("%s: the waiter got the lock %lld us after the release", what,
                 (long long)r->woke_after_us);
    print_message("  %s: the waiter had the lock %lld us after the release\n", what,
                  (long long)r->woke_after_us);
}

static void waiter_wakes_promptly_after_release(void **state)
{
    struct locks l, other;
    struct wake_result same, across;

    locks_open(&l, cfg.redis_host, cfg.redis_port, 4);
    locks_open(&other, cfg.redis_host, cfg.redis_port, 4);
    /* In the same process the release wakes the waiter directly... */
    wake_round(l.m, l.m, "w", &same);
    /* ...and in another one (another manager) through the published release message. */
    wake_round(l.m, other.m, "w", &across);
    locks_close(&other);
    locks_close(&l);
    assert_woken(&same, "same manager");
    assert_woken(&across, "other manager");
}

static void waiter_times_out_with_unavailable(void **state)
{
    struct locks l;
    struct dlock holder, late;
    struct err e;

    locks_open(&l, cfg.redis_host, cfg.redis_port, 4);
    assert_int_equal(dlock_acquire(l.m, "w", 0, 5000, &holder, &e), 0);
    uint64_t timeouts = metrics_get(METRIC_LOCK_TIMEOUTS);
    int64_t t0 = clock_monotonic_us();
    int rc = dlock_acquire(l.m, "w", 200, 5000, &late, &e);
    int64_t took_us = clock_monotonic_us() - t0;
    if (!rc)
        dlock_release(l.m, &late);
    dlock_release(l.m, &holder);
    locks_close(&l);
    assert_int_equal(rc, -1);
    assert_int_equal(e.code, ERR_UNAVAILABLE);
    assert_true(took_us >= 200000);
    assert_true(took_us < 200000 + WAKE_BOUND_US);
    assert_int_equal(metrics_get(METRIC_LOCK_TIMEOUTS), timeouts + 1);
}

/* ---- 5. renewal keeps a long section's lock ---- */

#define RENEW_LEASE_MS 300

static void renewal_keeps_a_long_sections_lock(void **state)
{
    struct timespec tick = {0, 50 * 1000 * 1000};
    struct locks l, other;
    struct dlock lock, rival;
    struct err e;
    char value[128];
    int samples = 0, wrong_token = 0, bad_ttl = 0, not_held = 0, stolen = 0;
    long long min_pttl = RENEW_LEASE_MS;

    locks_open(&l, cfg.redis_host, cfg.redis_port, 2);
    locks_open(&other, cfg.redis_host, cfg.redis_port, 2);
    assert_int_equal(dlock_acquire(l.m, "renew", 0, RENEW_LEASE_MS, &lock, &e), 0);
    int64_t t0 = clock_monotonic_us();
    /* Sample the lock every 50 ms until three leases have passed: without renewal the key
     * would have expired after the first. */
    while (clock_monotonic_us() - t0 < 3 * RENEW_LEASE_MS * 1000 + 100000) {
        samples++;
        raw_lock_value("renew", value, sizeof(value));
        wrong_token += strcmp(value, lock.token) != 0;
        long long pttl = raw_lock_pttl("renew");
        bad_ttl += pttl <= 0 || pttl > RENEW_LEASE_MS;
        if (pttl < min_pttl)
            min_pttl = pttl;
        not_held += !dlock_held(&lock);
        if (!dlock_acquire(other.m, "renew", 0, 5000, &rival, &e)) {
            stolen++;
            dlock_release(other.m, &rival);
        }
        nanosleep(&tick, NULL);
    }
    int64_t held_ms = (clock_monotonic_us() - t0) / 1000;
    bool still_held = dlock_held(&lock);
    dlock_release(l.m, &lock);
    long long after = raw_lock_pttl("renew");
    locks_close(&other);
    locks_close(&l);

    assert_true(samples >= 10);
    assert_int_equal(wrong_token, 0);
    assert_int_equal(bad_ttl, 0);
    assert_int_equal(not_held, 0);
    assert_int_equal(stolen, 0);
    assert_true(still_held);
    assert_int_equal(after, -2);
    print_message("  a %d ms lease held for %lld ms (%d samples, lowest PTTL %lld ms)\n",
                  RENEW_LEASE_MS, (long long)held_ms, samples, min_pttl);
}

/* ---- 6. fencing tokens only grow ---- */

#define FENCE_ROUNDS 20

static void fences_only_grow(void **state)
{
    struct locks l;
    struct dlock lock;
    struct err e;
    int64_t fences[FENCE_ROUNDS + 1] = {0};
    int rcs[FENCE_ROUNDS + 1];
    bool fenced[FENCE_ROUNDS + 1];
    char pattern[128];

    locks_open(&l, cfg.redis_host, cfg.redis_port, 2);
    for (int i = 0; i <= FENCE_ROUNDS; i++) {
        if (i == FENCE_ROUNDS) {
            /* Redis loses the fence counter (a restart without persistence). The lock is
             * free, so every key left for "grow" is the counter. */
            snprintf(pattern, sizeof(pattern), "%slock:grow*", prefix);
            rcs[i] = raw_delete_matching(pattern) >= 1 ? 0 : -2;
            if (rcs[i])
                break;
        }
        rcs[i] = dlock_acquire(l.m, "grow", 0, 5000, &lock, &e);
        if (rcs[i])
            break;
        fences[i] = lock.fence;
        fenced[i] = dlock_fenced(&lock);
        dlock_release(l.m, &lock);
    }
    locks_close(&l);

    for (int i = 0; i <= FENCE_ROUNDS; i++) {
        if (rcs[i])
            fail_msg("round %d: %s", i, rcs[i] == -2 ? "no fence counter key" : "not acquired");
        assert_true(fenced[i]);
        if (fences[i] <= (i ? fences[i - 1] : 0))
            fail_msg("round %d%s: fence %lld after %lld", i,
                     i == FENCE_ROUNDS ? " (after the counter was lost)" : "", (long long)fences[i],
                     (long long)(i ? fences[i - 1] : 0));
    }
}

/* ---- 7. Redis unreachable ---- */

static void unreachable_redis_grants_unguarded(void **state)
{
    struct locks l;
    struct dlock lock;
    struct err e;

    locks_open(&l, "127.0.0.1", 1, 2);
    uint64_t unguarded = metrics_get(METRIC_LOCK_UNGUARDED);
    int64_t t0 = clock_monotonic_us();
    int rc = dlock_acquire(l.m, "u", 5000, 5000, &lock, &e);
    int64_t took_us = clock_monotonic_us() - t0;
    bool held = !rc && dlock_held(&lock), fenced = !rc && dlock_fenced(&lock);
    int64_t fence = rc ? -1 : lock.fence;
    bool held_after = true;
    if (!rc) {
        dlock_release(l.m, &lock);
        held_after = dlock_held(&lock);
        dlock_release(l.m, &lock);
    }
    locks_close(&l);
    assert_int_equal(rc, 0);
    assert_true(held);
    assert_false(held_after);
    assert_false(fenced);
    assert_int_equal(fence, 0);
    /* At once, not after the 5 s wait: a refused connect fails immediately. */
    assert_true(took_us < 1000000);
    assert_int_equal(metrics_get(METRIC_LOCK_UNGUARDED), unguarded + 1);
}

/* ---- 8. Redis slow is not Redis down ---- */

/* shopd's own command time-out (src/main.c), so that a stall is longer than it. */
#define SLOW_POOL_TIMEOUT_MS 200

/* A Lua script that keeps Redis busy for ARGV[1] ms: a stall as DEBUG SLEEP makes one (which
 * a default Redis 7 refuses), during which Redis accepts connections and buffers commands, and
 * runs them all when it wakes up. */
static const char script_stall[] =
    "local t = redis.call('TIME') "
    "local s = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
    "repeat t = redis.call('TIME') "
    "until tonumber(t[1]) * 1000000 + tonumber(t[2]) - s >= tonumber(ARGV[1]) * 1000 "
    "return 1";

struct stall {
    int port;
    redisContext *busy;  /* runs the script; its reply is never read */
    redisContext *probe; /* asks PING with a short time-out */
};

static redisContext *connect_private(int port, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c && !c->err)
        redisSetTimeout(c, tv);
    return c;
}

/* True once a PING gets no answer within 50 ms: Redis runs the stall script. */
static bool stalled(void *arg)
{
    struct stall *st = arg;

    if (!st->probe || st->probe->err) {
        if (st->probe)
            redisFree(st->probe);
        st->probe = connect_private(st->port, 50);
    }
    redisReply *r = redisCommand(st->probe, "PING");
    if (r) {
        freeReplyObject(r);
        return false;
    }
    return true;
}

/* True once Redis answers again. */
static bool awake(void *arg)
{
    struct stall *st = arg;
    redisContext *c = connect_private(st->port, 50);
    redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
    bool up = r != NULL;

    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return up;
}

/* Makes the Redis on port busy for ms and returns once it is; 0 or -1. */
static int stall_begin(struct stall *st, int port, int ms)
{
    int done = 0;

    memset(st, 0, sizeof(*st));
    st->port = port;
    st->busy = connect_private(port, 2000);
    if (!st->busy || st->busy->err)
        return -1;
    redisAppendCommand(st->busy, "EVAL %s 0 %d", script_stall, ms);
    while (!done)
        if (redisBufferWrite(st->busy, &done) != REDIS_OK)
            return -1;
    return harness_wait_for(stalled, st, 2000) ? 0 : -1;
}

/* Waits for the stall to end; frees its connections. True when Redis answered again. */
static bool stall_end(struct stall *st)
{
    bool up = harness_wait_for(awake, st, 10000);

    if (st->busy)
        redisFree(st->busy);
    if (st->probe)
        redisFree(st->probe);
    st->busy = st->probe = NULL;
    return up;
}

struct private_lock {
    redisContext *c;
    const char *name;
};

/* The lock key of name in the private Redis: its value into buf ("" when none); false when
 * Redis did not answer. */
static bool private_lock_value(redisContext *c, const char *name, char *buf, size_t size)
{
    char key[256];

    lock_key(name, key, sizeof(key));
    redisReply *r = redisCommand(c, "GET %s", key);
    snprintf(buf, size, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
    return r != NULL;
}

static bool private_lock_gone(void *arg)
{
    struct private_lock *pl = arg;
    char value[128];

    return private_lock_value(pl->c, pl->name, value, sizeof(value)) && !*value;
}

/* A stall longer than one try (1 s) but within the wait: the first try's reply is lost, and
 * the next try finds the lock holding our token (the lost try did run) or takes it. Either
 * way the lock is held, fenced, by us; and after the release no lease of ours is left. */
static void slow_reply_is_waited_for_not_taken_for_down(void **state)
{
    struct harness_redis rs;
    struct locks l;
    struct dlock lock;
    struct stall st;
    struct err e;
    char value[128] = "", token[64] = "";
    bool fenced = false, gone = false, awoke;
    int rc = -1, stall_rc;
    int64_t fence = 0, took_us = 0;

    assert_int_equal(harness_redis_start(&h, &rs), 0);
    redisContext *c = connect_private(rs.port, 2000);
    assert_non_null(c);
    uint64_t unguarded = metrics_get(METRIC_LOCK_UNGUARDED);
    locks_open_timeout(&l, "127.0.0.1", rs.port, 4, SLOW_POOL_TIMEOUT_MS);
    stall_rc = stall_begin(&st, rs.port, 1500);
    if (!stall_rc) {
        int64_t t0 = clock_monotonic_us();
        rc = dlock_acquire(l.m, "slow", 5000, 10000, &lock, &e);
        took_us = clock_monotonic_us() - t0;
    }
    awoke = stall_end(&st);
    if (!rc) {
        fenced = dlock_fenced(&lock);
        fence = lock.fence;
        snprintf(token, sizeof(token), "%s", lock.token);
        private_lock_value(c, "slow", value, sizeof(value));
        dlock_release(l.m, &lock);
        struct private_lock pl = {c, "slow"};
        /* Well within the 10 s lease: the release, and the watchdog after it, removed it. */
        gone = harness_wait_for(private_lock_gone, &pl, 3000);
    }
    locks_close(&l);
    redisFree(c);
    harness_redis_stop(&rs);

    assert_int_equal(stall_rc, 0);
    assert_true(awoke);
    if (rc)
        fail_msg("acquire failed: %s", e.detail);
    assert_true(fenced);
    assert_true(fence > 0);
    assert_string_equal(value, token);
    assert_true(gone);
    assert_int_equal(metrics_get(METRIC_LOCK_UNGUARDED), unguarded);
    print_message("  a 1.5 s stall: the lock was ours, fenced, after %lld ms\n",
                  (long long)took_us / 1000);
}

/* A stall longer than the whole wait: the state stays unknown, so the answer is 503, not an
 * unguarded grant. The lost tries run when Redis wakes and set our token with a 10 s lease;
 * the watchdog deletes it, so another instance gets the lock at once, not after 10 s. */
static void silent_redis_is_unavailable_and_leaves_no_lease(void **state)
{
    struct harness_redis rs;
    struct locks l, other;
    struct dlock lock, next;
    struct stall st;
    struct err e, e2;
    bool gone = false, awoke;
    int rc = 0, next_rc = -1, stall_rc;
    enum err_code code = ERR_CODE_COUNT;
    int64_t next_us = 0;

    assert_int_equal(harness_redis_start(&h, &rs), 0);
    redisContext *c = connect_private(rs.port, 2000);
    assert_non_null(c);
    uint64_t unguarded = metrics_get(METRIC_LOCK_UNGUARDED);
    locks_open_timeout(&l, "127.0.0.1", rs.port, 4, SLOW_POOL_TIMEOUT_MS);
    locks_open_timeout(&other, "127.0.0.1", rs.port, 4, SLOW_POOL_TIMEOUT_MS);
    stall_rc = stall_begin(&st, rs.port, 2500);
    if (!stall_rc) {
        rc = dlock_acquire(l.m, "silent", 800, 10000, &lock, &e);
        if (rc)
            code = e.code;
        else
            dlock_release(l.m, &lock);
    }
    awoke = stall_end(&st);
    if (awoke) {
        /* Another process wants the lock as soon as Redis is back. */
        int64_t t0 = clock_monotonic_us();
        next_rc = dlock_acquire(other.m, "silent", 5000, 10000, &next, &e2);
        next_us = clock_monotonic_us() - t0;
        if (!next_rc)
            dlock_release(other.m, &next);
        struct private_lock pl = {c, "silent"};
        gone = harness_wait_for(private_lock_gone, &pl, 3000);
    }
    locks_close(&other);
    locks_close(&l);
    redisFree(c);
    harness_redis_stop(&rs);

    assert_int_equal(stall_rc, 0);
    assert_true(awoke);
    assert_int_equal(rc, -1);
    assert_int_equal(code, ERR_UNAVAILABLE);
    assert_int_equal(metrics_get(METRIC_LOCK_UNGUARDED), unguarded);
    if (next_rc)
        fail_msg("the next acquire failed: %s", e2.detail);
    /* It waited for the watchdog's delete (about a second), not for the 10 s lease. */
    assert_true(next_us < 4000000);
    assert_true(gone);
    print_message("  after a 2.5 s stall the next holder had the lock in %lld ms\n",
                  (long long)next_us / 1000);
}

/* Mutual exclusion while Redis stalls: 2 managers x 4 threads on the counter, with three
 * stalls longer than one try. No grant is unguarded and no update is lost. */
#define SLOW_THREADS 4
#define SLOW_STEPS   20
#define SLOW_STALLS  3

struct slow_worker {
    struct dlock_manager *m;
    struct db_pool *db;
    atomic_int *steps;
    int status;
};

static void *slow_worker_main(void *arg)
{
    struct slow_worker *w = arg;

    for (int i = 0; i < SLOW_STEPS && !w->status; i++) {
        struct dlock l;
        struct err e;
        if (dlock_acquire(w->m, "counter", 20000, 5000, &l, &e)) {
            fprintf(stderr, "test_dlock: acquire under a stall: %s\n", e.detail);
            w->status = CHILD_ACQUIRE_FAILED;
            break;
        }
        if (!dlock_fenced(&l))
            w->status = CHILD_UNGUARDED;
        else if (counter_step(w->db, &e))
            w->status = CHILD_SQL_FAILED;
        else if (!dlock_held(&l))
            w->status = CHILD_LEASE_LOST;
        dlock_release(w->m, &l);
        atomic_fetch_add(w->steps, 1);
    }
    return NULL;
}

struct progress {
    atomic_int *steps;
    int at_least;
};

static bool progressed(void *arg)
{
    struct progress *p = arg;

    return atomic_load(p->steps) >= p->at_least;
}

static void exclusion_holds_while_redis_stalls(void **state)
{
    struct harness_redis rs;
    struct locks l[2];
    struct slow_worker w[2 * SLOW_THREADS];
    pthread_t t[2 * SLOW_THREADS];
    atomic_int steps = 0;
    struct err e;
    int stalls = 0;

    assert_int_equal(db_run(h.pool, sql_counter_reset, NULL, 0, NULL, &e), 0);
    assert_int_equal(harness_redis_start(&h, &rs), 0);
    uint64_t unguarded = metrics_get(METRIC_LOCK_UNGUARDED);
    struct db_pool *db = open_db(2 * SLOW_THREADS);
    for (int i = 0; i < 2; i++)
        locks_open_timeout(&l[i], "127.0.0.1", rs.port, SLOW_THREADS + 1, SLOW_POOL_TIMEOUT_MS);
    for (int i = 0; i < 2 * SLOW_THREADS; i++) {
        w[i] = (struct slow_worker){l[i % 2].m, db, &steps, CHILD_OK};
        assert_int_equal(pthread_create(&t[i], NULL, slow_worker_main, &w[i]), 0);
    }
    /* Stalls of 1.2 s, each once the workers have made some progress since the last. */
    for (int s = 0; s < SLOW_STALLS; s++) {
        struct progress p = {&steps, 10 + s * 2 * SLOW_THREADS * SLOW_STEPS / (SLOW_STALLS + 1)};
        struct stall st;
        if (!harness_wait_for(progressed, &p, 60000))
            break;
        if (!stall_begin(&st, rs.port, 1200))
            stalls++;
        stall_end(&st);
    }
    int status = CHILD_OK;
    for (int i = 0; i < 2 * SLOW_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (!status)
            status = w[i].status;
    }
    for (int i = 0; i < 2; i++)
        locks_close(&l[i]);
    db_pool_free(db);
    harness_redis_stop(&rs);

    assert_int_equal(stalls, SLOW_STALLS);
    if (status != CHILD_OK)
        fail_msg("a worker ended with %d (see enum child_code)", status);
    assert_int_equal(harness_sql_int(&h, sql_counter_value, 0), 2 * SLOW_THREADS * SLOW_STEPS);
    assert_int_equal(metrics_get(METRIC_LOCK_UNGUARDED), unguarded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* The forking tests first, while the process has no threads of ours yet. */
        cmocka_unit_test(mutual_exclusion_across_processes_and_threads),
        cmocka_unit_test(paused_holder_is_fenced_off),
        cmocka_unit_test(release_by_non_owner_does_nothing),
        cmocka_unit_test(waiter_wakes_promptly_after_release),
        cmocka_unit_test(waiter_times_out_with_unavailable),
        cmocka_unit_test(renewal_keeps_a_long_sections_lock),
        cmocka_unit_test(fences_only_grow),
        cmocka_unit_test(unreachable_redis_grants_unguarded),
        cmocka_unit_test(slow_reply_is_waited_for_not_taken_for_down),
        cmocka_unit_test(silent_redis_is_unavailable_and_leaves_no_lease),
        cmocka_unit_test(exclusion_holds_while_redis_stalls),
    };
    /* A write to a child that already exited must fail, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    if (it_main_begin() < 0)
        return 1;
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
