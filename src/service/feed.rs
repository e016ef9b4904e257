//! Decisions as they are made, for API subscribers (display, fleet, PAM) and for `status`.
//! Publishing never blocks the door: a subscriber that falls behind is dropped.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use serde_json::Value;

/// Decisions a subscriber may have unread before it is dropped.
const BACKLOG: usize = 256;

#[derive(Default)]
pub struct Feed {
    subscribers: Mutex<Vec<SyncSender<Value>>>,
    last: Mutex<Option<Value>>,
}

impl Feed {
    pub fn publish(&self, decision: Value) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| match s.try_send(decision.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::warn!("API: a decisions subscriber fell {BACKLOG} behind; dropped");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(decision);
    }

    pub fn subscribe(&self) -> Receiver<Value> {
        let (tx, rx) = sync_channel(BACKLOG);
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    pub fn last(&self) -> Option<Value> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscribers_get_decisions_and_slow_ones_are_dropped() {
        let feed = Feed::default();
        assert_eq!(feed.last(), None);
        let fast = feed.subscribe();
        let slow = feed.subscribe();
        for i in 0..BACKLOG + 1 {
            feed.publish(json!(i));
            assert_eq!(fast.recv().unwrap(), json!(i));
        }
        assert_eq!(feed.last(), Some(json!(BACKLOG)));
        assert_eq!(slow.try_iter().count(), BACKLOG);
        assert!(slow.recv().is_err(), "the slow subscriber was dropped");
    }
}
