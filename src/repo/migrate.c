#include "repo/migrate.h"

#include <stdbool.h>

#include "core/arena.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/num.h"
#include "repo/db.h"

#include "core/banned.h"

static const char sql_lock[] = "SELECT GET_LOCK('shopd.migrate', 120)";
static const char sql_unlock[] = "SELECT RELEASE_LOCK('shopd.migrate')";
static const char sql_create[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                 " version INT NOT NULL PRIMARY KEY,"
                                 " name VARCHAR(255) NOT NULL,"
                                 " applied_at DATETIME(6) NOT NULL) ENGINE = InnoDB";
/* On Galera every DDL statement, IF NOT EXISTS or not, is ordered across the whole cluster
 * (total order isolation) and waits behind the writes in flight: an instance restarting under
 * load asks first, and issues no DDL when nothing is missing. */
static const char sql_table_exists[] =
    "SELECT COUNT(*) FROM information_schema.tables"
    " WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'";
static const char sql_applied[] = "SELECT version FROM schema_migrations";
static const char sql_record[] =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)";

static int version_of(const char *name, int64_t *version)
{
    size_t n = 0;

    while (name[n] >= '0' && name[n] <= '9')
        n++;
    return num_parse_i64_n(name, n, 1, 999999, version);
}

static bool is_applied(const struct db_rows *rows, int64_t version)
{
    for (size_t i = 0; i < rows->nrows; i++)
        if (db_int(rows, i, 0) == version)
            return true;
    return false;
}

/* Creates schema_migrations unless it is there. */
static int ensure_table(struct db_conn *c, struct arena *a, struct err *e)
{
    struct db_rows rows;

    if (db_query(c, sql_table_exists, NULL, 0, a, &rows, e))
        return -1;
    if (rows.nrows == 1 && db_int(&rows, 0, 0) > 0)
        return 0;
    return db_exec_script(c, sql_create, e);
}

static int apply_missing(struct db_conn *c, struct arena *a, int *applied, struct err *e)
{
    struct db_rows rows;

    if (ensure_table(c, a, e) || db_query(c, sql_applied, NULL, 0, a, &rows, e))
        return -1;
    for (size_t i = 0; i < migrations_count; i++) {
        const struct migration *m = &migrations[i];
        int64_t version;
        if (version_of(m->name, &version))
            return err_set(e, ERR_INTERNAL, "migration '%s' has no version number", m->name);
        if (is_applied(&rows, version))
            continue;
        /* DDL commits implicitly in MariaDB: a file is recorded only after all of it ran. */
        if (db_exec_script(c, m->sql, e))
            return err_prefix(e, "migration '%s'", m->name);
        struct db_val params[] = {DB_INT(version), DB_STR(m->name), DB_TIME(clock_now_us())};
        if (db_exec(c, sql_record, params, 3, NULL, NULL, e))
            return -1;
        if (applied)
            (*applied)++;
    }
    return 0;
}

int migrate_run(struct db_pool *pool, int *applied, struct err *e)
{
    struct arena a = ARENA_INIT;
    struct db_conn *c = NULL;
    struct db_rows rows;
    int rc = -1;

    if (applied)
        *applied = 0;
    if (db_acquire(pool, &c, e))
        return -1;
    if (db_query(c, sql_lock, NULL, 0, &a, &rows, e))
        goto out;
    if (rows.nrows != 1 || db_int(&rows, 0, 0) != 1) {
        err_set(e, ERR_UNAVAILABLE, "timed out waiting for the migration lock");
        goto out;
    }
    rc = apply_missing(c, &a, applied, e);
    struct err ignored;
    db_query(c, sql_unlock, NULL, 0, &a, &rows, &ignored);
out:
    db_release(pool, c);
    arena_release(&a);
    return rc;
}
