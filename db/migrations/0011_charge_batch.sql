-- Group commit of charges (issue 13): the charges that arrive at one shopd instance while
-- another batch is being written go into MariaDB together, in one transaction and two round
-- trips, each with its own exact outcome. Each charge is the statements of shopd_charge_begin
-- (the key's claim, the balance's conditional UPDATE, the history row) behind a savepoint of
-- its own, so that one charge's refusal or duplicate key takes back that charge alone.
--
-- A batch never waits on a lock that other work holds, so that one busy row cannot hold up
-- the other charges of its batch: each charge first reads its key and its user's row without
-- waiting (a lock wait time-out of 0: NOWAIT is not allowed in procedures), and a charge
-- whose row or key another transaction holds is handed back 'busy', for shopd to run on its
-- own, where it waits as a single charge does.

-- The charges of p_items, a JSON array of {"u": user, "m": method, "p": path, "k": key,
-- "f": the fingerprint in hex, "a": amount, "x": the balance limit}, in ascending user id (the
-- lock order of every writer of balances). Opens a transaction and leaves it open when any
-- charge went in (for shopd_respond_batch_commit), rolls it back otherwise. One result: per
-- item, in p_items' order, (outcome, key_id, balance_krw), outcome one of charged, duplicate,
-- refused (balance_krw is the balance that stood), no_user, busy, claim_wait, effect_wait;
-- or a single row 'deadlock' (everything rolled back: worth another try).
CREATE OR REPLACE PROCEDURE shopd_charge_batch(IN p_items MEDIUMTEXT, IN p_now DATETIME(6))
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
    DECLARE v_amount BIGINT;
    DECLARE v_max BIGINT;
    DECLARE v_items CURSOR FOR
        SELECT u, m, p, k, f, a, x FROM JSON_TABLE(p_items, '$[*]' COLUMNS (
            n FOR ORDINALITY, u BIGINT PATH '$.u', m VARCHAR(8) PATH '$.m',
            p VARCHAR(255) PATH '$.p', k VARCHAR(255) PATH '$.k', f VARCHAR(64) PATH '$.f',
            a BIGINT PATH '$.a', x BIGINT PATH '$.x')) AS j
        ORDER BY n;
    DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
    DECLARE EXIT HANDLER FOR 1213
    BEGIN
        ROLLBACK;
        SET SESSION innodb_lock_wait_timeout = v_wait;
        SELECT 'deadlock' AS outcome, 0 AS key_id, 0 AS balance_krw;
    END;

    START TRANSACTION;
    OPEN v_items;
    each_charge: LOOP
        FETCH v_items INTO v_user, v_method, v_path, v_key, v_fingerprint, v_amount, v_max;
        IF v_done THEN
            LEAVE each_charge;
        END IF;
        SAVEPOINT one_charge;
        one: BEGIN
            DECLARE v_stage VARCHAR(12) DEFAULT 'busy';
            DECLARE v_held INT;
            DECLARE v_key_id BIGINT DEFAULT 0;
            DECLARE v_balance BIGINT DEFAULT NULL;
            DECLARE v_outcome VARCHAR(12) DEFAULT 'charged';
            DECLARE v_errno INT;
            -- A user that does not exist is an outcome, not the end of the items.
            DECLARE CONTINUE HANDLER FOR NOT FOUND BEGIN END;
            -- A lock wait time-out rolls back its statement only (innodb_rollback_on_timeout
            -- is off): the savepoint takes back the rest of this charge, and the batch goes on.
            DECLARE EXIT HANDLER FOR 1062, 1205
            BEGIN
                GET DIAGNOSTICS CONDITION 1 v_errno = MYSQL_ERRNO;
                ROLLBACK TO SAVEPOINT one_charge;
                SET SESSION innodb_lock_wait_timeout = v_wait;
                SET v_results = JSON_ARRAY_APPEND(v_results, '$',
                    JSON_ARRAY(IF(v_errno = 1062, 'duplicate', v_stage), 0, 0));
            END;

            -- Under READ COMMITTED (shopd's sessions) neither read takes a gap lock.
            SET SESSION innodb_lock_wait_timeout = 0;
            SELECT COUNT(*) INTO v_held FROM idempotency_keys
                WHERE user_id = v_user AND method = v_method AND path = v_path
                  AND idem_key = v_key
                LOCK IN SHARE MODE;
            SELECT balance_krw INTO v_balance FROM users WHERE id = v_user FOR UPDATE;
            SET SESSION innodb_lock_wait_timeout = v_wait;
            SET v_stage = 'claim_wait';
            CALL shopd_claim_key(v_user, v_method, v_path, v_key, UNHEX(v_fingerprint), p_now,
                                 v_key_id);
            SET v_stage = 'effect_wait';
            UPDATE users SET balance_krw = LAST_INSERT_ID(balance_krw + v_amount)
                WHERE id = v_user AND balance_krw + v_amount BETWEEN 0 AND v_max;
            IF ROW_COUNT() = 0 THEN
                ROLLBACK TO SAVEPOINT one_charge;
                SET v_outcome = IF(v_balance IS NULL, 'no_user', 'refused');
            ELSE
                SET v_balance = LAST_INSERT_ID();
                INSERT INTO balance_history (user_id, type, amount_krw, balance_after_krw,
                                             order_id, created_at)
                    VALUES (v_user, 'CHARGE', v_amount, v_balance, NULL, p_now);
                SET v_any = TRUE;
            END IF;
            SET v_results = JSON_ARRAY_APPEND(v_results, '$',
                JSON_ARRAY(v_outcome, IF(v_outcome = 'charged', v_key_id, 0),
                           IFNULL(v_balance, 0)));
        END one;
    END LOOP;
    CLOSE v_items;
    IF NOT v_any THEN
        ROLLBACK;
    END IF;
    SELECT outcome, key_id, balance_krw FROM JSON_TABLE(v_results, '$[*]' COLUMNS (
        n FOR ORDINALITY, outcome VARCHAR(12) PATH '$[0]', key_id BIGINT PATH '$[1]',
        balance_krw BIGINT PATH '$[2]')) AS r
        ORDER BY n;
END;

-- The end of a batch: every charged key's response stored (p_responses, a JSON array of
-- {"id": key_id, "s": status, "b": body}) and the transaction committed, in one round trip.
-- One UPDATE by primary key per response: a join with the JSON would let MariaDB scan the
-- table, touching (and, for a moment, locking) other transactions' keys.
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
