-- The lanes' claim: one notification type, due rows oldest first. Only pending and failed rows
-- have a next_attempt_at (delivered, dead and rejected ones have NULL), so this index gives the
-- claim its rows in order and LIMIT stops after what it takes: no filesort over every due row,
-- and FOR UPDATE SKIP LOCKED locks only what it reads (see tests/it/claim.rs for the EXPLAIN).
CREATE INDEX ix_deliveries_claim ON deliveries (notification_type, next_attempt_at, id);
