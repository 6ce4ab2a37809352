-- A write's later calls run only inside the transaction its first call opened (issue 14).
-- A write is several calls: shopd_order_reserve (or shopd_charge_begin, shopd_order_settle,
-- shopd_charge_batch) opens the transaction and leaves it open, shopd decides, then
-- shopd_order_place and the respond procedures finish it and commit. Should that transaction
-- end between the calls (Galera aborts it for a conflicting write-set from another node, or
-- the server rolls it back for any reason), the next call must not run its statements in
-- autocommit: an order row without its reservation and key, an outbox event without its
-- order. Every later call now begins by requiring the open transaction, and fails with a
-- deadlock (1213: shopd retries the write, or answers 503) when there is none. Found by
-- `make test-ha` (scripts/chaos.sh TOPOLOGY=galera): a shopd instance restarted onto
-- another Galera node than its peers wrote beside them, and one order came without its key.

CREATE OR REPLACE PROCEDURE shopd_require_transaction()
BEGIN
    IF @@in_transaction = 0 THEN
        SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213,
            MESSAGE_TEXT = 'the write''s transaction ended before its last call; retry';
    END IF;
END;

CREATE OR REPLACE PROCEDURE shopd_respond_commit(IN p_key_id BIGINT, IN p_status SMALLINT,
                                      IN p_body MEDIUMTEXT)
BEGIN
    CALL shopd_require_transaction();
    UPDATE idempotency_keys SET status_code = p_status, response_body = p_body
        WHERE id = p_key_id;
    COMMIT;
END;

CREATE OR REPLACE PROCEDURE shopd_respond_commit_event(
    IN p_key_id BIGINT, IN p_status SMALLINT, IN p_body MEDIUMTEXT,
    IN p_event_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_event_type VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin,
    IN p_aggregate BIGINT, IN p_payload MEDIUMTEXT, IN p_now DATETIME(6))
BEGIN
    CALL shopd_require_transaction();
    INSERT INTO outbox (event_id, event_type, aggregate_id, payload, created_at)
        VALUES (p_event_id, p_event_type, p_aggregate, p_payload, p_now);
    UPDATE idempotency_keys SET status_code = p_status, response_body = p_body
        WHERE id = p_key_id;
    COMMIT;
END;

CREATE OR REPLACE PROCEDURE shopd_order_place(
    IN p_user BIGINT, IN p_subtotal BIGINT, IN p_discount BIGINT, IN p_total BIGINT,
    IN p_coupon BIGINT, IN p_user_coupon BIGINT, IN p_now DATETIME(6), IN p_expires DATETIME(6),
    IN p_lines TEXT)
BEGIN
    DECLARE v_order BIGINT;

    CALL shopd_require_transaction();
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

CREATE OR REPLACE PROCEDURE shopd_respond_batch_commit(IN p_responses MEDIUMTEXT)
BEGIN
    DECLARE v_done BOOL DEFAULT FALSE;
    DECLARE v_id BIGINT;
    DECLARE v_status SMALLINT;
    DECLARE v_body MEDIUMTEXT;
    DECLARE v_responses CURSOR FOR
        SELECT id, s, b FROM JSON_TABLE(p_responses, '$[*]' COLUMNS (
            id BIGINT PATH '$.id', s SMALLINT PATH '$.s', b MEDIUMTEXT PATH '$.b')) AS j;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;

    CALL shopd_require_transaction();
    OPEN v_responses;
    each_response: LOOP
        FETCH v_responses INTO v_id, v_status, v_body;
        IF v_done THEN
            LEAVE each_response;
        END IF;
        UPDATE idempotency_keys SET status_code = v_status, response_body = v_body
            WHERE id = v_id;
    END LOOP;
    CLOSE v_responses;
    COMMIT;
END;
