-- One sender per channel across all tasks (see migrations/mysql/0004_lanes.sql).
CREATE TABLE lanes (
    channel      TEXT    NOT NULL PRIMARY KEY,
    owner        TEXT    NULL,
    lease_until  INTEGER NULL,
    updated_at   INTEGER NOT NULL
);
