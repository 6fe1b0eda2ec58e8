-- The lanes' claim (see migrations/mysql/0005_claim_index.sql).
CREATE INDEX ix_deliveries_claim ON deliveries (notification_type, next_attempt_at, id);
