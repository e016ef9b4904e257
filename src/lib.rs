//! facegate: offline face recognition for door and login terminals.
//!
//! The data path is one line, and the modules follow it:
//! camera frame → faces → aligned chips → embeddings → match → decision → outputs.
//! The core ([`vision`], [`gallery`], [`terminal::decide`]) is pure and testable with files;
//! devices sit at the edge in [`hw`]. `docs/architecture.md` draws the flow and who owns what.

/// The config file: every threshold and device setting, with documented defaults.
pub mod config;
/// Measuring accuracy: verification pairs, open-set 1:N, conditions, heatmaps, calibration, plots.
pub mod eval;
/// Enrolled people, their templates, 1:N search, and the gallery file on disk.
pub mod gallery;
/// The checks behind `facegate doctor`: config, models, gallery, devices, log, disk.
pub mod health;
/// The device edge: cameras in; LEDs, relay and display out. Nothing here knows about faces.
pub mod hw;
/// The key file: one secret behind the gallery's sealing and the decision log's chain.
pub mod keys;
/// Face login: the 1:1 decision over frames at the login threshold, and the per-account limit.
pub mod login;
/// Pictures in: still images decoded from files, camera frames and their pixel formats.
pub mod media;
/// Speed, measured: per-stage bench and the comparison against onnxruntime.
pub mod perf;
/// Model files, checksums, precision variants, and facegate's own tract kernels.
pub mod runtime;
/// The local API on a Unix socket: the one owner of the gallery while `facegate run` runs.
pub mod service;
/// What every command loads: config with overrides, models in their precision, the gallery.
pub mod setup;
/// The door terminal over time: the run loop, tracks and decisions, guided enrolment, the log.
pub mod terminal;
/// The pure vision core: detect, align, embed, quality, enhance, and the per-image pipeline.
pub mod vision;
