//! The door loop's analysed frames, for face login on a station that is a door too (`[login]
//! mode = "door" | "both"`): the loop publishes what it saw each frame, a `verify_user` request
//! listens for its few seconds. The camera is opened once, by the loop, and the loop's own
//! decisions do not change. Publishing never blocks the loop: a listener that falls behind
//! misses frames, it does not slow the door.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::terminal::AnalysedFrame;

/// Frames a listener may have unread before newer ones are dropped for it.
const BACKLOG: usize = 8;

#[derive(Default)]
pub struct FrameFeed {
    listeners: Mutex<Vec<SyncSender<Arc<AnalysedFrame>>>>,
}

impl FrameFeed {
    /// Whether anyone listens (the loop skips building the frame otherwise).
    pub fn wanted(&self) -> bool {
        !self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    pub fn publish(&self, frame: AnalysedFrame) {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if listeners.is_empty() {
            return;
        }
        let frame = Arc::new(frame);
        listeners.retain(|l| match l.try_send(frame.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// Listen until the receiver is dropped.
    pub fn listen(&self) -> Receiver<Arc<AnalysedFrame>> {
        let (tx, rx) = sync_channel(BACKLOG);
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(index: u64) -> AnalysedFrame {
        AnalysedFrame {
            index,
            ..AnalysedFrame::default()
        }
    }

    #[test]
    fn listeners_get_frames_a_slow_one_misses_some_and_a_gone_one_is_forgotten() {
        let feed = FrameFeed::default();
        assert!(!feed.wanted());
        feed.publish(frame(0));
        let slow = feed.listen();
        assert!(feed.wanted());
        for i in 1..=BACKLOG as u64 + 3 {
            feed.publish(frame(i));
        }
        let got: Vec<u64> = slow.try_iter().map(|f| f.index).collect();
        assert_eq!(got, (1..=BACKLOG as u64).collect::<Vec<_>>());
        feed.publish(frame(99));
        assert_eq!(slow.try_recv().unwrap().index, 99, "still listening");
        drop(slow);
        feed.publish(frame(100));
        assert!(!feed.wanted());
    }
}
