-- Group commit of orders (issue 13), as 0015 did for payments: the orders that arrive while a
-- batch is written go into MariaDB together, in one transaction of two calls, instead of one
-- transaction and two calls each.
--
-- shopd prices an order of the batch before it is sent, from its products as the cache or a
-- plain read has them, and only an order without a coupon goes into a batch (a coupon's row is
-- locked and its discount read inside the order's transaction, so such an order keeps the two
-- calls of 0014). Each line's stock is taken by the conditional UPDATE of shopd_order_commit,
-- conditional as well on the price and name shopd priced it with: a product repriced or
-- renamed since makes the order 'stale', and shopd runs it alone, where the first call reads
-- the product afresh. So the stored order is still the response byte for byte.
--
--   shopd_order_place_batch    begin, then per order in the order given: a savepoint, the key's
--                        claim, the user checked, the order's row, per line in ascending
--                        product id the stock taken and checked and the line's row. A refusal
--                        (no_product, out_of_stock, no_user) is rolled back to its savepoint
--                        and its key claimed again, so that shopd stores the refusal with the
--                        batch's commit. Leaves the transaction open when any key is claimed;
--   shopd_respond_events_batch_commit (0015)   the responses stored, COMMIT.
--
-- No statement of a batch waits on a lock (lock wait 0 while it runs): one that would gets 1205
-- at once, and its order is rolled back to its savepoint and handed back 'busy' to run alone.
--
-- p_items: a JSON array of {"u": user, "m": method, "p": path, "k": key, "f": fingerprint (hex),
-- "s": subtotal, "t": total, "l": [[productId, quantity, priceKrw, name], ...] in ascending
-- product id}. One result, a row per item in p_items' order: (outcome, key_id, order_id,
-- product_id, stock, n), the outcome one of placed, busy, duplicate, no_product,
-- out_of_stock, no_user (product_id and stock say which line was refused); or one row
-- 'deadlock' when the whole batch was rolled back as a deadlock's victim.
CREATE OR REPLACE PROCEDURE shopd_order_place_batch(IN p_items MEDIUMTEXT, IN p_now DATETIME(6),
                                              IN p_expires DATETIME(6))
BEGIN
    DECLARE v_wait BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
    DECLARE v_done BOOL DEFAULT FALSE;
    DECLARE v_any BOOL DEFAULT FALSE;
    DECLARE v_results MEDIUMTEXT DEFAULT '[]';
    DECLARE v_user BIGINT;
    DECLARE v_method VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin; -- as the column
    DECLARE v_path VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin;
    DECLARE v_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin;
    DECLARE v_fingerprint VARCHAR(64);
    DECLARE v_subtotal BIGINT;
    DECLARE v_total BIGINT;
    DECLARE v_lines MEDIUMTEXT;
    DECLARE v_items CURSOR FOR
        SELECT u, m, p, k, f, s, t, l FROM JSON_TABLE(p_items, '$[*]' COLUMNS (
            n FOR ORDINALITY, u BIGINT PATH '$.u', m VARCHAR(8) PATH '$.m',
            p VARCHAR(255) PATH '$.p', k VARCHAR(255) PATH '$.k', f VARCHAR(64) PATH '$.f',
            s BIGINT PATH '$.s', t BIGINT PATH '$.t', l JSON PATH '$.l')) AS j
        ORDER BY n;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR 1213
    BEGIN
        ROLLBACK;
        SET SESSION innodb_lock_wait_timeout = v_wait;
        SELECT 'deadlock' AS outcome, 0 AS key_id, 0 AS order_id, 0 AS product_id, 0 AS stock,
               0 AS n;
    END;

    START TRANSACTION;
    SET SESSION innodb_lock_wait_timeout = 0;
    OPEN v_items;
    each_order: LOOP
        FETCH v_items INTO v_user, v_method, v_path, v_key, v_fingerprint, v_subtotal, v_total,
                           v_lines;
        IF v_done THEN
            LEAVE each_order;
        END IF;
        SAVEPOINT one_order;
        one: BEGIN
            DECLARE v_key_id BIGINT DEFAULT 0;
            DECLARE v_order BIGINT DEFAULT 0;
            DECLARE v_outcome VARCHAR(12) DEFAULT 'placed';
            DECLARE v_product BIGINT DEFAULT 0;
            DECLARE v_quantity BIGINT;
            DECLARE v_price BIGINT;
            DECLARE v_name VARCHAR(100) CHARACTER SET utf8mb4;
            DECLARE v_stock BIGINT DEFAULT NULL;
            DECLARE v_found BIGINT DEFAULT NULL;
            DECLARE v_line_done BOOL DEFAULT FALSE;
            DECLARE v_errno INT;
            DECLARE v_order_lines CURSOR FOR
                SELECT j.product_id, j.quantity, j.price_krw, j.name
                    FROM JSON_TABLE(v_lines, '$[*]' COLUMNS (
                             product_id BIGINT PATH '$[0]', quantity BIGINT PATH '$[1]',
                             price_krw BIGINT PATH '$[2]',
                             name VARCHAR(100) CHARACTER SET utf8mb4 PATH '$[3]')) AS j
                    ORDER BY j.product_id;
            DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_line_done = TRUE;
            DECLARE EXIT HANDLER FOR 1062, 1205
            BEGIN
                GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
                ROLLBACK TO SAVEPOINT one_order;
                SET v_results = JSON_ARRAY_APPEND(v_results, '$',
                    JSON_ARRAY(IF(v_errno = 1062, 'duplicate', 'busy'), 0, 0, 0, 0));
            END;
            CALL shopd_claim_key(v_user, v_method, v_path, v_key, UNHEX(v_fingerprint), p_now,
                                 v_key_id);
            place: BEGIN
                -- The order's row first when its user exists (its lines need its id); the
                -- refusals in shopd_order_open's precedence all the same: the stock, line by
                -- line in ascending id (the first line refused is the one the answer names),
                -- then the user.
                SELECT id INTO v_found FROM users WHERE id = v_user;
                IF v_found IS NOT NULL THEN
                    INSERT INTO orders (user_id, status, subtotal_krw, discount_krw, total_krw,
                                        coupon_id, user_coupon_id, created_at, expires_at)
                        VALUES (v_user, 'PENDING', v_subtotal, v_subtotal - v_total, v_total,
                                NULL, NULL, p_now, p_expires);
                    SET v_order = LAST_INSERT_ID();
                END IF;
                SET v_line_done = FALSE; -- the user's read may have found nothing
                OPEN v_order_lines;
                each_line: LOOP
                    FETCH v_order_lines INTO v_product, v_quantity, v_price, v_name;
                    IF v_line_done THEN
                        LEAVE each_line;
                    END IF;
                    UPDATE products
                        SET stock = stock - v_quantity, reserved = reserved + v_quantity
                        WHERE id = v_product AND stock >= v_quantity AND price_krw = v_price
                          AND CAST(name AS BINARY) = CAST(v_name AS BINARY);
                    IF ROW_COUNT() = 0 THEN
                        SET v_found = NULL;
                        SELECT id, stock INTO v_found, v_stock FROM products WHERE id = v_product;
                        SET v_outcome = CASE WHEN v_found IS NULL THEN 'no_product'
                                             WHEN v_stock < v_quantity THEN 'out_of_stock'
                                             ELSE 'stale' END;
                        LEAVE each_line;
                    END IF;
                    IF v_order <> 0 THEN
                        INSERT INTO order_items (order_id, product_id, product_name, quantity,
                                                 unit_price_krw, subtotal_krw)
                            VALUES (v_order, v_product, v_name, v_quantity, v_price,
                                    v_price * v_quantity);
                    END IF;
                END LOOP;
                CLOSE v_order_lines;
                IF v_outcome = 'placed' AND v_order = 0 THEN
                    SET v_outcome = 'no_user';
                END IF;
            END place;
            IF v_outcome <> 'placed' THEN
                ROLLBACK TO SAVEPOINT one_order;
                SET v_order = 0;
                SET v_key_id = 0;
                IF v_outcome = 'stale' THEN
                    SET v_outcome = 'busy'; -- alone, where the first call reads it afresh
                ELSE
                    -- The refusal is the key's answer: claimed again, stored at the commit.
                    CALL shopd_claim_key(v_user, v_method, v_path, v_key, UNHEX(v_fingerprint),
                                         p_now, v_key_id);
                END IF;
            END IF;
            IF v_key_id <> 0 THEN
                SET v_any = TRUE;
            END IF;
            SET v_results = JSON_ARRAY_APPEND(v_results, '$',
                JSON_ARRAY(v_outcome, v_key_id, v_order,
                           IF(v_outcome = 'placed', 0, v_product), IFNULL(v_stock, 0)));
        END one;
    END LOOP;
    CLOSE v_items;
    SET SESSION innodb_lock_wait_timeout = v_wait;
    IF NOT v_any THEN
        ROLLBACK;
    END IF;
    SELECT outcome, key_id, order_id, product_id, stock, n
        FROM JSON_TABLE(v_results, '$[*]' COLUMNS (
            n FOR ORDINALITY, outcome VARCHAR(12) PATH '$[0]', key_id BIGINT PATH '$[1]',
            order_id BIGINT PATH '$[2]', product_id BIGINT PATH '$[3]',
            stock BIGINT PATH '$[4]')) AS r
        ORDER BY n;
END;
