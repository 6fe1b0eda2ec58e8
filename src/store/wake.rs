//! The signal "something due was stored": the accept path, alarm routing and redrive raise it;
//! every dispatcher lane sees it, even one that was busy when it was raised (a `watch` channel
//! keeps the latest value, where a `Notify` would wake only one waiter).

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Wake {
    tx: watch::Sender<u64>,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            tx: watch::channel(0).0,
        }
    }
}

impl Wake {
    /// Something is due: wake every lane.
    pub fn raise(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver for one lane; `changed()` resolves after the next `raise`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
