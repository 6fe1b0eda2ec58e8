-- Every send attempt of a delivery and what came of it (see the MySQL migration).
CREATE TABLE delivery_attempts (
    id          TEXT    NOT NULL PRIMARY KEY,
    delivery_id TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT    NULL
);
CREATE INDEX ix_delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
CREATE INDEX ix_delivery_attempts_at ON delivery_attempts (at);
