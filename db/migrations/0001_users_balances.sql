-- Users, their prepaid balances, the balance history, and idempotency keys.
-- Money is BIGINT KRW. Times are DATETIME(6) in UTC (every session runs with time_zone +00:00).

CREATE TABLE users (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(100) NOT NULL,
    balance_krw BIGINT       NOT NULL DEFAULT 0,
    created_at  DATETIME(6)  NOT NULL,
    CONSTRAINT users_balance_range CHECK (balance_krw BETWEEN 0 AND 1000000000000)
) ENGINE = InnoDB;

-- Every change of a balance is one row here, written in the same transaction as the change,
-- so that balance_krw = SUM(amount_krw) for each user (checked by `shopd check`).
CREATE TABLE balance_history (
    id                BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id           BIGINT      NOT NULL,
    type              ENUM('CHARGE', 'PAYMENT', 'REFUND') NOT NULL,
    amount_krw        BIGINT      NOT NULL,
    balance_after_krw BIGINT      NOT NULL,
    order_id          BIGINT      NULL,
    created_at        DATETIME(6) NOT NULL,
    KEY balance_history_user (user_id, id),
    CONSTRAINT balance_history_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT balance_history_after CHECK (balance_after_krw BETWEEN 0 AND 1000000000000),
    CONSTRAINT balance_history_sign CHECK (
        (type = 'CHARGE'  AND amount_krw > 0 AND order_id IS NULL) OR
        (type = 'PAYMENT' AND amount_krw < 0 AND order_id IS NOT NULL) OR
        (type = 'REFUND'  AND amount_krw > 0 AND order_id IS NOT NULL))
) ENGINE = InnoDB;

-- One row per (user, method, concrete path, key), written in the transaction of the effect it
-- guards: the unique key makes a concurrent duplicate wait for that transaction, and then
-- find the stored response. Failed requests roll back and leave no row.
CREATE TABLE idempotency_keys (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id       BIGINT       NOT NULL,
    method        VARCHAR(8)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    path          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    idem_key      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    fingerprint   BINARY(32)   NOT NULL,
    status_code   SMALLINT     NOT NULL,
    response_body MEDIUMTEXT   NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    UNIQUE KEY idempotency_scope (user_id, method, path, idem_key),
    KEY idempotency_age (created_at)
) ENGINE = InnoDB;
