-- Every send attempt of a delivery and what came of it, for "what happened to this message"
-- (GET /v1/deliveries/{id} `history`, the console's delivery page). Written with the outcome,
-- in the same transaction. Purged with the retention.
CREATE TABLE delivery_attempts (
    id          VARCHAR(36)   NOT NULL PRIMARY KEY,
    delivery_id VARCHAR(36)   NOT NULL,
    attempt     INT           NOT NULL,
    at          BIGINT        NOT NULL,
    outcome     VARCHAR(16)   NOT NULL,
    error       VARCHAR(1000) NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX ix_delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
CREATE INDEX ix_delivery_attempts_at ON delivery_attempts (at);
