#ifndef SHOPD_SERVICE_SVC_H
#define SHOPD_SERVICE_SVC_H

/*
 * What every service function works with: the configuration and the connection pools, built
 * once in main.c and shared read-only by all threads.
 */

struct config;
struct db_pool;
struct redis_pool;

struct svc {
    const struct config *cfg;
    struct db_pool *db;
    struct redis_pool *redis;
};

#endif
