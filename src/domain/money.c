#include "domain/money.h"

#include "core/banned.h"

bool money_balance_after(int64_t balance_krw, int64_t amount_krw, int64_t *after_krw)
{
    int64_t sum;

    if (__builtin_add_overflow(balance_krw, amount_krw, &sum))
        return false;
    if (sum < 0 || sum > MONEY_BALANCE_MAX_KRW)
        return false;
    *after_krw = sum;
    return true;
}
