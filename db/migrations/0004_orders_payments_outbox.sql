-- Orders with reserved stock, payments, and the transactional outbox for the data platform.

-- Stock bookkeeping: stock (orderable) + reserved (in PENDING orders) + sold (in PAID orders)
-- = stock_added (everything an admin ever put in), for every product (`shopd check`).
ALTER TABLE products
    ADD COLUMN reserved    BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sold        BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN stock_added BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT products_reserved_nonnegative CHECK (reserved >= 0),
    ADD CONSTRAINT products_sold_nonnegative CHECK (sold >= 0);
UPDATE products SET stock_added = stock;

CREATE TABLE orders (
    id             BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id        BIGINT      NOT NULL,
    status         ENUM('PENDING', 'PAID', 'CANCELLED', 'EXPIRED') NOT NULL,
    subtotal_krw   BIGINT      NOT NULL,
    discount_krw   BIGINT      NOT NULL,
    total_krw      BIGINT      NOT NULL,
    coupon_id      BIGINT      NULL,
    user_coupon_id BIGINT      NULL,
    created_at     DATETIME(6) NOT NULL,
    expires_at     DATETIME(6) NOT NULL,
    paid_at        DATETIME(6) NULL,
    closed_at      DATETIME(6) NULL,
    fence          BIGINT      NOT NULL DEFAULT 0,
    KEY orders_user (user_id, id),
    KEY orders_expiry (status, expires_at),
    CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT orders_amounts CHECK (subtotal_krw >= 0 AND discount_krw BETWEEN 0 AND subtotal_krw
                                     AND total_krw = subtotal_krw - discount_krw),
    CONSTRAINT orders_pending CHECK (status <> 'PENDING' OR (paid_at IS NULL AND closed_at IS NULL)),
    CONSTRAINT orders_paid CHECK (status <> 'PAID' OR paid_at IS NOT NULL)
) ENGINE = InnoDB;

CREATE TABLE order_items (
    order_id       BIGINT       NOT NULL,
    product_id     BIGINT       NOT NULL,
    product_name   VARCHAR(100) NOT NULL,
    quantity       BIGINT       NOT NULL,
    unit_price_krw BIGINT       NOT NULL,
    subtotal_krw   BIGINT       NOT NULL,
    PRIMARY KEY (order_id, product_id),
    KEY order_items_product (product_id),
    CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT order_items_product_fk FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT order_items_quantity CHECK (quantity BETWEEN 1 AND 1000),
    CONSTRAINT order_items_subtotal CHECK (subtotal_krw = unit_price_krw * quantity)
) ENGINE = InnoDB;

-- One payment per order, whatever the concurrency: the unique key is the judge.
CREATE TABLE payments (
    id         BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id   BIGINT      NOT NULL,
    user_id    BIGINT      NOT NULL,
    amount_krw BIGINT      NOT NULL,
    status     ENUM('PAID', 'REFUNDED') NOT NULL,
    paid_at    DATETIME(6) NOT NULL,
    UNIQUE KEY payments_once (order_id),
    CONSTRAINT payments_order_fk FOREIGN KEY (order_id) REFERENCES orders (id),
    CONSTRAINT payments_amount CHECK (amount_krw >= 0)
) ENGINE = InnoDB;

-- Events for the data platform, written in the transaction of what they report. event_id is
-- deterministic ("order-<id>-paid"), so an event can exist at most once.
CREATE TABLE outbox (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    event_type   VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    aggregate_id BIGINT       NOT NULL,
    payload      MEDIUMTEXT   NOT NULL,
    created_at   DATETIME(6)  NOT NULL,
    published_at DATETIME(6)  NULL,
    UNIQUE KEY outbox_event (event_id),
    KEY outbox_unpublished (published_at, id)
) ENGINE = InnoDB;
