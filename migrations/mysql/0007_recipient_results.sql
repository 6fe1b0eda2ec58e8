-- Final results per recipient (SENS SMS and AlimTalk): a request the provider accepted is not
-- yet a message on a phone. The channel records each recipient it handed over ('sent', with
-- the provider's request id and, when known, message id), then looks the result up later
-- (see src/channels/sens/results.rs) until it is final: 'delivered' or 'failed' with the
-- carrier's code and reason, and what the SMS failover did; 'unknown' when the provider gave
-- no final answer within its window. `next_check_at` is NULL once final.
CREATE TABLE recipient_results (
    delivery_id   VARCHAR(36)  NOT NULL,
    recipient     VARCHAR(32)  NOT NULL,
    channel       VARCHAR(16)  NOT NULL,
    request_id    VARCHAR(100) NOT NULL,
    message_id    VARCHAR(100) NULL,
    status        VARCHAR(16)  NOT NULL,
    code          VARCHAR(32)  NULL,
    reason        VARCHAR(500) NULL,
    failover      VARCHAR(500) NULL,
    checks        INT          NOT NULL DEFAULT 0,
    next_check_at BIGINT       NULL,
    completed_at  BIGINT       NULL,
    created_at    BIGINT       NOT NULL,
    updated_at    BIGINT       NOT NULL,
    PRIMARY KEY (delivery_id, recipient)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE INDEX ix_recipient_results_due ON recipient_results (channel, next_check_at);
CREATE INDEX ix_recipient_results_created ON recipient_results (created_at);
