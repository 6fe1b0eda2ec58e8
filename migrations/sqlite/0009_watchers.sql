-- Watchers (see the MySQL migration).
CREATE TABLE watcher_state (
    name            TEXT    NOT NULL PRIMARY KEY,
    owner           TEXT    NULL,
    lease_until     INTEGER NULL,
    next_poll_at    INTEGER NOT NULL,
    initialized     INTEGER NOT NULL DEFAULT 0,
    last_poll_at    INTEGER NULL,
    last_success_at INTEGER NULL,
    last_error      TEXT    NULL,
    failures        INTEGER NOT NULL DEFAULT 0,
    items_seen      INTEGER NOT NULL DEFAULT 0,
    digest_start    INTEGER NULL,
    digest_count    INTEGER NOT NULL DEFAULT 0,
    digest_sum      REAL    NOT NULL DEFAULT 0,
    digest_first    TEXT    NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE watcher_items (
    watcher       TEXT    NOT NULL,
    item_hash     TEXT    NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (watcher, item_hash)
);
CREATE INDEX ix_watcher_items_last_seen ON watcher_items (last_seen_at);
