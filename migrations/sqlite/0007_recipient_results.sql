-- Final results per recipient (see migrations/mysql/0007_recipient_results.sql).
CREATE TABLE recipient_results (
    delivery_id   TEXT    NOT NULL,
    recipient     TEXT    NOT NULL,
    channel       TEXT    NOT NULL,
    request_id    TEXT    NOT NULL,
    message_id    TEXT    NULL,
    status        TEXT    NOT NULL,
    code          TEXT    NULL,
    reason        TEXT    NULL,
    failover      TEXT    NULL,
    checks        INTEGER NOT NULL DEFAULT 0,
    next_check_at INTEGER NULL,
    completed_at  INTEGER NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, recipient)
);
CREATE INDEX ix_recipient_results_due ON recipient_results (channel, next_check_at);
CREATE INDEX ix_recipient_results_created ON recipient_results (created_at);
