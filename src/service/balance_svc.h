#ifndef SHOPD_SERVICE_BALANCE_SVC_H
#define SHOPD_SERVICE_BALANCE_SVC_H

#include <stddef.h>
#include <stdint.h>

#include "service/idem_svc.h"

/*
 * Users and their prepaid balances (API.md "Users and balances"). Each function checks out its
 * own connection and owns its transaction. Thread-safe. Errors: ERR_USER_NOT_FOUND,
 * ERR_INVALID_AMOUNT, ERR_BALANCE_LIMIT, and ERR_UNAVAILABLE / ERR_INTERNAL from the database.
 */

struct arena;
struct balance_entry;
struct err;
struct svc;
struct user;

int user_svc_create(struct svc *s, const char *name, struct arena *a, struct user *out,
                    struct err *e);

int balance_svc_get(struct svc *s, int64_t user_id, struct arena *a, struct user *out,
                    struct err *e);

/*
 * Charges amount_krw to the user's balance once per idempotency key: one transaction holds the
 * key row, the conditional balance update and the CHARGE history entry (a struct charge_result,
 * rendered into the response stored with the key). A refusal
 * (ERR_BALANCE_LIMIT, ERR_USER_NOT_FOUND) is stored with the key too and replayed, and a wait
 * for the user's lock that runs out behind this very key is ERR_IDEMPOTENCY_IN_FLIGHT, behind
 * other work ERR_UNAVAILABLE (service/idem_svc.h).
 */
int balance_svc_charge(struct svc *s, const struct idem_request *idem, int64_t user_id,
                       int64_t amount_krw, struct arena *a, struct idem_response *out,
                       struct err *e);

/* A page of history, newest first: entries older than before_id (0: the newest), at most
 * limit; *more says whether older entries remain. */
int balance_svc_history(struct svc *s, int64_t user_id, int64_t before_id, int limit,
                        struct arena *a, struct balance_entry **entries, size_t *count, int *more,
                        struct err *e);

#endif
