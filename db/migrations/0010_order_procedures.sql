-- Orders, payments, cancels and expiry in a few round trips (issue 13), the way 0009 did the
-- charge: the statements shopd used to send one by one, with no decision of shopd's between
-- them, run inside MariaDB. The invariants are the same statements as before: the conditional
-- stock movements, the balance's conditional UPDATE, the fenced status transition, the unique
-- keys and the CHECK constraints. What stays in shopd is what is domain logic (the coupon's
-- discount, the rendering of responses and events) and the decision to commit.
--
-- Every procedure that holds several products touches them in ascending product id, the lock
-- order of every write here, so that two orders never wait on each other in a cycle.
--
-- The procedures that open a transaction share shopd_charge_begin's outcomes for the key:
--   duplicate    the key was committed by another request (rolled back: shopd replays it);
--   claim_wait   a lock wait timed out on the claim: a request with this key is in flight;
--   effect_wait  one timed out on the effect's rows: other work held them;
--   deadlock     chosen as a deadlock's victim (rolled back: worth another try);
-- every other outcome but the success is a refusal, rolled back.

-- What is left of the session's lock wait once the claim used some (at least 1 s), so that a
-- call stays within shopd's read time-out of the lock wait + 2 s, as one statement would.
CREATE OR REPLACE FUNCTION shopd_wait_left(p_wait BIGINT, p_started DATETIME(6)) RETURNS BIGINT
    NOT DETERMINISTIC NO SQL
    RETURN GREATEST(1, p_wait - CEIL(TIMESTAMPDIFF(MICROSECOND, p_started, SYSDATE(6)) / 1000000));

-- The key's claim, the first statement of every keyed write's transaction: its row with no
-- response yet, unique per user, method, path and key. A duplicate waits here, on the key
-- alone; its 1062 or 1205 goes to the caller's handler.
CREATE OR REPLACE PROCEDURE shopd_claim_key(
    IN p_user BIGINT,
    IN p_method VARCHAR(8) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_path VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_fingerprint BINARY(32), IN p_now DATETIME(6), OUT p_key_id BIGINT)
BEGIN
    INSERT INTO idempotency_keys (user_id, method, path, idem_key, fingerprint, status_code,
                                  response_body, created_at)
        VALUES (p_user, p_method, p_path, p_key, p_fingerprint, 0, '', p_now);
    SET p_key_id = LAST_INSERT_ID();
END;

-- Moves the units of one order's lines, product by product in ascending id:
--   release  reserved back to stock (a pending order cancelled or expired);
--   sell     reserved to sold, added to the sales roll-up of p_day (paid);
--   restock  sold back to stock, taken from the roll-up of p_day, the day it was paid on.
-- Each UPDATE is conditional on what it takes from, as product_repo's were: one that matches
-- nothing means the order disagrees with the product, an error (SQLSTATE 45000).
CREATE OR REPLACE PROCEDURE shopd_order_lines_move(IN p_order BIGINT, IN p_kind VARCHAR(8),
                                                   IN p_day DATE)
BEGIN
    DECLARE v_done BOOL DEFAULT FALSE;
    DECLARE v_product BIGINT;
    DECLARE v_quantity BIGINT;
    DECLARE v_subtotal BIGINT;
    DECLARE v_lines CURSOR FOR
        SELECT product_id, quantity, subtotal_krw FROM order_items WHERE order_id = p_order
            ORDER BY product_id;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;

    OPEN v_lines;
    each_line: LOOP
        FETCH v_lines INTO v_product, v_quantity, v_subtotal;
        IF v_done THEN
            LEAVE each_line;
        END IF;
        CASE p_kind
        WHEN 'release' THEN
            UPDATE products SET stock = stock + v_quantity, reserved = reserved - v_quantity
                WHERE id = v_product AND reserved >= v_quantity;
        WHEN 'sell' THEN
            UPDATE products SET sold = sold + v_quantity, reserved = reserved - v_quantity
                WHERE id = v_product AND reserved >= v_quantity;
        WHEN 'restock' THEN
            UPDATE products SET stock = stock + v_quantity, sold = sold - v_quantity
                WHERE id = v_product AND sold >= v_quantity;
        END CASE;
        IF ROW_COUNT() = 0 THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'an order line disagrees with its product';
        END IF;
        IF p_kind = 'sell' THEN
            INSERT INTO product_sales_daily (day, product_id, quantity, revenue_krw)
                VALUES (p_day, v_product, v_quantity, v_subtotal)
                ON DUPLICATE KEY UPDATE quantity = quantity + VALUES(quantity),
                                        revenue_krw = revenue_krw + VALUES(revenue_krw);
        ELSEIF p_kind = 'restock' THEN
            UPDATE product_sales_daily
                SET quantity = quantity - v_quantity, revenue_krw = revenue_krw - v_subtotal
                WHERE day = p_day AND product_id = v_product;
            IF ROW_COUNT() = 0 THEN
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no sales to correct that day';
            END IF;
        END IF;
    END LOOP;
    CLOSE v_lines;
END;

-- An order's start: begin, the key's claim, every line's stock reserved (p_lines is a JSON
-- array of [productId, quantity], ids unique), the coupon locked, the user checked. Two
-- results: (outcome, key_id, product_id, stock, user_coupon_id, discount_type,
-- discount_value), then, when reserved, the lines' (id, name, price_krw) in ascending id.
-- Outcomes besides the shared ones:
--   reserved           the transaction is left OPEN: shopd prices the order, applies the
--                      coupon and calls shopd_order_place;
--   no_product         product_id does not exist;
--   out_of_stock       product_id has only stock left;
--   coupon_not_usable  p_coupon (0: none) is not the user's, used, or expired;
--   no_user            no such user.
CREATE OR REPLACE PROCEDURE shopd_order_reserve(
    IN p_user BIGINT,
    IN p_method VARCHAR(8) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_path VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_fingerprint BINARY(32), IN p_now DATETIME(6), IN p_lines TEXT, IN p_coupon BIGINT)
BEGIN
    DECLARE v_stage VARCHAR(12) DEFAULT 'claim_wait';
    DECLARE v_wait BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
    DECLARE v_started DATETIME(6) DEFAULT SYSDATE(6);
    DECLARE v_outcome VARCHAR(20) DEFAULT 'reserved';
    DECLARE v_key_id BIGINT DEFAULT 0;
    DECLARE v_done BOOL DEFAULT FALSE;
    DECLARE v_product BIGINT DEFAULT 0;
    DECLARE v_quantity BIGINT;
    DECLARE v_stock BIGINT DEFAULT NULL;
    DECLARE v_user_coupon BIGINT DEFAULT NULL;
    DECLARE v_type VARCHAR(8) DEFAULT '';
    DECLARE v_value BIGINT DEFAULT 0;
    DECLARE v_user BIGINT DEFAULT NULL;
    DECLARE v_errno INT;
    DECLARE v_lines CURSOR FOR
        SELECT j.product_id, j.quantity
            FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (product_id BIGINT PATH '$[0]',
                                                     quantity BIGINT PATH '$[1]')) AS j
            ORDER BY j.product_id;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR 1062, 1205, 1213
    BEGIN
        GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
        ROLLBACK;
        SET SESSION innodb_lock_wait_timeout = v_wait;
        SELECT CASE v_errno WHEN 1062 THEN 'duplicate' WHEN 1213 THEN 'deadlock' ELSE v_stage END
                   AS outcome, 0, 0, 0, 0, '', 0;
    END;

    START TRANSACTION;
    CALL shopd_claim_key(p_user, p_method, p_path, p_key, p_fingerprint, p_now, v_key_id);
    SET v_stage = 'effect_wait';
    SET SESSION innodb_lock_wait_timeout = shopd_wait_left(v_wait, v_started);
    OPEN v_lines;
    each_line: LOOP
        FETCH v_lines INTO v_product, v_quantity;
        IF v_done THEN
            LEAVE each_line;
        END IF;
        UPDATE products SET stock = stock - v_quantity, reserved = reserved + v_quantity
            WHERE id = v_product AND stock >= v_quantity;
        IF ROW_COUNT() = 0 THEN
            SELECT stock INTO v_stock FROM products WHERE id = v_product;
            SET v_outcome = IF(v_stock IS NULL, 'no_product', 'out_of_stock');
            LEAVE each_line;
        END IF;
    END LOOP;
    CLOSE v_lines;
    IF v_outcome = 'reserved' AND p_coupon <> 0 THEN
        SELECT uc.id, c.discount_type, c.discount_value INTO v_user_coupon, v_type, v_value
            FROM user_coupons uc JOIN coupons c ON c.id = uc.coupon_id
            WHERE uc.user_id = p_user AND uc.coupon_id = p_coupon AND uc.status = 'AVAILABLE'
              AND (c.ends_at IS NULL OR c.ends_at > p_now)
            FOR UPDATE;
        IF v_user_coupon IS NULL THEN
            SET v_outcome = 'coupon_not_usable';
        END IF;
    END IF;
    IF v_outcome = 'reserved' THEN
        SELECT id INTO v_user FROM users WHERE id = p_user;
        IF v_user IS NULL THEN
            SET v_outcome = 'no_user';
        END IF;
    END IF;
    SET SESSION innodb_lock_wait_timeout = v_wait;
    IF v_outcome <> 'reserved' THEN
        ROLLBACK;
        SELECT v_outcome AS outcome, 0, v_product, IFNULL(v_stock, 0), 0, '', 0;
    ELSE
        SELECT v_outcome AS outcome, v_key_id, 0, 0, IFNULL(v_user_coupon, 0), v_type, v_value;
        SELECT p.id, p.name, p.price_krw
            FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (product_id BIGINT PATH '$[0]')) AS j
            JOIN products p ON p.id = j.product_id
            ORDER BY p.id;
    END IF;
END;

-- The order itself, inside the transaction shopd_order_reserve left open: the order row with
-- the amounts shopd computed (CHECK orders_amounts holds them together), its lines priced
-- from the product rows that transaction holds, the coupon marked used. Answers (order_id);
-- the transaction stays open for the response (shopd_respond_commit).
CREATE OR REPLACE PROCEDURE shopd_order_place(
    IN p_user BIGINT, IN p_subtotal BIGINT, IN p_discount BIGINT, IN p_total BIGINT,
    IN p_coupon BIGINT, IN p_user_coupon BIGINT, IN p_now DATETIME(6), IN p_expires DATETIME(6),
    IN p_lines TEXT)
BEGIN
    DECLARE v_order BIGINT;

    INSERT INTO orders (user_id, status, subtotal_krw, discount_krw, total_krw, coupon_id,
                        user_coupon_id, created_at, expires_at)
        VALUES (p_user, 'PENDING', p_subtotal, p_discount, p_total, NULLIF(p_coupon, 0),
                NULLIF(p_user_coupon, 0), p_now, p_expires);
    SET v_order = LAST_INSERT_ID();
    INSERT INTO order_items (order_id, product_id, product_name, quantity, unit_price_krw,
                             subtotal_krw)
        SELECT v_order, p.id, p.name, j.quantity, p.price_krw, p.price_krw * j.quantity
            FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (product_id BIGINT PATH '$[0]',
                                                     quantity BIGINT PATH '$[1]')) AS j
            JOIN products p ON p.id = j.product_id
            ORDER BY p.id;
    IF p_user_coupon <> 0 THEN
        UPDATE user_coupons SET status = 'USED', used_at = p_now, order_id = v_order
            WHERE id = p_user_coupon AND status = 'AVAILABLE';
        IF ROW_COUNT() = 0 THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the locked coupon is no longer available';
        END IF;
    END IF;
    SELECT v_order AS order_id;
END;

-- A payment or a cancel up to its response: begin, the key's claim, the caller's order locked
-- and moved from its state, which must be one of p_from (the domain's state machine, as
-- shopd passes it: 'PENDING' for a payment, 'PENDING,PAID' for a cancel), fenced by p_fence
-- as order_repo's transition was (0 is unguarded), and what that move does:
--   pay     the balance lowered by the total (never below 0) with its history row, the
--           payment row, the lines sold and added to the day's sales;
--   cancel  a PENDING order's lines released; a PAID one's total refunded with its history
--           row, its payment marked refunded, its lines restocked and taken from the sales of
--           the day it was paid; either way its coupon made available again.
-- Results: (outcome, key_id, balance_krw, payment_id, status, total_krw), then, when done,
-- the order's row (as order_repo reads it, after the move) and its lines. Outcomes besides the
-- shared ones:
--   done            the transaction is left OPEN (status: the state the order was in);
--   no_order        no such order, or not p_user's;
--   wrong_state     the order's status is not in p_from (status: which it is);
--   expired         a payment past the order's time limit;
--   fenced          the order's fence is newer than p_fence: a newer lock holder;
--   insufficient    the balance (balance_krw) is less than the total.
CREATE OR REPLACE PROCEDURE shopd_order_settle(
    IN p_kind VARCHAR(8), IN p_from VARCHAR(64),
    IN p_user BIGINT,
    IN p_method VARCHAR(8) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_path VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_fingerprint BINARY(32), IN p_now DATETIME(6), IN p_order BIGINT, IN p_fence BIGINT)
BEGIN
    DECLARE v_stage VARCHAR(12) DEFAULT 'claim_wait';
    DECLARE v_wait BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
    DECLARE v_started DATETIME(6) DEFAULT SYSDATE(6);
    DECLARE v_outcome VARCHAR(20) DEFAULT 'done';
    DECLARE v_key_id BIGINT DEFAULT 0;
    DECLARE v_owner BIGINT DEFAULT NULL;
    DECLARE v_status VARCHAR(12) DEFAULT '';
    DECLARE v_total BIGINT;
    DECLARE v_expires DATETIME(6);
    DECLARE v_paid DATETIME(6);
    DECLARE v_balance BIGINT DEFAULT 0;
    DECLARE v_payment BIGINT DEFAULT 0;
    DECLARE v_errno INT;
    DECLARE EXIT HANDLER FOR 1062, 1205, 1213
    BEGIN
        GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
        ROLLBACK;
        SET SESSION innodb_lock_wait_timeout = v_wait;
        SELECT CASE v_errno WHEN 1062 THEN 'duplicate' WHEN 1213 THEN 'deadlock' ELSE v_stage END
                   AS outcome, 0, 0, 0, '', 0;
    END;

    START TRANSACTION;
    CALL shopd_claim_key(p_user, p_method, p_path, p_key, p_fingerprint, p_now, v_key_id);
    SET v_stage = 'effect_wait';
    SET SESSION innodb_lock_wait_timeout = shopd_wait_left(v_wait, v_started);
    move: BEGIN
        SELECT user_id, status, total_krw, expires_at, paid_at
            INTO v_owner, v_status, v_total, v_expires, v_paid
            FROM orders WHERE id = p_order FOR UPDATE;
        IF v_owner IS NULL OR v_owner <> p_user THEN
            SET v_outcome = 'no_order';
            LEAVE move;
        END IF;
        IF FIND_IN_SET(v_status, p_from) = 0 THEN
            SET v_outcome = 'wrong_state';
            LEAVE move;
        END IF;
        IF p_kind = 'pay' AND p_now >= v_expires THEN
            SET v_outcome = 'expired';
            LEAVE move;
        END IF;
        UPDATE orders
            SET status = IF(p_kind = 'pay', 'PAID', 'CANCELLED'),
                paid_at = IF(p_kind = 'pay', p_now, paid_at),
                closed_at = IF(p_kind = 'cancel', p_now, closed_at),
                fence = GREATEST(fence, p_fence)
            WHERE id = p_order AND status = v_status
              AND fence <= IF(p_fence = 0, 9223372036854775807, p_fence);
        IF ROW_COUNT() = 0 THEN
            SET v_outcome = 'fenced';
            LEAVE move;
        END IF;
        IF p_kind = 'pay' THEN
            IF v_total > 0 THEN
                UPDATE users SET balance_krw = LAST_INSERT_ID(balance_krw - v_total)
                    WHERE id = p_user AND balance_krw >= v_total;
                IF ROW_COUNT() = 0 THEN
                    SELECT balance_krw INTO v_balance FROM users WHERE id = p_user;
                    SET v_outcome = 'insufficient';
                    LEAVE move;
                END IF;
                SET v_balance = LAST_INSERT_ID();
                INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw,
                                             order_id, created_at)
                    VALUES (p_user, 'PAYMENT', -v_total, v_balance, p_order, p_now);
            ELSE
                SELECT balance_krw INTO v_balance FROM users WHERE id = p_user;
            END IF;
            INSERT INTO payments (order_id, user_id, amount_krw, status, paid_at)
                VALUES (p_order, p_user, v_total, 'PAID', p_now);
            SET v_payment = LAST_INSERT_ID();
            CALL shopd_order_lines_move(p_order, 'sell', DATE(p_now));
        ELSEIF v_status = 'PENDING' THEN
            CALL shopd_order_lines_move(p_order, 'release', NULL);
        ELSE
            -- "A refund is always applied, cap or not" (API.md): no upper bound here.
            IF v_total > 0 THEN
                UPDATE users SET balance_krw = LAST_INSERT_ID(balance_krw + v_total)
                    WHERE id = p_user;
                IF ROW_COUNT() = 0 THEN
                    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a paid order without its user';
                END IF;
                SET v_balance = LAST_INSERT_ID();
                INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw,
                                             order_id, created_at)
                    VALUES (p_user, 'REFUND', v_total, v_balance, p_order, p_now);
            END IF;
            UPDATE payments SET status = 'REFUNDED' WHERE order_id = p_order AND status = 'PAID';
            CALL shopd_order_lines_move(p_order, 'restock', DATE(v_paid));
        END IF;
        IF p_kind = 'cancel' THEN
            UPDATE user_coupons SET status = 'AVAILABLE', used_at = NULL, order_id = NULL
                WHERE order_id = p_order;
        END IF;
    END move;
    SET SESSION innodb_lock_wait_timeout = v_wait;
    IF v_outcome <> 'done' THEN
        ROLLBACK;
        SELECT v_outcome AS outcome, 0, v_balance, 0, v_status, IFNULL(v_total, 0);
    ELSE
        SELECT v_outcome AS outcome, v_key_id, v_balance, v_payment, v_status, v_total;
        SELECT id, user_id, status, subtotal_krw, discount_krw, total_krw, coupon_id,
               user_coupon_id, created_at, expires_at, paid_at
            FROM orders WHERE id = p_order;
        SELECT product_id, product_name, quantity, unit_price_krw, subtotal_krw
            FROM order_items WHERE order_id = p_order ORDER BY product_id;
    END IF;
END;

-- The end of a keyed write that publishes an event: the event into the outbox, the key's
-- response stored, and the commit, in one round trip (shopd_respond_commit plus the event).
CREATE OR REPLACE PROCEDURE shopd_respond_commit_event(
    IN p_key_id BIGINT, IN p_status SMALLINT, IN p_body MEDIUMTEXT,
    IN p_event_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_event_type VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_aggregate BIGINT, IN p_payload MEDIUMTEXT, IN p_now DATETIME(6))
BEGIN
    INSERT INTO outbox (event_id, event_type, aggregate_id, payload, created_at)
        VALUES (p_event_id, p_event_type, p_aggregate, p_payload, p_now);
    UPDATE idempotency_keys SET status_code = p_status, response_body = p_body
        WHERE id = p_key_id;
    COMMIT;
END;

-- One sweep of expired orders, in one transaction: up to p_limit PENDING orders past their
-- time, skipping those another sweeper or a payment holds, each moved to EXPIRED with its
-- stock released and its coupon made available again; committed. Results: (expired), then the
-- ids of the products whose stock moved, for shopd to invalidate their cache entries.
CREATE OR REPLACE PROCEDURE shopd_expire_due(IN p_now DATETIME(6), IN p_limit INT)
BEGIN
    DECLARE v_done BOOL DEFAULT FALSE;
    DECLARE v_order BIGINT;
    DECLARE v_count INT DEFAULT 0;
    DECLARE v_orders TEXT DEFAULT '[]';
    DECLARE v_due CURSOR FOR
        SELECT id FROM orders WHERE status = 'PENDING' AND expires_at < p_now
            ORDER BY expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        ROLLBACK;
        RESIGNAL;
    END;

    START TRANSACTION;
    OPEN v_due;
    each_order: LOOP
        FETCH v_due INTO v_order;
        IF v_done THEN
            LEAVE each_order;
        END IF;
        UPDATE orders SET status = 'EXPIRED', closed_at = p_now
            WHERE id = v_order AND status = 'PENDING';
        CALL shopd_order_lines_move(v_order, 'release', NULL);
        UPDATE user_coupons SET status = 'AVAILABLE', used_at = NULL, order_id = NULL
            WHERE order_id = v_order;
        SET v_orders = JSON_ARRAY_APPEND(v_orders, '$', v_order);
        SET v_count = v_count + 1;
    END LOOP;
    CLOSE v_due;
    COMMIT;
    SELECT v_count AS expired;
    SELECT DISTINCT i.product_id
        FROM JSON_TABLE(v_orders, '$[*]' COLUMNS (order_id BIGINT PATH '$')) AS j
        JOIN order_items i ON i.order_id = j.order_id
        ORDER BY i.product_id;
END;
