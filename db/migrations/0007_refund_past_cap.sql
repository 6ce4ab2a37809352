-- A refund is always applied, cap or not (API.md, Users and balances): the 1,000,000,000,000 KRW
-- cap limits what a charge may reach, and is checked by the charge's own statement
-- (user_repo_add_balance). Here only "never below 0" stays a constraint of the schema, so that a
-- cancelled paid order can give its money back to a balance that has been topped up meanwhile.
ALTER TABLE users
    DROP CONSTRAINT users_balance_range,
    ADD CONSTRAINT users_balance_range CHECK (balance_krw >= 0);
ALTER TABLE balance_history
    DROP CONSTRAINT balance_history_after,
    ADD CONSTRAINT balance_history_after CHECK (balance_after_krw >= 0);
