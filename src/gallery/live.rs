//! The gallery a running terminal matches against, shared with the API that changes it.
//!
//! Writers build the next gallery on a copy (saving it to disk is their business) and swap it in
//! with a new generation number; the matcher takes a read guard per frame, so one frame is
//! matched against one gallery. Whoever removes people also needs to know that the matcher has
//! dropped its decision tracks for them: the terminal acknowledges each generation at the top of
//! its loop ([`LiveGallery::changes_since`] / [`LiveGallery::acknowledge`]), and a writer waits
//! for that ([`LiveGallery::wait_applied`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::Gallery;

/// Removed person ids are kept this many generations for a matcher that fell behind; one that
/// falls further behind purges every track instead.
const KEEP_REMOVALS: usize = 1024;

struct State {
    gallery: Gallery,
    generation: u64,
    /// (generation that removed them, person id), oldest first.
    removed: Vec<(u64, u32)>,
    /// The newest generation some of whose removals were dropped from `removed`.
    forgotten: u64,
}

pub struct LiveGallery {
    state: RwLock<State>,
    /// Serialises writers (read, copy, change, save, swap) without blocking the matcher.
    writer: Mutex<()>,
    applied: Mutex<u64>,
    applied_changed: Condvar,
    matchers: AtomicUsize,
}

/// What changed since the generation a matcher last applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub generation: u64,
    pub removed: Removed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    People(Vec<u32>),
    /// Too far behind to list them: forget every track.
    Unknown,
}

/// A gallery as one frame sees it.
pub struct View<'a>(RwLockReadGuard<'a, State>);

impl std::ops::Deref for View<'_> {
    type Target = Gallery;
    fn deref(&self) -> &Gallery {
        &self.0.gallery
    }
}

/// Registered while a matcher runs; writers only wait for matchers that exist.
pub struct MatcherGuard<'a>(&'a LiveGallery);

impl Drop for MatcherGuard<'_> {
    fn drop(&mut self) {
        self.0.matchers.fetch_sub(1, Ordering::SeqCst);
        self.0.applied_changed.notify_all();
    }
}

impl LiveGallery {
    pub fn new(gallery: Gallery) -> Self {
        Self {
            state: RwLock::new(State {
                gallery,
                generation: 0,
                removed: Vec::new(),
                forgotten: 0,
            }),
            writer: Mutex::new(()),
            applied: Mutex::new(0),
            applied_changed: Condvar::new(),
            matchers: AtomicUsize::new(0),
        }
    }

    pub fn read(&self) -> View<'_> {
        View(self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn generation(&self) -> u64 {
        self.read().0.generation
    }

    /// Change a copy of the gallery with `change` (which may save it; on error nothing changes),
    /// then make the copy current. Returns `change`'s result and the new generation.
    pub fn update<T, E>(
        &self,
        change: impl FnOnce(&mut Gallery) -> Result<T, E>,
    ) -> Result<(T, u64), E> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.read().clone();
        let out = change(&mut next)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let generation = state.generation + 1;
        let gone: Vec<u32> = state
            .gallery
            .people()
            .iter()
            .map(|p| p.id)
            .filter(|id| next.people().iter().all(|p| p.id != *id))
            .collect();
        state
            .removed
            .extend(gone.into_iter().map(|id| (generation, id)));
        let excess = state.removed.len().saturating_sub(KEEP_REMOVALS);
        if let Some(&(g, _)) = state.removed[..excess].last() {
            state.forgotten = g;
        }
        state.removed.drain(..excess);
        state.gallery = next;
        state.generation = generation;
        Ok((out, generation))
    }

    /// For the matcher: what changed after generation `seen`, or `None` if nothing did.
    pub fn changes_since(&self, seen: u64) -> Option<Changes> {
        let state = self.read();
        let s = &state.0;
        if s.generation == seen {
            return None;
        }
        let removed = if seen >= s.forgotten {
            Removed::People(
                s.removed
                    .iter()
                    .filter(|(g, _)| *g > seen)
                    .map(|(_, id)| *id)
                    .collect(),
            )
        } else {
            Removed::Unknown
        };
        Some(Changes {
            generation: s.generation,
            removed,
        })
    }

    /// For the matcher: its decision state now reflects `generation`.
    pub fn acknowledge(&self, generation: u64) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        *applied = (*applied).max(generation);
        self.applied_changed.notify_all();
    }

    /// Register a running matcher until the guard is dropped.
    pub fn attach_matcher(&self) -> MatcherGuard<'_> {
        self.matchers.fetch_add(1, Ordering::SeqCst);
        // Everything up to now is what it starts from.
        self.acknowledge(self.generation());
        MatcherGuard(self)
    }

    /// Wait until the running matcher (if any) has applied `generation`. False on timeout.
    pub fn wait_applied(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *applied >= generation || self.matchers.load(Ordering::SeqCst) == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            applied = self
                .applied_changed
                .wait_timeout(applied, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::testutil::random_gallery;
    use crate::gallery::Selector;

    #[test]
    fn removals_are_reported_once_per_generation_and_a_writer_waits_for_the_matcher() {
        let live = LiveGallery::new(random_gallery(1, 8, 3, 1));
        assert_eq!(live.changes_since(0), None);
        let guard = live.attach_matcher();
        let (person, generation) = live.update(|g| g.remove(&Selector::Id(2))).unwrap();
        assert_eq!(person.id, 2);
        assert_eq!(live.read().len(), 2);
        assert!(!live.wait_applied(generation, Duration::from_millis(10)));
        let changes = live.changes_since(0).unwrap();
        assert_eq!(changes.removed, Removed::People(vec![2]));
        std::thread::scope(|s| {
            s.spawn(|| live.acknowledge(changes.generation));
            assert!(live.wait_applied(generation, Duration::from_secs(5)));
        });
        assert_eq!(live.changes_since(generation), None);
        // A failed change changes nothing.
        let err = live.update(|g| g.remove(&Selector::Id(2))).unwrap_err();
        assert!(matches!(err, crate::gallery::GalleryError::NotFound(_)));
        assert_eq!(live.generation(), generation);
        // With no matcher running nobody is waited for.
        drop(guard);
        let (_, g2) = live.update(|g| g.remove(&Selector::Id(1))).unwrap();
        assert!(live.wait_applied(g2, Duration::ZERO));
    }
}
