//! facegate: offline face recognition for door and login terminals.
//!
//! The data path is one line, and so are the modules: [`image_io`] and [`vision::detect`] find
//! faces, [`vision::align`] cuts aligned chips, [`vision::embed`] turns them into vectors,
//! [`pipeline`] chains those for one image, [`gallery`] matches vectors against enrolled people.
//! The terminal adds time: [`hw::camera`] sources [`frame`]s, [`decide`] turns faces over frames
//! into accept / unknown, [`terminal`] runs that loop and drives [`hw::indicator`],
//! [`hw::display`] and the [`events`] log.

// The files have moved into their subsystem folders; the next commit updates the module paths.
pub mod config;
#[path = "terminal/decide.rs"]
pub mod decide;
pub mod eval;
#[path = "terminal/events.rs"]
pub mod events;
#[path = "media/frame.rs"]
pub mod frame;
pub mod gallery;
#[path = "terminal/guided_enrol.rs"]
pub mod guided_enrol;
pub mod hw;
#[path = "media/image_io.rs"]
pub mod image_io;
#[path = "runtime/models.rs"]
pub mod models;
#[path = "runtime/onnx_ops.rs"]
pub mod onnx_ops;
#[path = "vision/pipeline.rs"]
pub mod pipeline;
#[path = "runtime/precision.rs"]
pub mod precision;
#[path = "terminal/snapshots.rs"]
pub mod snapshots;
#[path = "terminal/mod.rs"]
pub mod terminal;
pub mod vision;
