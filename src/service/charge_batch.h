#ifndef SHOPD_SERVICE_CHARGE_BATCH_H
#define SHOPD_SERVICE_CHARGE_BATCH_H

#include <stdint.h>

/*
 * Group commit of charges (service/write_batch.h): a batch of charges in shopd_charge_batch
 * (migrations 0011, 0013), in ascending user id, then shopd_respond_batch_commit. Each charge
 * is the single charge's conditional UPDATE, unique key and history row, all in MariaDB.
 */

struct arena;
struct err;
struct idem_request;
struct idem_response;
struct svc;
struct write_batcher;

struct write_batcher *charge_batcher_new(struct svc *s);

/* One charge through the next batch, as write_batcher_run. */
int charge_batcher_run(struct write_batcher *b, const struct idem_request *r, int64_t user_id,
                       int64_t amount_krw, struct arena *a, struct idem_response *out,
                       struct err *e);

#endif
