-- The outbox relay's bookkeeping and the data platform's own tables (issue 6).

-- The Redis time (ms) of the stream entry a row was last published as, at most: a row whose
-- entry may not yet have been read by every consumer group is re-published if Redis loses the
-- stream (see outbox_relay).
ALTER TABLE outbox
    ADD COLUMN stream_ms BIGINT NULL,
    ADD KEY outbox_stream (stream_ms);

-- Rebuilding a day's ranking reads the orders paid that day.
ALTER TABLE orders ADD KEY orders_paid (paid_at);

-- One row: the stream epoch the relays publish into (a random token also stored in Redis; a
-- Redis that lost its data has none, and the relays notice) and the stream time below which
-- every entry has been acknowledged by every consumer group.
CREATE TABLE outbox_relay (
    id         TINYINT     NOT NULL PRIMARY KEY,
    epoch      VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    safe_ms    BIGINT      NOT NULL,
    changed_at DATETIME(6) NOT NULL,
    CONSTRAINT outbox_relay_one_row CHECK (id = 1)
) ENGINE = InnoDB;
INSERT INTO outbox_relay (id, epoch, safe_ms, changed_at) VALUES (1, '', 0, UTC_TIMESTAMP(6));

-- The data platform (`shopd platform`) stands in for an external system: it records each event
-- it received, keyed by event id, in the transaction of its effect, so a redelivery is a no-op.
CREATE TABLE platform_events (
    event_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    event_type  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    order_id    BIGINT      NOT NULL,
    occurred_at DATETIME(6) NOT NULL,
    received_at DATETIME(6) NOT NULL,
    KEY platform_events_received (received_at)
) ENGINE = InnoDB;

-- The platform's effect: paid orders and revenue per UTC day of payment.
CREATE TABLE platform_daily_sales (
    day         DATE   NOT NULL PRIMARY KEY,
    paid_orders BIGINT NOT NULL,
    revenue_krw BIGINT NOT NULL
) ENGINE = InnoDB;
