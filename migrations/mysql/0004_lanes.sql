-- One sender per channel across all tasks: the task holding a channel's lane lease is the only
-- one that claims and sends that channel's deliveries, so the channel's rate limit holds for the
-- whole service and two tasks never race on the same provider (see src/dispatch/lane.rs).
CREATE TABLE lanes (
    channel      VARCHAR(32) NOT NULL PRIMARY KEY,
    -- The task that holds the lane, and until when (renewed while it runs).
    owner        VARCHAR(64) NULL,
    lease_until  BIGINT      NULL,
    updated_at   BIGINT      NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
