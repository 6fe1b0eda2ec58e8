//! Integration tests: one binary, the real application on port 0, real SQLite and MariaDB,
//! moto as the SQS server.

mod helpers;
mod providers;
mod support;

mod alarm_race;
mod alimtalk;
mod api;
mod channels;
mod chaos;
mod claim;
mod cli;
mod console;
mod deadlock;
mod deploy;
mod dispatch;
mod email;
mod fuzz;
mod infra;
mod lanes;
mod native;
mod rds;
mod sns;
mod sqlite_checkpoint;
mod sqs;
mod sqs_door;
mod three_channels;
mod watchers;
mod webhooks;
