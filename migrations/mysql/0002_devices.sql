-- Push device registry and per-delivery progress.

-- One row per FCM registration token. A token belongs to one user at a time: registering it
-- again (e.g. after a log-in as someone else) moves it.
CREATE TABLE devices (
    token       VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id     VARCHAR(128)  NOT NULL,
    -- android | ios | web
    platform    VARCHAR(16)   NOT NULL,
    created_at  BIGINT        NOT NULL,
    updated_at  BIGINT        NOT NULL,
    KEY ix_devices_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Parts of a delivery already sent (one FCM token, one 100-recipient SENS request), so that a
-- retry of the delivery sends only what is missing, never a second copy.
CREATE TABLE delivery_parts (
    delivery_id VARCHAR(36) NOT NULL,
    -- e.g. "sms:0", "fcm:<sha-256 of the token>"
    part        VARCHAR(80) NOT NULL,
    created_at  BIGINT      NOT NULL,
    PRIMARY KEY (delivery_id, part)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;
