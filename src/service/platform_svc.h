#ifndef SHOPD_SERVICE_PLATFORM_SVC_H
#define SHOPD_SERVICE_PLATFORM_SVC_H

#include "service/event_consumer.h"

/*
 * The data platform that `shopd platform` runs, standing in for the external system the paid
 * orders are reported to: the "platform" consumer group. Each event is recorded by its id in
 * the transaction of its effect (the day's paid orders and revenue), so a redelivery changes
 * nothing; the consumer acknowledges only after the commit.
 */

extern const struct event_group platform_group;

#endif
