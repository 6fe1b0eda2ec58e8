-- allim schema for SQLite (the embedded default). Mirrors migrations/mysql/0001_init.sql;
-- see the comments there. Times are epoch milliseconds, ids UUIDv7 strings.

CREATE TABLE deliveries (
    id                TEXT    NOT NULL PRIMARY KEY,
    idempotency_key   TEXT    NULL UNIQUE,
    notification_type TEXT    NOT NULL,
    source            TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER NULL,
    lease_owner       TEXT    NULL,
    lease_until       INTEGER NULL,
    last_error        TEXT    NULL,
    dry_run           INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    delivered_at      INTEGER NULL
);
CREATE INDEX ix_deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX ix_deliveries_created ON deliveries (created_at);

CREATE TABLE inbox (
    id           TEXT    NOT NULL PRIMARY KEY,
    delivery_id  TEXT    NOT NULL UNIQUE,
    user_id      TEXT    NOT NULL,
    category     TEXT    NULL,
    title        TEXT    NOT NULL,
    body         TEXT    NULL,
    link         TEXT    NULL,
    data         TEXT    NULL,
    created_at   INTEGER NOT NULL,
    read_at      INTEGER NULL
);
CREATE INDEX ix_inbox_user ON inbox (user_id, id);
CREATE INDEX ix_inbox_user_unread ON inbox (user_id, read_at, id);
