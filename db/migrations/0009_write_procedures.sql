-- Writes in fewer round trips (issue 13): the statements of a write that need no decision
-- from shopd between them run inside MariaDB, as stored procedures called with bound
-- parameters. The invariants stay where they were: the same conditional UPDATE, the same
-- unique key, the same CHECK constraints; a procedure only saves the waits between statements.

-- The end of every keyed write: the key's response stored and the transaction committed, in
-- one round trip instead of two. Called with the transaction the write opened still open.
CREATE OR REPLACE PROCEDURE shopd_respond_commit(IN p_key_id BIGINT, IN p_status SMALLINT,
                                      IN p_body MEDIUMTEXT)
BEGIN
    UPDATE idempotency_keys SET status_code = p_status, response_body = p_body
        WHERE id = p_key_id;
    COMMIT;
END;

-- A charge up to its response: begin, the key's claim, the balance's conditional UPDATE (the
-- statement of user_repo_add_balance, fenced the same way: fence 0 is unguarded), the history
-- row. One row comes back: (outcome, key_id, balance_krw, fence), outcome one of
--   charged     the transaction is left OPEN with the key claimed (key_id) and the balance the
--               new one: shopd renders the response and calls shopd_respond_commit;
--   duplicate   the key was committed by another request (rolled back: shopd replays it);
--   refused     the UPDATE matched nothing (rolled back): balance_krw and fence are the row's,
--               for shopd to tell the limit from a newer lock holder;
--   no_user     no such user (rolled back);
--   claim_wait  a lock wait timed out on the claim: a request with this key is in flight;
--   effect_wait one timed out on the balance row: other work held it;
--   deadlock    chosen as a deadlock's victim (rolled back: worth another try).
-- The two waits share the session's innodb_lock_wait_timeout: what the claim used is taken
-- from the row's (at least 1 s), so that the call stays within shopd's read time-out of the
-- lock wait + 2 s, as a single statement would.
CREATE OR REPLACE PROCEDURE shopd_charge_begin(
    IN p_user BIGINT,
    IN p_method VARCHAR(8) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_path VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin,
    IN p_fingerprint BINARY(32), IN p_now DATETIME(6), IN p_amount BIGINT, IN p_max BIGINT,
    IN p_fence BIGINT)
BEGIN
    DECLARE v_stage VARCHAR(12) DEFAULT 'claim_wait';
    DECLARE v_wait BIGINT DEFAULT @@SESSION.innodb_lock_wait_timeout;
    DECLARE v_started DATETIME(6) DEFAULT SYSDATE(6);
    DECLARE v_key_id BIGINT;
    DECLARE v_balance BIGINT;
    DECLARE v_fence BIGINT;
    DECLARE v_matched BIGINT;
    DECLARE v_errno INT;
    -- One way out for the errors that are outcomes: all roll back and restore the wait.
    DECLARE EXIT HANDLER FOR 1062, 1205, 1213
    BEGIN
        GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
        ROLLBACK;
        SET SESSION innodb_lock_wait_timeout = v_wait;
        SELECT CASE v_errno WHEN 1062 THEN 'duplicate' WHEN 1213 THEN 'deadlock' ELSE v_stage END
                   AS outcome,
               0 AS key_id, 0 AS balance_krw, 0 AS fence;
    END;

    START TRANSACTION;
    INSERT INTO idempotency_keys (user_id, method, path, idem_key, fingerprint, status_code,
                                  response_body, created_at)
        VALUES (p_user, p_method, p_path, p_key, p_fingerprint, 0, '', p_now);
    SET v_key_id = LAST_INSERT_ID();
    SET v_stage = 'effect_wait';
    SET SESSION innodb_lock_wait_timeout =
        GREATEST(1, v_wait - CEIL(TIMESTAMPDIFF(MICROSECOND, v_started, SYSDATE(6)) / 1000000));
    UPDATE users SET balance_krw = LAST_INSERT_ID(balance_krw + p_amount),
                     fence = GREATEST(fence, p_fence)
        WHERE id = p_user AND balance_krw + p_amount BETWEEN 0 AND p_max
          AND fence <= IF(p_fence = 0, 9223372036854775807, p_fence);
    SET v_matched = ROW_COUNT();
    SET SESSION innodb_lock_wait_timeout = v_wait;
    IF v_matched = 0 THEN
        SELECT balance_krw, fence INTO v_balance, v_fence FROM users WHERE id = p_user;
        ROLLBACK;
        SELECT IF(v_balance IS NULL, 'no_user', 'refused') AS outcome, 0 AS key_id,
               IFNULL(v_balance, 0) AS balance_krw, IFNULL(v_fence, 0) AS fence;
    ELSE
        SET v_balance = LAST_INSERT_ID();
        INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw, order_id,
                                     created_at)
            VALUES (p_user, 'CHARGE', p_amount, v_balance, NULL, p_now);
        SELECT 'charged' AS outcome, v_key_id AS key_id, v_balance AS balance_krw, 0 AS fence;
    END IF;
END;
