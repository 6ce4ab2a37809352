#ifndef SHOPD_REPO_CHECK_REPO_H
#define SHOPD_REPO_CHECK_REPO_H

#include <stddef.h>
#include <stdint.h>

/*
 * The invariants `shopd check` verifies, each as one query counting the rows that break it
 * (0 means it holds).
 */

struct db_conn;
struct err;

struct check_invariant {
    const char *name;
    const char *sql;
};

extern const struct check_invariant check_invariants[];
extern const size_t check_invariants_count;

/* Runs one invariant's query; *violations gets its count. */
int check_repo_count(struct db_conn *c, const struct check_invariant *inv, int64_t *violations,
                     struct err *e);

#endif
