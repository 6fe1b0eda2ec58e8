-- What ALLIM_RETENTION's purge reads by age (see src/store/retention.rs).
CREATE INDEX ix_inbox_created ON inbox (created_at);
CREATE INDEX ix_alarm_events_received ON alarm_events (received_at);
CREATE INDEX ix_delivery_parts_created ON delivery_parts (created_at);
