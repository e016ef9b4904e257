//! Measuring accuracy: the protocols (verification pairs, open-set 1:N, conditions, heatmap),
//! threshold calibration, metrics (what the scores mean), the embedding cache that makes re-runs
//! fast, and plots.

pub mod cache;
pub mod calibrate;
pub mod metrics;
pub mod pairs;
pub mod plot;
pub mod protocols;
