//! The signal "something due was stored": the accept path, alarm routing and redrive raise it.
//! Each dispatcher lane has a signal of its own, keyed by its notification type, so a commit
//! wakes only the lanes that have something new: waking every lane for every notification made
//! each idle lane run an empty claiming transaction (at 100 notifications a second over four
//! channels, ~1,000 transactions a second on MariaDB, 10 per notification; bench/README.md,
//! 2026-12-07). A lane sees a signal raised while it was busy: a `watch` channel keeps the
//! latest value, where a `Notify` would wake only one waiter.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

#[derive(Clone, Debug, Default)]
pub struct Wake {
    /// One signal per lane, by notification type (added as lanes subscribe).
    lanes: Arc<RwLock<HashMap<String, watch::Sender<u64>>>>,
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

impl Wake {
    /// Something is due whose type the caller does not track (a redrive, an alarm's rows):
    /// wake every lane.
    pub fn raise(&self) {
        for tx in self.lanes.read().unwrap_or_else(|e| e.into_inner()).values() {
            bump(tx);
        }
    }

    /// Deliveries of these notification types are due: wake their lanes.
    pub fn raise_for<'a>(&self, kinds: impl IntoIterator<Item = &'a str>) {
        let lanes = self.lanes.read().unwrap_or_else(|e| e.into_inner());
        for kind in kinds {
            if let Some(tx) = lanes.get(kind) {
                bump(tx);
            }
        }
    }

    /// A receiver for the lane of `kind`; `changed()` resolves after the next raise that
    /// names it (or names nothing).
    pub fn subscribe(&self, kind: &str) -> watch::Receiver<u64> {
        self.lanes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raise_wakes_the_lanes_it_names_and_a_plain_raise_wakes_all() {
        let wake = Wake::default();
        let mut sms = wake.subscribe("SMS");
        let mut slack = wake.subscribe("SLACK");
        // A type with no lane (dispatch off, or a channel not built) is ignored.
        wake.raise_for(["SMS", "EMAIL"]);
        assert!(sms.has_changed().unwrap());
        assert!(!slack.has_changed().unwrap());
        sms.mark_unchanged();
        // Raised while the lane was busy: still seen when it next looks.
        wake.raise_for(["SLACK", "SLACK"]);
        assert!(!sms.has_changed().unwrap());
        assert!(slack.has_changed().unwrap());
        slack.mark_unchanged();
        wake.raise();
        assert!(sms.has_changed().unwrap() && slack.has_changed().unwrap());
        // Two subscribers of one type (two dispatchers in one process) share its signal.
        let mut sms2 = wake.subscribe("SMS");
        sms2.mark_unchanged();
        wake.raise_for(["SMS"]);
        assert!(sms2.has_changed().unwrap());
    }
}
