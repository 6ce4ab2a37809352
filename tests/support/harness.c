#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/arena.h"
#include "core/array.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "http/auth.h"
#include "http_client.h"
#include "repo/db.h"

extern char **environ;

static int instance;

static struct db_pool *pool_for(const char *url, int size)
{
    struct config cfg;
    struct err e;

    memset(&cfg, 0, sizeof(cfg));
    if (config_parse_db_url(&cfg, url, &e)) {
        fprintf(stderr, "harness: %s\n", e.detail);
        return NULL;
    }
    struct db_options o = {.host = cfg.db_host,
                           .port = cfg.db_port,
                           .user = cfg.db_user,
                           .pass = cfg.db_pass,
                           .name = cfg.db_name,
                           .size = size,
                           .lock_wait_s = 30};
    return db_pool_new(&o);
}

static int run_script(const char *url, const char *sql)
{
    struct db_pool *p = pool_for(url, 1);
    struct db_conn *c;
    struct err e;
    int rc = -1;

    if (!p)
        return -1;
    if (!db_acquire(p, &c, &e)) {
        rc = db_exec_script(c, sql, &e);
        db_release(p, c);
    }
    if (rc)
        fprintf(stderr, "harness: '%s' failed: %s\n", sql, e.detail);
    db_pool_free(p);
    return rc;
}

int harness_setup(struct harness *h)
{
    const char *base = getenv("SHOPD_TEST_DB");
    const char *redis = getenv("SHOPD_TEST_REDIS");
    char sql[256];

    memset(h, 0, sizeof(*h));
    if (!base || !*base)
        return -1;
    db_library_init();
    snprintf(h->db_name, sizeof(h->db_name), "shopd_t_%d_%d", (int)getpid(), instance++);
    /* "…@place/<db>" or "…@place/<db>?socket=…": the test database replaces <db>. */
    const char *at = strrchr(base, '@');
    const char *slash = strchr(at ? at : base, '/');
    if (!slash) {
        fprintf(stderr, "harness: SHOPD_TEST_DB '%s' names no database\n", base);
        return -1;
    }
    const char *query = strchr(slash, '?');
    snprintf(h->db_url, sizeof(h->db_url), "%.*s/%s%s", (int)(slash - base), base, h->db_name,
             query ? query : "");
    snprintf(h->redis_url, sizeof(h->redis_url), "%s",
             redis && *redis ? redis : "redis://127.0.0.1:16379/0");
    h->secret = "integration-test-secret-0123456789abcdef";
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s CHARACTER SET utf8mb4", h->db_name);
    if (run_script(base, sql))
        return -1;
    h->pool = pool_for(h->db_url, 8);
    return h->pool ? 0 : -1;
}

void harness_teardown(struct harness *h)
{
    const char *base = getenv("SHOPD_TEST_DB");
    char sql[256];

    if (!h->db_name[0])
        return;
    db_pool_free(h->pool);
    h->pool = NULL;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", h->db_name);
    run_script(base, sql);
    db_library_end();
}

static int free_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void binary_path(char *out, size_t size)
{
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    self[n > 0 ? n : 0] = '\0';
    snprintf(out, size, "%s/shopd", dirname(self));
}

static bool healthy(void *arg)
{
    struct harness_server *s = arg;
    struct http_result r;
    char url[128];
    int status;

    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
        s->pid = -1;
        return true; /* exited: stop waiting; the caller sees pid -1 */
    }
    snprintf(url, sizeof(url), "%s/healthz", s->url);
    bool ok = http_once("GET", url, NULL, NULL, NULL, &r) == 0 && r.status == 200;
    http_result_free(&r);
    return ok;
}

/* The command a started process runs: `shopd serve`, or `shopd platform --listen`. */
enum proc_kind { PROC_SERVE, PROC_PLATFORM };

/* execve and execvp take char *const[] for historical reasons and never write through it, so
 * the const arrays the tests build are passed through a union rather than a cast. */
union exec_argv {
    const char *const *c;
    char *const *m;
};

void harness_execve(const char *path, const char *const *argv, const char *const *envp)
{
    union exec_argv a = {.c = argv}, e = {.c = envp};

    execve(path, a.m, e.m);
}

void harness_execvp(const char *const *argv)
{
    union exec_argv a = {.c = argv};

    execvp(argv[0], a.m);
}

static void exec_process(struct harness *h, struct harness_server *s, enum proc_kind kind,
                         const char *const *extra)
{
    char bin[600], listen[64], db[300], redis[300], secret[128], addr[32], locks[64];
    const char *env[256];
    const char *lock_mode = getenv("SHOPD_TEST_LOCKS");
    int n = 0;

    binary_path(bin, sizeof(bin));
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
    snprintf(listen, sizeof(listen), "SHOPD_LISTEN=%s", addr);
    snprintf(db, sizeof(db), "SHOPD_DB_URL=%s", h->db_url);
    snprintf(redis, sizeof(redis), "SHOPD_REDIS_URL=%s", h->redis_url);
    snprintf(secret, sizeof(secret), "SHOPD_JWT_SECRET=%s", h->secret);
    /* getenv() takes the first match: the test's own settings go first. */
    for (; extra && *extra && n < 50; extra++)
        env[n++] = *extra;
    /* The lock mode the whole run is in (scripts/test.sh runs the suites in each). */
    if (lock_mode && *lock_mode) {
        snprintf(locks, sizeof(locks), "SHOPD_LOCKS=%s", lock_mode);
        env[n++] = locks;
    }
    for (char **e = environ; *e && n < 250; e++)
        if (strncmp(*e, "SHOPD_", 6))
            env[n++] = *e;
    env[n++] = listen;
    env[n++] = db;
    env[n++] = redis;
    env[n++] = secret;
    env[n] = NULL;
    int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    /* A test binary that dies (a crash, an ASan abort) must not leave servers behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const char *serve_argv[] = {bin, "serve", NULL};
    const char *platform_argv[] = {bin, "platform", "--listen", addr, NULL};
    harness_execve(bin, kind == PROC_SERVE ? serve_argv : platform_argv, env);
    perror("harness: execve shopd");
    _exit(127);
}

/* Forks kind on a free port with its log under SHOPD_TEST_LOG_DIR and waits for /healthz. */
static int start_process(struct harness *h, struct harness_server *s, enum proc_kind kind,
                         const char *const *extra_env)
{
    const char *dir = getenv("SHOPD_TEST_LOG_DIR");
    const char *what = kind == PROC_SERVE ? "" : "platform-";

    memset(s, 0, sizeof(*s));
    s->port = free_port();
    if (s->port < 0)
        return -1;
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
    snprintf(s->log_path, sizeof(s->log_path), "%s/%s-%s%d.log", dir && *dir ? dir : "/tmp",
             h->db_name, what, s->port);
    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0)
        exec_process(h, s, kind, extra_env);
    if (!harness_wait_for(healthy, s, 60000) || s->pid < 0) {
        fprintf(stderr, "harness: shopd %s on port %d did not become healthy; see %s\n",
                kind == PROC_SERVE ? "serve" : "platform", s->port, s->log_path);
        if (s->pid > 0)
            harness_server_kill(s);
        return -1;
    }
    return 0;
}

int harness_server_start(struct harness *h, struct harness_server *s, const char *const *extra_env)
{
    return start_process(h, s, PROC_SERVE, extra_env);
}

int harness_platform_start(struct harness *h, struct harness_server *s,
                           const char *const *extra_env)
{
    return start_process(h, s, PROC_PLATFORM, extra_env);
}

/* Whether every thread of pid is stopped (state T or t in /proc/<pid>/task/<tid>/stat; Z and
 * X are threads on their way out). */
static bool all_threads_stopped(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    char path[320], stat[512];
    bool stopped = true;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (!dir)
        return false;
    for (struct dirent *d; stopped && (d = readdir(dir));) {
        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, d->d_name);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
        if (f)
            fclose(f);
        stat[n] = '\0';
        /* "tid (comm) S …": the state follows the last parenthesis. */
        const char *paren = strrchr(stat, ')');
        stopped = n && paren && paren[1] == ' ' && strchr("TtZX", paren[2]);
    }
    closedir(dir);
    return stopped;
}

int harness_server_pause(struct harness_server *s)
{
    if (s->pid <= 0 || kill(s->pid, SIGSTOP))
        return -1;
    return harness_wait_for(all_threads_stopped, &s->pid, 10000) ? 0 : -1;
}

int harness_server_resume(struct harness_server *s)
{
    return s->pid > 0 && !kill(s->pid, SIGCONT) ? 0 : -1;
}

bool harness_server_running(struct harness_server *s)
{
    int status;

    if (s->pid <= 0)
        return false;
    if (waitpid(s->pid, &status, WNOHANG) != s->pid)
        return true;
    s->pid = -1;
    s->exit_status = WIFEXITED(status) ? WEXITSTATUS(status)
                                       : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return false;
}

int harness_server_stop(struct harness_server *s)
{
    int status = 0;

    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    kill(s->pid, SIGCONT); /* a paused process must run to see it */
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void harness_server_kill(struct harness_server *s)
{
    int status;

    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
}

bool harness_locks_db(void)
{
    const char *v = getenv("SHOPD_TEST_LOCKS");

    return !v || !*v || !strcmp(v, "db"); /* db is serve's default */
}

char *harness_token(struct harness *h, int64_t user_id)
{
    struct err e;
    return auth_issue(h->secret, user_id, false, clock_now_us() / 1000000, 3600, &e);
}

char *harness_admin_token(struct harness *h)
{
    struct err e;
    return auth_issue(h->secret, 0, true, clock_now_us() / 1000000, 3600, &e);
}

int64_t harness_create_user(struct harness *h, const struct harness_server *s, const char *name)
{
    char url[128], body[256];
    struct http_result r;
    char *token = harness_admin_token(h);
    int64_t id = -1;

    snprintf(url, sizeof(url), "%s/api/admin/users", s->url);
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    if (http_once("POST", url, token, body, NULL, &r) == 0 && r.status == 201) {
        json_t *root = json_loads(r.body, 0, NULL);
        id = json_integer_value(json_object_get(root, "userId"));
        json_decref(root);
    }
    http_result_free(&r);
    free(token);
    return id;
}

int64_t harness_sql_int(struct harness *h, const char *sql, int nparams, ...)
{
    struct db_val params[16];
    va_list ap;

    va_start(ap, nparams);
    for (int i = 0; i < nparams && i < 16; i++)
        params[i] = DB_INT(va_arg(ap, int64_t));
    va_end(ap);
    return harness_sql_vals(h, sql, params, (size_t)nparams);
}

int64_t harness_sql_vals(struct harness *h, const char *sql, const struct db_val *params,
                         size_t nparams)
{
    struct arena a = ARENA_INIT;
    struct db_rows rows;
    struct db_conn *c;
    struct err e;
    int64_t v = -1;

    if (db_acquire(h->pool, &c, &e))
        return -1;
    if (!db_query(c, sql, params, nparams, &a, &rows, &e))
        v = rows.nrows && !db_is_null(&rows, 0, 0) ? db_int(&rows, 0, 0) : 0;
    else
        fprintf(stderr, "harness: query failed: %s\n", e.detail);
    db_release(h->pool, c);
    arena_release(&a);
    return v;
}

bool harness_wait_for(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    return harness_wait_for_every(cond, arg, timeout_ms, 5);
}

bool harness_wait_for_every(bool (*cond)(void *arg), void *arg, int timeout_ms, int poll_ms)
{
    struct timespec tick = {poll_ms / 1000, (long)(poll_ms % 1000) * 1000 * 1000};
    int64_t deadline = clock_monotonic_us() + (int64_t)timeout_ms * 1000;

    while (!cond(arg)) {
        if (clock_monotonic_us() > deadline)
            return false;
        nanosleep(&tick, NULL);
    }
    return true;
}

int64_t harness_metric(const struct harness_server *s, const char *series)
{
    struct http_result r;
    char url[128];
    size_t n = strlen(series);
    int64_t v = -1;

    snprintf(url, sizeof(url), "%s/metrics", s->url);
    if (http_once("GET", url, NULL, NULL, NULL, &r) == 0 && r.status == 200) {
        for (const char *p = r.body; p && *p;) {
            if (!strncmp(p, series, n) && p[n] == ' ') {
                v = strtoll(p + n + 1, NULL, 10);
                break;
            }
            p = strchr(p, '\n');
            p = p ? p + 1 : NULL;
        }
    }
    http_result_free(&r);
    return v;
}

int64_t harness_create_product(struct harness *h, const struct harness_server *s, const char *name,
                               int64_t price, int64_t stock)
{
    char url[128];
    struct http_result r;
    json_t *req = json_pack("{s:s, s:I, s:I}", "name", name, "price", (json_int_t)price, "stock",
                            (json_int_t)stock);
    char *body = json_dumps(req, JSON_COMPACT);
    char *token = harness_admin_token(h);
    int64_t id = -1;

    snprintf(url, sizeof(url), "%s/api/admin/products", s->url);
    if (http_once("POST", url, token, body, NULL, &r) == 0 && r.status == 201) {
        json_t *root = json_loads(r.body, 0, NULL);
        id = json_integer_value(json_object_get(root, "productId"));
        json_decref(root);
    }
    http_result_free(&r);
    free(token);
    free(body);
    json_decref(req);
    return id;
}

bool harness_redis_ping(const struct harness_redis *r)
{
    struct sockaddr_in a = {0};
    struct timeval tv = {1, 0};
    char reply[16] = {0};
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = false;

    if (fd < 0)
        return false;
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)r->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (!connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
        send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
        /* "+PONG\r\n" may come in pieces. */
        while (got < 5) {
            ssize_t n = read(fd, reply + got, sizeof(reply) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        ok = !strncmp(reply, "+PONG", 5);
    }
    close(fd);
    return ok;
}

static bool redis_answers(void *arg)
{
    struct harness_redis *r = arg;
    int status;

    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
        r->pid = -1;
        return true; /* exited: stop waiting; the caller sees pid -1 */
    }
    return harness_redis_ping(r);
}

/* A Sentinel's configuration file: Sentinel refuses to run without one it can rewrite. */
static int write_sentinel_conf(const struct harness_redis *r, const char *dir)
{
    FILE *f = fopen(r->conf_path, "w");

    if (!f) {
        perror("harness: sentinel configuration");
        return -1;
    }
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\n"
            "sentinel monitor shopd 127.0.0.1 %d 1\n"
            "sentinel down-after-milliseconds shopd 1000\n"
            "sentinel failover-timeout shopd 5000\n",
            r->port, dir, r->sentinel_of);
    return fclose(f) ? -1 : 0;
}

static int redis_spawn(struct harness_redis *r)
{
    char port[16], dir[256], master[16];
    const char *log_dir = getenv("SHOPD_TEST_LOG_DIR");

    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(master, sizeof(master), "%d", r->replica_of);
    snprintf(dir, sizeof(dir), "%s", log_dir && *log_dir ? log_dir : "/tmp");
    if (r->sentinel_of && write_sentinel_conf(r, dir))
        return -1;
    fflush(NULL);
    r->pid = fork();
    if (r->pid < 0)
        return -1;
    if (r->pid == 0) {
        const char *server[] = {
            "redis-server", "--port", port,          "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no",     "--daemonize", "no",     "--dir",     dir,      "--replicaof",
            "127.0.0.1",    master,   NULL};
        const char *sentinel[] = {"redis-server", r->conf_path, "--sentinel", NULL};
        int fd = open(r->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        if (!r->replica_of)
            server[ARRAY_SIZE(server) - 4] = NULL; /* no --replicaof */
        /* A test binary that dies (ASan abort, a crash) must not leave Redis behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        harness_execvp(r->sentinel_of ? sentinel : server);
        perror("harness: execvp redis-server");
        _exit(127);
    }
    if (!harness_wait_for(redis_answers, r, 20000) || r->pid < 0) {
        fprintf(stderr, "harness: redis-server on port %d did not answer PING; see %s\n", r->port,
                r->log_path);
        if (r->pid > 0)
            harness_redis_kill(r);
        return -1;
    }
    return 0;
}

/* Fills r for a new server of kind ("redis", "replica", "sentinel") on a free port. */
static int redis_prepare(struct harness *h, struct harness_redis *r, const char *kind)
{
    const char *dir = getenv("SHOPD_TEST_LOG_DIR");

    memset(r, 0, sizeof(*r));
    r->port = free_port();
    if (r->port < 0)
        return -1;
    snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
    snprintf(r->env, sizeof(r->env), "SHOPD_REDIS_URL=%s", r->url);
    snprintf(r->log_path, sizeof(r->log_path), "%s/%s-%s-%d.log", dir && *dir ? dir : "/tmp",
             h->db_name, kind, r->port);
    snprintf(r->conf_path, sizeof(r->conf_path), "%s/%s-%s-%d.conf", dir && *dir ? dir : "/tmp",
             h->db_name, kind, r->port);
    return 0;
}

int harness_redis_start(struct harness *h, struct harness_redis *r)
{
    return redis_prepare(h, r, "redis") ? -1 : redis_spawn(r);
}

int harness_redis_start_replica(struct harness *h, struct harness_redis *r,
                                const struct harness_redis *master)
{
    if (redis_prepare(h, r, "replica"))
        return -1;
    r->replica_of = master->port;
    return redis_spawn(r);
}

int harness_sentinel_start(struct harness *h, struct harness_redis *r,
                           const struct harness_redis *master)
{
    if (redis_prepare(h, r, "sentinel"))
        return -1;
    r->sentinel_of = master->port;
    return redis_spawn(r);
}

int harness_redis_restart(struct harness_redis *r)
{
    if (r->pid > 0 || r->port <= 0)
        return -1;
    return redis_spawn(r);
}

void harness_redis_kill(struct harness_redis *r)
{
    int status;

    if (r->pid <= 0)
        return;
    kill(r->pid, SIGKILL);
    while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
        ;
    r->pid = 0;
}

int harness_redis_stop(struct harness_redis *r)
{
    int status = 0;

    if (r->pid <= 0)
        return -1;
    kill(r->pid, SIGTERM);
    while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
        ;
    r->pid = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
