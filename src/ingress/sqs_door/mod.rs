//! The SQS-compatible door (issue 12, in progress): producers point their AWS SDK's SQS
//! endpoint at allim and `SendMessage` straight into the accept path, with no queue.
//!
//! What is here so far: [`sigv4`], the request signature check. The door itself (the JSON and
//! query protocols, the actions, the MD5 fields, the listener) is not written yet; nothing
//! routes to this module.

pub mod sigv4;
