//! Ingress: the doors notifications come in by. Each one turns what it receives into
//! [`crate::accept::Entry`] values and hands them to the one accept path.
//!
//! - [`http`]: `POST /v1/notifications` and `POST /v1/notifications/batch`.
//! - [`sqs`]: the SQS consumer (the main path in production), SNS envelopes included.
//! - [`sns`]: `POST /webhooks/sns`, with signature verification.
//! - [`sqs_door`]: the SQS-compatible door (`SendMessage` straight into accept, no queue).
//! - [`watchers`]: allim polls HTTP JSON APIs and notifies about new items.
//! - [`classify`]: what an SQS body or SNS `Message` is (alarm, notification, rejected).

pub mod classify;
pub mod http;
pub mod sns;
pub mod sqs;
pub mod sqs_door;
pub mod watchers;
