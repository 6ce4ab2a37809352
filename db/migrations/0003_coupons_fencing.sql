-- First-come-first-served coupons, and the fencing tokens of the rows that distributed locks
-- protect: a write under a lock is conditional on "fence <= its token" and records the token,
-- so a holder whose lease ran out while it was paused cannot overwrite a newer holder's work.

ALTER TABLE users ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;

CREATE TABLE coupons (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name            VARCHAR(100) NOT NULL,
    discount_type   ENUM('RATE', 'FIXED') NOT NULL,
    discount_value  BIGINT       NOT NULL,
    total_quantity  BIGINT       NOT NULL,
    issued_quantity BIGINT       NOT NULL DEFAULT 0,
    starts_at       DATETIME(6)  NOT NULL,
    ends_at         DATETIME(6)  NULL,
    fence           BIGINT       NOT NULL DEFAULT 0,
    created_at      DATETIME(6)  NOT NULL,
    -- Never more issued than the quantity: the issuing UPDATE is conditional on it, and this
    -- makes any other path fail too.
    CONSTRAINT coupons_issued_range CHECK (issued_quantity BETWEEN 0 AND total_quantity),
    CONSTRAINT coupons_quantity CHECK (total_quantity BETWEEN 1 AND 1000000000),
    CONSTRAINT coupons_value CHECK (
        (discount_type = 'RATE' AND discount_value BETWEEN 1 AND 100) OR
        (discount_type = 'FIXED' AND discount_value BETWEEN 1 AND 1000000000)),
    CONSTRAINT coupons_window CHECK (ends_at IS NULL OR ends_at > starts_at)
) ENGINE = InnoDB;

-- At most one coupon of a kind per user: the unique key is the judge.
CREATE TABLE user_coupons (
    id         BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    coupon_id  BIGINT      NOT NULL,
    user_id    BIGINT      NOT NULL,
    status     ENUM('AVAILABLE', 'USED') NOT NULL DEFAULT 'AVAILABLE',
    issued_at  DATETIME(6) NOT NULL,
    used_at    DATETIME(6) NULL,
    order_id   BIGINT      NULL,
    UNIQUE KEY user_coupons_once (coupon_id, user_id),
    KEY user_coupons_user (user_id, id),
    CONSTRAINT user_coupons_coupon_fk FOREIGN KEY (coupon_id) REFERENCES coupons (id),
    CONSTRAINT user_coupons_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT user_coupons_used CHECK ((status = 'USED') = (used_at IS NOT NULL))
) ENGINE = InnoDB;
