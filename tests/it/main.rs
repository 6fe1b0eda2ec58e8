//! Integration tests: one binary, the real application on port 0, real SQLite and MariaDB.

mod helpers;

mod api;
