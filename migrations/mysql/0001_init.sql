-- allim schema for MySQL 8 / MariaDB 10.6+ (production, behind RDS Proxy).
--
-- Times are epoch milliseconds (BIGINT, UTC): the same representation in MySQL and SQLite,
-- so one set of queries serves both backends and no session time zone can shift them.
-- Ids are UUIDv7 strings made by allim: time-ordered, so "newest first" is "id descending",
-- and no LAST_INSERT_ID round trip is needed for multi-row inserts.

-- One row per accepted (or rejected) notification: the source of truth for delivery.
CREATE TABLE deliveries (
    id                VARCHAR(36)  NOT NULL PRIMARY KEY,
    -- Producer's key (or "sqs:<MessageId>" / "sns:<MessageId>"); NULL allows any number of rows.
    idempotency_key   VARCHAR(255) NULL,
    -- APP_NOTIFICATION | PUSH | SMS | SLACK | UNKNOWN (rejected messages whose type is unknown)
    notification_type VARCHAR(32)  NOT NULL,
    -- Where it came from: http | sqs | sns
    source            VARCHAR(16)  NOT NULL,
    -- The validated notification as JSON; for a rejected message, the raw body as received.
    payload           MEDIUMTEXT   NOT NULL,
    -- pending | delivered | failed | dead | rejected
    status            VARCHAR(16)  NOT NULL,
    attempts          BIGINT       NOT NULL DEFAULT 0,
    -- When the dispatcher may next pick the row up (deliverAt, or the retry time).
    next_attempt_at   BIGINT       NULL,
    -- Dispatcher lease: which process holds the row and until when.
    lease_owner       VARCHAR(64)  NULL,
    lease_until       BIGINT       NULL,
    last_error        TEXT         NULL,
    -- 1 when a channel ran without provider credentials and only logged the send.
    dry_run           BIGINT       NOT NULL DEFAULT 0,
    created_at        BIGINT       NOT NULL,
    updated_at        BIGINT       NOT NULL,
    delivered_at      BIGINT       NULL,
    UNIQUE KEY uq_deliveries_idempotency_key (idempotency_key),
    KEY ix_deliveries_due (status, next_attempt_at),
    KEY ix_deliveries_created (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The in-app inbox: what the mobile / web app lists for a user.
CREATE TABLE inbox (
    id           VARCHAR(36)  NOT NULL PRIMARY KEY,
    -- The delivery that produced the row; unique so a redelivery can never add a second row.
    delivery_id  VARCHAR(36)  NOT NULL,
    user_id      VARCHAR(128) NOT NULL,
    category     VARCHAR(64)  NULL,
    title        VARCHAR(1024) NOT NULL,
    body         TEXT         NULL,
    link         VARCHAR(2048) NULL,
    -- Producer-defined JSON object, stored as text.
    data         MEDIUMTEXT   NULL,
    created_at   BIGINT       NOT NULL,
    read_at      BIGINT       NULL,
    UNIQUE KEY uq_inbox_delivery (delivery_id),
    -- Listing newest first and paging by id.
    KEY ix_inbox_user (user_id, id),
    -- Unread count and "unread only" listing.
    KEY ix_inbox_user_unread (user_id, read_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
