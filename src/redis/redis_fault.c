#include "redis/redis_fault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/array.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/num.h"

#include "core/banned.h"

static struct {
    atomic_bool armed; /* read without the lock: the path of every command when unarmed */
    pthread_mutex_t lock;
    struct redis_fault fault;
    long seen, given;
} hook = {.lock = PTHREAD_MUTEX_INITIALIZER};

void redis_fault_set(const struct redis_fault *f)
{
    pthread_mutex_lock(&hook.lock);
    bool on = f && f->kind != REDIS_FAULT_NONE;
    if (on) {
        hook.fault = *f;
        hook.fault.caller[sizeof(hook.fault.caller) - 1] = '\0';
    }
    hook.seen = hook.given = 0;
    atomic_store(&hook.armed, on);
    pthread_mutex_unlock(&hook.lock);
}

enum redis_fault_kind redis_fault_take(const char *caller, int *stall_ms)
{
    enum redis_fault_kind kind = REDIS_FAULT_NONE;

    if (!atomic_load_explicit(&hook.armed, memory_order_relaxed))
        return kind;
    pthread_mutex_lock(&hook.lock);
    const struct redis_fault *f = &hook.fault;
    bool matches = atomic_load(&hook.armed) && (!f->caller[0] || !strcmp(f->caller, caller));
    if (matches && (!f->limit || hook.given < f->limit)) {
        long every = f->every > 1 ? f->every : 1;
        if (hook.seen++ % every == 0) {
            hook.given++;
            kind = f->kind;
            *stall_ms = f->stall_ms;
        }
    }
    pthread_mutex_unlock(&hook.lock);
    if (kind != REDIS_FAULT_NONE)
        metrics_inc(METRIC_REDIS_FAULTS_INJECTED);
    return kind;
}

/* One ":name=N" option of a spec into *out; 0, or -1 when it is not one of name's. */
static int parse_option(const char *opt, size_t len, const char *name, int64_t max, int64_t *out)
{
    size_t n = strlen(name);

    if (len <= n + 1 || strncmp(opt, name, n) || opt[n] != '=')
        return -1;
    return num_parse_i64_n(opt + n + 1, len - n - 1, 1, max, out);
}

/* The kind named by the len bytes at name; NONE when it is not one. */
static enum redis_fault_kind kind_named(const char *name, size_t len)
{
    static const struct {
        const char *name;
        enum redis_fault_kind kind;
    } kinds[] = {
        {"down", REDIS_FAULT_DOWN},
        {"lost", REDIS_FAULT_LOST},
        {"stall", REDIS_FAULT_STALL},
    };

    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (strlen(kinds[i].name) == len && !strncmp(kinds[i].name, name, len))
            return kinds[i].kind;
    return REDIS_FAULT_NONE;
}

/* The ":name=N" options that follow the kind, into f. */
static int parse_options(const char *opt, struct redis_fault *f, struct err *e)
{
    while (*opt == ':') {
        opt++;
        size_t len = strcspn(opt, ":");
        int64_t v;
        if (!parse_option(opt, len, "every", 1000000, &v))
            f->every = (int)v;
        else if (!parse_option(opt, len, "limit", INT32_MAX, &v))
            f->limit = (long)v;
        else if (!parse_option(opt, len, "ms", 600000, &v))
            f->stall_ms = (int)v;
        else
            return err_set(e, ERR_INVALID_INPUT,
                           "redis fault: '%.*s' is not every=, limit= or ms=", (int)len, opt);
        opt += len;
    }
    return 0;
}

int redis_fault_parse(const char *spec, struct redis_fault *f, struct err *e)
{
    const char *colon = strchr(spec, ':');
    size_t caller_len = colon ? (size_t)(colon - spec) : 0;

    *f = (struct redis_fault){.kind = REDIS_FAULT_NONE};
    if (!caller_len || caller_len >= sizeof(f->caller))
        return err_set(e, ERR_INVALID_INPUT,
                       "redis fault: no caller (of up to %zu letters) before ':'",
                       sizeof(f->caller) - 1);
    if (caller_len > 1 || spec[0] != '*')
        memcpy(f->caller, spec, caller_len);
    const char *kind = colon + 1;
    size_t kind_len = strcspn(kind, ":");
    f->kind = kind_named(kind, kind_len);
    if (f->kind == REDIS_FAULT_NONE)
        return err_set(e, ERR_INVALID_INPUT, "redis fault: the kind is not down, lost or stall");
    if (parse_options(kind + kind_len, f, e))
        return -1;
    if (f->kind == REDIS_FAULT_STALL && !f->stall_ms)
        return err_set(e, ERR_INVALID_INPUT, "redis fault: a stall needs ms=");
    return 0;
}
