#include "core/round_trips.h"

#include <stddef.h>
#include <string.h>

#include "core/array.h"

#include "core/banned.h"

static _Thread_local struct round_trips tally;

void round_trip_note(enum round_trip_kind kind)
{
    tally.n[kind]++;
}

void round_trips_take(struct round_trips *out)
{
    if (out)
        *out = tally;
    memset(&tally, 0, sizeof(tally));
}

void round_trips_take_more(struct round_trips *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(out->n); i++)
        out->n[i] += tally.n[i];
    memset(&tally, 0, sizeof(tally));
}
