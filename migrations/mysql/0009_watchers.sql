-- Watchers (ALLIM_WATCHERS): allim polls an HTTP JSON API and notifies about new items.
-- watcher_state: one row per watcher — who polls it now (a lease, so one task at a time),
-- when it polls next, what happened last, and the open digest window's running totals.
CREATE TABLE watcher_state (
    name            VARCHAR(64)   NOT NULL PRIMARY KEY,
    owner           VARCHAR(64)   NULL,
    lease_until     BIGINT        NULL,
    next_poll_at    BIGINT        NOT NULL,
    initialized     INT           NOT NULL DEFAULT 0,
    last_poll_at    BIGINT        NULL,
    last_success_at BIGINT        NULL,
    last_error      VARCHAR(1000) NULL,
    failures        INT           NOT NULL DEFAULT 0,
    items_seen      BIGINT        NOT NULL DEFAULT 0,
    digest_start    BIGINT        NULL,
    digest_count    BIGINT        NOT NULL DEFAULT 0,
    digest_sum      DOUBLE        NOT NULL DEFAULT 0,
    digest_first    TEXT          NULL,
    updated_at      BIGINT        NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The items a watcher has seen, by the SHA-256 of their identity; last_seen_at is refreshed
-- while the API still lists them, so only items gone from it for the retention are forgotten.
CREATE TABLE watcher_items (
    watcher      VARCHAR(64) NOT NULL,
    item_hash    CHAR(64)    NOT NULL,
    first_seen_at BIGINT     NOT NULL,
    last_seen_at BIGINT      NOT NULL,
    PRIMARY KEY (watcher, item_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX ix_watcher_items_last_seen ON watcher_items (last_seen_at);
