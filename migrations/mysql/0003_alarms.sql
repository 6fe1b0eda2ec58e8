-- CloudWatch alarm routing: each alarm's state and flap window, the history of what was done
-- with every alarm notification, and operator silences.

CREATE TABLE alarm_state (
    -- The alarm's ARN (or account:region:name).
    alarm_key         VARCHAR(512) NOT NULL PRIMARY KEY,
    name              VARCHAR(255) NOT NULL,
    account           VARCHAR(32)  NOT NULL,
    region            VARCHAR(64)  NOT NULL,
    -- Last state seen (ALARM | OK | INSUFFICIENT_DATA); NULL before the first.
    state             VARCHAR(24)  NULL,
    -- StateChangeTime of that state (ms): older notifications are stale.
    changed_at        BIGINT       NULL,
    -- Flap limit: the current window, notifications sent in it, and those held back.
    window_start      BIGINT       NULL,
    window_sent       BIGINT       NOT NULL DEFAULT 0,
    window_suppressed BIGINT       NOT NULL DEFAULT 0,
    -- The last alarm as parsed (JSON), to render the flap summary.
    last_alarm        TEXT         NULL,
    updated_at        BIGINT       NOT NULL,
    KEY ix_alarm_state_window (window_suppressed, window_start),
    KEY ix_alarm_state_updated (updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per alarm notification received (and per flap summary).
CREATE TABLE alarm_events (
    id             VARCHAR(36)  NOT NULL PRIMARY KEY,
    alarm_key      VARCHAR(512) NOT NULL,
    -- SNS MessageId: a retried notification is recognised and does nothing.
    sns_message_id VARCHAR(128) NOT NULL,
    state          VARCHAR(24)  NOT NULL,
    old_state      VARCHAR(24)  NULL,
    changed_at     BIGINT       NOT NULL,
    received_at    BIGINT       NOT NULL,
    -- sent | suppressed | silenced | unchanged | stale | unrouted | summary
    outcome        VARCHAR(16)  NOT NULL,
    -- Why, in words.
    detail         TEXT         NULL,
    -- Comma-separated delivery ids created for it.
    deliveries     TEXT         NULL,
    UNIQUE KEY uq_alarm_events_message (sns_message_id),
    KEY ix_alarm_events_alarm (alarm_key, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE silences (
    id         VARCHAR(36)   NOT NULL PRIMARY KEY,
    -- Glob on the alarm name; optional account / region.
    alarm      VARCHAR(255)  NOT NULL,
    account    VARCHAR(32)   NULL,
    region     VARCHAR(64)   NULL,
    starts_at  BIGINT        NOT NULL,
    ends_at    BIGINT        NOT NULL,
    reason     VARCHAR(1024) NOT NULL,
    created_at BIGINT        NOT NULL,
    KEY ix_silences_ends (ends_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
