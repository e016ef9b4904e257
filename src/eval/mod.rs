//! Measuring accuracy: protocols (which images are compared), metrics (what the scores mean),
//! the embedding cache that makes re-runs fast, and plots.

pub mod cache;
pub mod metrics;
pub mod open_set;
pub mod pairs;
pub mod plot;
