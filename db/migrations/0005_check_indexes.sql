-- Indexes for the lookups by order that `shopd check` (and cancel, and the coming relay) make:
-- without them each check is a scan per row, quadratic in the number of orders.
ALTER TABLE outbox ADD KEY outbox_aggregate (aggregate_id, event_type);
ALTER TABLE orders ADD KEY orders_user_coupon (user_coupon_id);
ALTER TABLE user_coupons ADD KEY user_coupons_order (order_id);
ALTER TABLE balance_history ADD KEY balance_history_order (order_id, type);
