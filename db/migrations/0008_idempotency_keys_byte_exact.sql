-- Idempotency keys compare byte for byte (API.md, Idempotency): `k` and `k   ` are two keys.
-- ascii_bin is a PAD SPACE collation, under which trailing spaces do not count, so the unique
-- scope took `k   ` for a replay of `k`; ascii_nopad_bin compares every byte. The path is
-- made exact the same way (a path never ends in a space today; this keeps the scope exact).
ALTER TABLE idempotency_keys
    MODIFY path     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin NOT NULL,
    MODIFY idem_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_nopad_bin NOT NULL;
