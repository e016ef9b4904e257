//! Measuring accuracy: protocols (which images are compared) and metrics (what the scores mean).

pub mod metrics;
pub mod pairs;
