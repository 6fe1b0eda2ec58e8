-- Push device registry and per-delivery progress (see migrations/mysql/0002_devices.sql).

CREATE TABLE devices (
    token       TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    platform    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX ix_devices_user ON devices (user_id);

CREATE TABLE delivery_parts (
    delivery_id TEXT    NOT NULL,
    part        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, part)
);
