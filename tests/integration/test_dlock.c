/*
 * The distributed lock (src/redis/dlock.c) against the real Redis and MariaDB: mutual exclusion
 * across processes and threads, the paused holder whose late write the fence refuses (the case
 * Kleppmann describes), releases by non-owners, prompt wake-ups and time-outs, renewal of a long
 * section, fences that only grow (even after Redis loses the counter), and Redis away.
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
    struct db_options o = {cfg.db_host, cfg.db_port, cfg.db_user, cfg.db_pass,
                           cfg.db_name, size,        30};

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

/* A Redis pool and a lock manager on host:port, as one shopd process has them. */
static void locks_open(struct locks *l, const char *host, int port, int size)
{
    struct redis_options ro = {host, port, cfg.redis_db, size, 1000};
    struct dlock_options lo = {host, port, cfg.redis_db, prefix};

    l->redis = redis_pool_new(&ro);
    l->m = dlock_manager_new(l->redis, &lo);
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
    raw = redisConnectWithTimeout(cfg.redis_host, cfg.redis_port, tv);
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
    };
    /* A write to a child that already exited must fail, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    if (it_main_begin() < 0)
        return 1;
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
