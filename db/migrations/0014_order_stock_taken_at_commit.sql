-- An order in two calls, its products' rows locked only inside the second (issue 13).
--
-- Before, shopd_order_reserve took each line's stock with the first call and the transaction
-- held those product rows through shopd's pricing, shopd_order_place and shopd_respond_commit:
-- three round trips during which every other order of a hot product waited. Now:
--
--   shopd_order_open    begin, the key's claim, the lines checked against a plain read of
--                       their products (no lock), the coupon locked, the user checked, the
--                       order row inserted with zero amounts for its id; answers the lines'
--                       names and prices. shopd prices the order and renders its response.
--   shopd_order_commit  each line's stock taken (the conditional UPDATE, the invariant, as
--                       before, in ascending id), the order's amounts and lines written, the
--                       coupon used, the response stored, COMMIT: the product rows are held
--                       for this one call.
--
-- A refusal of the first call (no_product, out_of_stock, coupon_not_usable, no_user) has
-- written nothing but the key's claim, so it leaves the transaction open for shopd to store
-- the refusal in it with shopd_respond_commit, instead of a rollback and a second claim. Stock
-- that another order took between the two calls refuses in the second, which rolls back
-- whole; shopd then stores that refusal on its own, as every refusal was before.
--
-- The order is priced as its products were read by the first call, and the lines stored are
-- the ones shopd priced and answered (p_lines carries their names and prices), so the stored
-- order is the response byte for byte even if an admin renamed or repriced a product between
-- the two calls. The first call's read is READ COMMITTED, as every session here.
--
-- shopd_order_reserve and shopd_order_place stay, unused by this release, for the instances of
-- the previous one during a rolling upgrade; a later migration drops them.

-- Outcomes besides the shared ones (0010's header); the row is (outcome, key_id, product_id,
-- stock, user_coupon_id, discount_type, discount_value, order_id), then, when open, the lines'
-- (id, name, price_krw) in ascending id:
--   open               the transaction is left open with the order row: shopd prices it and
--                      calls shopd_order_commit;
--   no_product, out_of_stock, coupon_not_usable, no_user
--                      as shopd_order_reserve's, but the transaction is left open holding the
--                      key's claim alone, for the refusal.
CREATE OR REPLACE PROCEDURE shopd_order_open(
    IN p_user BIGINT,
    IN p_method VARCHAR(8) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_path VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_fingerprint BINARY(32), IN p_now DATETIME(6), IN p_expires DATETIME(6),
    IN p_lines TEXT, IN p_coupon BIGINT)
BEGIN
    DECLARE v_stage VARCHAR(12) DEFAULT 'claim_wait';
    DECLARE v_wait BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
    DECLARE v_started DATETIME(6) DEFAULT SYSDATE(6);
    DECLARE v_outcome VARCHAR(20) DEFAULT 'open';
    DECLARE v_key_id BIGINT DEFAULT 0;
    DECLARE v_product BIGINT DEFAULT NULL;
    DECLARE v_stock BIGINT DEFAULT NULL;
    DECLARE v_user_coupon BIGINT DEFAULT NULL;
    DECLARE v_type VARCHAR(8) DEFAULT '';
    DECLARE v_value BIGINT DEFAULT 0;
    DECLARE v_user BIGINT DEFAULT NULL;
    DECLARE v_order BIGINT DEFAULT 0;
    DECLARE v_errno INT;
    DECLARE EXIT HANDLER FOR 1062, 1205, 1213
    BEGIN
        GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
        ROLLBACK;
        SET SESSION innodb_lock_wait_timeout = v_wait;
        SELECT CASE v_errno WHEN 1062 THEN 'duplicate' WHEN 1213 THEN 'deadlock' ELSE v_stage END
                   AS outcome, 0, 0, 0, 0, '', 0, 0;
    END;

    START TRANSACTION;
    CALL shopd_claim_key(p_user, p_method, p_path, p_key, p_fingerprint, p_now, v_key_id);
    SET v_stage = 'effect_wait';
    SET SESSION innodb_lock_wait_timeout = shopd_wait_left(v_wait, v_started);
    -- The first line, in ascending id, that does not exist or has too little stock now.
    SELECT j.product_id, p.stock INTO v_product, v_stock
        FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (product_id BIGINT PATH '$[0]',
                                                 quantity BIGINT PATH '$[1]')) AS j
        LEFT JOIN products p ON p.id = j.product_id
        WHERE p.id IS NULL OR p.stock < j.quantity
        ORDER BY j.product_id LIMIT 1;
    IF v_product IS NOT NULL THEN
        SET v_outcome = IF(v_stock IS NULL, 'no_product', 'out_of_stock');
    END IF;
    IF v_outcome = 'open' AND p_coupon <> 0 THEN
        SELECT uc.id, c.discount_type, c.discount_value INTO v_user_coupon, v_type, v_value
            FROM user_coupons uc JOIN coupons c ON c.id = uc.coupon_id
            WHERE uc.user_id = p_user AND uc.coupon_id = p_coupon AND uc.status = 'AVAILABLE'
              AND (c.ends_at IS NULL OR c.ends_at > p_now)
            FOR UPDATE;
        IF v_user_coupon IS NULL THEN
            SET v_outcome = 'coupon_not_usable';
        END IF;
    END IF;
    IF v_outcome = 'open' THEN
        SELECT id INTO v_user FROM users WHERE id = p_user;
        IF v_user IS NULL THEN
            SET v_outcome = 'no_user';
        END IF;
    END IF;
    IF v_outcome = 'open' THEN
        INSERT INTO orders (user_id, status, subtotal_krw, discount_krw, total_krw, coupon_id,
                            user_coupon_id, created_at, expires_at)
            VALUES (p_user, 'PENDING', 0, 0, 0, NULLIF(p_coupon, 0), v_user_coupon, p_now,
                    p_expires);
        SET v_order = LAST_INSERT_ID();
    END IF;
    SET SESSION innodb_lock_wait_timeout = v_wait;
    SELECT v_outcome AS outcome, v_key_id, IFNULL(v_product, 0), IFNULL(v_stock, 0),
           IFNULL(v_user_coupon, 0), v_type, v_value, v_order;
    IF v_outcome = 'open' THEN
        SELECT p.id, p.name, p.price_krw
            FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (product_id BIGINT PATH '$[0]')) AS j
            JOIN products p ON p.id = j.product_id
            ORDER BY p.id;
    END IF;
END;

-- The rest of the order, inside the transaction shopd_order_open left open: p_lines is a JSON
-- array of [productId, quantity, priceKrw, name] in ascending id, as shopd priced and
-- answered them; the amounts are shopd's (CHECK orders_amounts holds them together); p_body
-- is the response stored with the key. One row (outcome, product_id, stock):
--   committed      done;
--   out_of_stock   product_id has only stock left now (rolled back whole);
-- and the shared effect_wait and deadlock (rolled back).
CREATE OR REPLACE PROCEDURE shopd_order_commit(
    IN p_key_id BIGINT, IN p_order BIGINT, IN p_subtotal BIGINT, IN p_discount BIGINT,
    IN p_total BIGINT, IN p_user_coupon BIGINT, IN p_now DATETIME(6), IN p_lines MEDIUMTEXT,
    IN p_status SMALLINT, IN p_body MEDIUMTEXT)
BEGIN
    DECLARE v_done BOOL DEFAULT FALSE;
    DECLARE v_short BOOL DEFAULT FALSE;
    DECLARE v_product BIGINT DEFAULT 0;
    DECLARE v_quantity BIGINT;
    DECLARE v_price BIGINT;
    DECLARE v_name VARCHAR(100) CHARACTER SET utf8mb4;
    DECLARE v_stock BIGINT DEFAULT 0;
    DECLARE v_errno INT;
    DECLARE v_lines CURSOR FOR
        SELECT j.product_id, j.quantity, j.price_krw, j.name
            FROM JSON_TABLE(p_lines, '$[*]' COLUMNS (
                     product_id BIGINT PATH '$[0]', quantity BIGINT PATH '$[1]',
                     price_krw BIGINT PATH '$[2]',
                     name VARCHAR(100) CHARACTER SET utf8mb4 PATH '$[3]')) AS j
            ORDER BY j.product_id;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR 1205, 1213
    BEGIN
        GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
        ROLLBACK;
        SELECT IF(v_errno = 1213, 'deadlock', 'effect_wait') AS outcome, 0, 0;
    END;

    CALL shopd_require_transaction();
    OPEN v_lines;
    each_line: LOOP
        FETCH v_lines INTO v_product, v_quantity, v_price, v_name;
        IF v_done THEN
            LEAVE each_line;
        END IF;
        UPDATE products SET stock = stock - v_quantity, reserved = reserved + v_quantity
            WHERE id = v_product AND stock >= v_quantity;
        IF ROW_COUNT() = 0 THEN
            SELECT stock INTO v_stock FROM products WHERE id = v_product;
            SET v_short = TRUE;
            LEAVE each_line;
        END IF;
        INSERT INTO order_items (order_id, product_id, product_name, quantity, unit_price_krw,
                                 subtotal_krw)
            VALUES (p_order, v_product, v_name, v_quantity, v_price, v_price * v_quantity);
    END LOOP;
    CLOSE v_lines;
    IF v_short THEN
        ROLLBACK;
        SELECT 'out_of_stock' AS outcome, v_product, v_stock;
    ELSE
        UPDATE orders SET subtotal_krw = p_subtotal, discount_krw = p_discount,
                          total_krw = p_total
            WHERE id = p_order;
        IF p_user_coupon <> 0 THEN
            UPDATE user_coupons SET status = 'USED', used_at = p_now, order_id = p_order
                WHERE id = p_user_coupon AND status = 'AVAILABLE';
            IF ROW_COUNT() = 0 THEN
                SIGNAL SQLSTATE '45000'
                    SET MESSAGE_TEXT = 'the locked coupon is no longer available';
            END IF;
        END IF;
        UPDATE idempotency_keys SET status_code = p_status, response_body = p_body
            WHERE id = p_key_id;
        COMMIT;
        SELECT 'committed' AS outcome, 0, 0;
    END IF;
END;
