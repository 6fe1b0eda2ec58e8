-- CloudWatch alarm routing (see migrations/mysql/0003_alarms.sql).

CREATE TABLE alarm_state (
    alarm_key         TEXT    NOT NULL PRIMARY KEY,
    name              TEXT    NOT NULL,
    account           TEXT    NOT NULL,
    region            TEXT    NOT NULL,
    state             TEXT    NULL,
    changed_at        INTEGER NULL,
    window_start      INTEGER NULL,
    window_sent       INTEGER NOT NULL DEFAULT 0,
    window_suppressed INTEGER NOT NULL DEFAULT 0,
    last_alarm        TEXT    NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX ix_alarm_state_window ON alarm_state (window_suppressed, window_start);
CREATE INDEX ix_alarm_state_updated ON alarm_state (updated_at);

CREATE TABLE alarm_events (
    id             TEXT    NOT NULL PRIMARY KEY,
    alarm_key      TEXT    NOT NULL,
    sns_message_id TEXT    NOT NULL UNIQUE,
    state          TEXT    NOT NULL,
    old_state      TEXT    NULL,
    changed_at     INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    outcome        TEXT    NOT NULL,
    detail         TEXT    NULL,
    deliveries     TEXT    NULL
);
CREATE INDEX ix_alarm_events_alarm ON alarm_events (alarm_key, id);

CREATE TABLE silences (
    id         TEXT    NOT NULL PRIMARY KEY,
    alarm      TEXT    NOT NULL,
    account    TEXT    NULL,
    region     TEXT    NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ix_silences_ends ON silences (ends_at);
