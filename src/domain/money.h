#ifndef SHOPD_DOMAIN_MONEY_H
#define SHOPD_DOMAIN_MONEY_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Money rules of the contract. Amounts are whole KRW in int64_t; no fractions anywhere.
 * Pure functions: no I/O, thread-safe.
 */

#define MONEY_CHARGE_MIN_KRW  1LL
#define MONEY_CHARGE_MAX_KRW  10000000LL
#define MONEY_BALANCE_MAX_KRW 1000000000000LL

/* True when balance + amount stays within 0 … MONEY_BALANCE_MAX_KRW; *after gets the sum. */
bool money_balance_after(int64_t balance_krw, int64_t amount_krw, int64_t *after_krw);

#endif
