#ifndef SHOPD_REPO_MIGRATE_H
#define SHOPD_REPO_MIGRATE_H

#include <stddef.h>

/*
 * Schema migrations: the files of db/migrations/, compiled into the binary in file-name order
 * (see cmake/embed_migrations.cmake). migrate_run() applies the ones not yet recorded in
 * schema_migrations, under the MariaDB named lock "shopd.migrate", so that several instances
 * starting together apply each file exactly once.
 */

struct db_pool;
struct err;

struct migration {
    const char *name; /* "0001_users_balances.sql"; the version is its number */
    const char *sql;
};

extern const struct migration migrations[];
extern const size_t migrations_count;

/* Applies what is missing; *applied (may be NULL) receives how many files were applied. */
int migrate_run(struct db_pool *pool, int *applied, struct err *e);

#endif
