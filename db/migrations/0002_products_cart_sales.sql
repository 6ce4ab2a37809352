-- The catalog, carts, and the daily sales roll-up that top products reads.

CREATE TABLE products (
    id          BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(100)  NOT NULL,
    description VARCHAR(1000) NOT NULL DEFAULT '',
    price_krw   BIGINT        NOT NULL,
    stock       BIGINT        NOT NULL,
    created_at  DATETIME(6)   NOT NULL,
    updated_at  DATETIME(6)   NOT NULL,
    CONSTRAINT products_price_range CHECK (price_krw BETWEEN 0 AND 1000000000),
    -- Stock never goes below zero: a conditional decrement that would break this fails.
    CONSTRAINT products_stock_range CHECK (stock BETWEEN 0 AND 1000000000)
) ENGINE = InnoDB;

CREATE TABLE cart_items (
    user_id    BIGINT      NOT NULL,
    product_id BIGINT      NOT NULL,
    quantity   INT         NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id, product_id),
    CONSTRAINT cart_items_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT cart_items_product_fk FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT cart_items_quantity CHECK (quantity BETWEEN 1 AND 1000)
) ENGINE = InnoDB;

-- Quantity and revenue of PAID orders per product and UTC day. A payment adds to it in its own
-- transaction; a cancel after payment subtracts.
CREATE TABLE product_sales_daily (
    day         DATE   NOT NULL,
    product_id  BIGINT NOT NULL,
    quantity    BIGINT NOT NULL,
    revenue_krw BIGINT NOT NULL,
    PRIMARY KEY (day, product_id),
    KEY product_sales_daily_product (product_id, day),
    CONSTRAINT product_sales_daily_product_fk FOREIGN KEY (product_id) REFERENCES products (id),
    CONSTRAINT product_sales_daily_nonnegative CHECK (quantity >= 0 AND revenue_krw >= 0)
) ENGINE = InnoDB;
