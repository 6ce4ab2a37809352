#include "service/platform_svc.h"

#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "domain/order_event.h"
#include "redis/event_stream.h"
#include "repo/db.h"
#include "repo/platform_repo.h"
#include "service/svc.h"

#include "core/banned.h"

static enum event_outcome handle(struct svc *s, const struct stream_event *ev, struct arena *a,
                                 struct err *e)
{
    struct order_event oe;
    struct db_conn *c;
    bool duplicate = false;

    if (order_event_parse(ev->payload, strlen(ev->payload), a, &oe, e))
        return EVENT_FAILED;
    if (!ev->event_id[0] ||
        strcmp(ev->type, oe.cancelled ? ORDER_EVENT_CANCELLED : ORDER_EVENT_PAID) ||
        ev->order_id != oe.order_id) {
        err_set(e, ERR_INVALID_INPUT, "the entry's fields do not match its payload");
        return EVENT_FAILED;
    }
    if (db_acquire(s->db, &c, e))
        return EVENT_UNAVAILABLE;
    int64_t sign = oe.cancelled ? -1 : 1;
    if (db_begin(c, e) ||
        platform_repo_record(c, ev->event_id, ev->type, oe.order_id, ev->occurred_us,
                             clock_now_us(), &duplicate, e) ||
        (!duplicate && platform_repo_add_sales(c, oe.paid_us, sign, sign * oe.total_krw, e)) ||
        db_commit(c, e)) {
        enum err_code code = e->code;
        db_release(s->db, c);
        return code == ERR_UNAVAILABLE ? EVENT_UNAVAILABLE : EVENT_FAILED;
    }
    db_release(s->db, c);
    return duplicate ? EVENT_DUPLICATE : EVENT_DONE;
}

const struct event_group platform_group = {
    EVENT_GROUP_PLATFORM,
    handle,
    METRIC_EVENTS_PLATFORM_CONSUMED,
    METRIC_EVENTS_PLATFORM_DUPLICATES,
    METRIC_EVENTS_PLATFORM_REDELIVERED,
    METRIC_EVENTS_PLATFORM_FAILED,
    METRIC_EVENTS_PLATFORM_DEAD,
};
