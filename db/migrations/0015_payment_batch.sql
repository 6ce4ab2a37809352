-- Group commit of payments (issue 13), as 0011 and 0013 did for charges: the payments that
-- arrive while a batch is written go into MariaDB together, in one transaction of two calls,
-- instead of one transaction and two calls each. A payment's statements are those of
-- shopd_order_settle('pay', ...) (0010) one by one; what a batch shares is the commit, the
-- round trips and the result sets.
--
--   shopd_pay_batch              begin, then per payment in the order given (shopd sorts them
--                                by user id, the lock order of balances): a savepoint, the
--                                key's claim, the order locked and checked, its status PAID,
--                                the balance's conditional UPDATE, the history and payment
--                                rows, the lines sold. Leaves the transaction open when one
--                                was paid; shopd renders each response and event, then
--   shopd_respond_events_batch_commit   the events into the outbox, the responses stored
--                                with their keys, COMMIT.
--
-- No statement of a batch waits on a lock (the session's lock wait is 0 while it runs): one
-- that would gets 1205 at once, its payment is rolled back to its savepoint and handed back
-- 'busy', and shopd runs it alone, where it waits as a single payment does. So one busy row
-- (a product another order is taking, a key another instance holds) holds up no batch.
-- A refusal (no_order, wrong_state, expired, insufficient) is rolled back to its savepoint
-- and stored by shopd afterwards with its key, as a refused charge of a batch is.

-- p_items: a JSON array of {"u": user, "m": method, "p": path, "k": key, "f": fingerprint
-- (hex), "o": order}; p_from: the states an order may be paid from, as shopd_order_settle's.
-- Three results:
--   (outcome, key_id, balance_krw, payment_id, status, total_krw, n) per item, in p_items'
--     order (n counts from 1), the outcome one of paid, busy, duplicate, no_order,
--     wrong_state, expired, insufficient; or one row 'deadlock' when the whole batch was
--     rolled back as a deadlock's victim (on Galera, in place of any of the three results);
--   the paid orders' rows (the columns of shopd_order_settle's second result), by id;
--   their lines (order_id, then the columns of shopd_order_settle's third), by order and
--     product.
CREATE OR REPLACE PROCEDURE shopd_pay_batch(IN p_items MEDIUMTEXT, IN p_from VARCHAR(64),
                                            IN p_now DATETIME(6))
BEGIN
    DECLARE v_wait BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
    DECLARE v_done BOOL DEFAULT FALSE;
    DECLARE v_any BOOL DEFAULT FALSE;
    DECLARE v_results MEDIUMTEXT DEFAULT '[]';
    DECLARE v_paid MEDIUMTEXT DEFAULT '[]';
    DECLARE v_user BIGINT;
    DECLARE v_method VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin; -- as the column
    DECLARE v_path VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin;
    DECLARE v_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin;
    DECLARE v_fingerprint VARCHAR(64);
    DECLARE v_order BIGINT;
    DECLARE v_items CURSOR FOR
        SELECT u, m, p, k, f, o FROM JSON_TABLE(p_items, '$[*]' COLUMNS (
            n FOR ORDINALITY, u BIGINT PATH '$.u', m VARCHAR(8) PATH '$.m',
            p VARCHAR(255) PATH '$.p', k VARCHAR(255) PATH '$.k', f VARCHAR(64) PATH '$.f',
            o BIGINT PATH '$.o')) AS j
        ORDER BY n;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR 1213
    BEGIN
        ROLLBACK;
        SET SESSION innodb_lock_wait_timeout = v_wait;
        SELECT 'deadlock' AS outcome, 0 AS key_id, 0 AS balance_krw, 0 AS payment_id,
               '' AS status, 0 AS total_krw, 0 AS n;
    END;

    START TRANSACTION;
    SET SESSION innodb_lock_wait_timeout = 0;
    OPEN v_items;
    each_payment: LOOP
        FETCH v_items INTO v_user, v_method, v_path, v_key, v_fingerprint, v_order;
        IF v_done THEN
            LEAVE each_payment;
        END IF;
        SAVEPOINT one_payment;
        one: BEGIN
            DECLARE v_key_id BIGINT DEFAULT 0;
            DECLARE v_owner BIGINT DEFAULT NULL;
            DECLARE v_status VARCHAR(12) DEFAULT '';
            DECLARE v_total BIGINT DEFAULT 0;
            DECLARE v_expires DATETIME(6);
            DECLARE v_balance BIGINT DEFAULT 0;
            DECLARE v_payment BIGINT DEFAULT 0;
            DECLARE v_outcome VARCHAR(12) DEFAULT 'paid';
            DECLARE v_errno INT;
            -- An order that does not exist is an outcome, not the end of the items.
            DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;
            DECLARE EXIT HANDLER FOR 1062, 1205
            BEGIN
                GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
                ROLLBACK TO SAVEPOINT one_payment;
                SET v_results = JSON_ARRAY_APPEND(v_results, '$',
                    JSON_ARRAY(IF(v_errno = 1062, 'duplicate', 'busy'), 0, 0, 0, '', 0));
            END;
            CALL shopd_claim_key(v_user, v_method, v_path, v_key, UNHEX(v_fingerprint), p_now,
                                 v_key_id);
            pay: BEGIN
                SELECT user_id, status, total_krw, expires_at
                    INTO v_owner, v_status, v_total, v_expires
                    FROM orders WHERE id = v_order FOR UPDATE;
                IF v_owner IS NULL OR v_owner <> v_user THEN
                    SET v_outcome = 'no_order';
                    LEAVE pay;
                END IF;
                IF FIND_IN_SET(v_status, p_from) = 0 THEN
                    SET v_outcome = 'wrong_state';
                    LEAVE pay;
                END IF;
                IF p_now >= v_expires THEN
                    SET v_outcome = 'expired';
                    LEAVE pay;
                END IF;
                UPDATE orders SET status = 'PAID', paid_at = p_now WHERE id = v_order;
                IF v_total > 0 THEN
                    UPDATE users SET balance_krw = LAST_INSERT_ID(balance_krw - v_total)
                        WHERE id = v_user AND balance_krw >= v_total;
                    IF ROW_COUNT() = 0 THEN
                        SELECT balance_krw INTO v_balance FROM users WHERE id = v_user;
                        SET v_outcome = 'insufficient';
                        LEAVE pay;
                    END IF;
                    SET v_balance = LAST_INSERT_ID();
                    INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw,
                                                 order_id, created_at)
                        VALUES (v_user, 'PAYMENT', -v_total, v_balance, v_order, p_now);
                ELSE
                    SELECT balance_krw INTO v_balance FROM users WHERE id = v_user;
                END IF;
                INSERT INTO payments (order_id, user_id, amount_krw, status, paid_at)
                    VALUES (v_order, v_user, v_total, 'PAID', p_now);
                SET v_payment = LAST_INSERT_ID();
                CALL shopd_order_lines_move(v_order, 'sell', DATE(p_now));
            END pay;
            IF v_outcome = 'paid' THEN
                SET v_any = TRUE;
                SET v_paid = JSON_ARRAY_APPEND(v_paid, '$', v_order);
            ELSE
                ROLLBACK TO SAVEPOINT one_payment;
                SET v_key_id = 0;
                SET v_payment = 0;
            END IF;
            SET v_results = JSON_ARRAY_APPEND(v_results, '$',
                JSON_ARRAY(v_outcome, v_key_id, IFNULL(v_balance, 0), v_payment,
                           IFNULL(v_status, ''), IFNULL(v_total, 0)));
        END one;
    END LOOP;
    CLOSE v_items;
    SET SESSION innodb_lock_wait_timeout = v_wait;
    IF NOT v_any THEN
        ROLLBACK;
    END IF;
    SELECT outcome, key_id, balance_krw, payment_id, status, total_krw, n
        FROM JSON_TABLE(v_results, '$[*]' COLUMNS (
            n FOR ORDINALITY, outcome VARCHAR(12) PATH '$[0]', key_id BIGINT PATH '$[1]',
            balance_krw BIGINT PATH '$[2]', payment_id BIGINT PATH '$[3]',
            status VARCHAR(12) PATH '$[4]', total_krw BIGINT PATH '$[5]')) AS r
        ORDER BY n;
    SELECT o.id, o.user_id, o.status, o.subtotal_krw, o.discount_krw, o.total_krw, o.coupon_id,
           o.user_coupon_id, o.created_at, o.expires_at, o.paid_at
        FROM JSON_TABLE(v_paid, '$[*]' COLUMNS (id BIGINT PATH '$')) AS j
        JOIN orders o ON o.id = j.id
        ORDER BY o.id;
    SELECT i.order_id, i.product_id, i.product_name, i.quantity, i.unit_price_krw,
           i.subtotal_krw
        FROM JSON_TABLE(v_paid, '$[*]' COLUMNS (id BIGINT PATH '$')) AS j
        JOIN order_items i ON i.order_id = j.id
        ORDER BY i.order_id, i.product_id;
END;

-- p_responses: shopd_respond_batch_commit's JSON array of {"id": key row, "s": status, "b":
-- body}, each with its event for a write that publishes one: "e": event id, "t": type, "a":
-- aggregate id, "l": payload. The events into the outbox (one INSERT for all), then the
-- responses stored and COMMIT, by shopd_respond_batch_commit (which reads only its fields).
CREATE OR REPLACE PROCEDURE shopd_respond_events_batch_commit(IN p_responses MEDIUMTEXT,
                                                              IN p_now DATETIME(6))
BEGIN
    CALL shopd_require_transaction();
    INSERT INTO outbox (event_id, event_type, aggregate_id, payload, created_at)
        SELECT e, t, a, l, p_now FROM JSON_TABLE(p_responses, '$[*]' COLUMNS (
            n FOR ORDINALITY,
            e VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin PATH '$.e',
            t VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin PATH '$.t',
            a BIGINT PATH '$.a', l MEDIUMTEXT PATH '$.l')) AS j
        WHERE e IS NOT NULL
        ORDER BY n;
    CALL shopd_respond_batch_commit(p_responses);
END;
