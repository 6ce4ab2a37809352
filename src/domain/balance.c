#include "domain/balance.h"

#include <string.h>

#include "core/banned.h"

static const char *const names[] = {"CHARGE", "PAYMENT", "REFUND"};

const char *balance_entry_type_name(enum balance_entry_type t)
{
    return names[t];
}

int balance_entry_type_parse(const char *name, enum balance_entry_type *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(names[i], name)) {
            *out = (enum balance_entry_type)i;
            return 0;
        }
    return -1;
}
