//! facegate: offline face recognition for door and login terminals.
//!
//! The data path is one line, and so are the modules: [`image_io`] and [`vision::detect`] find
//! faces, [`vision::align`] cuts aligned chips, [`vision::embed`] turns them into vectors,
//! [`pipeline`] chains those for one image, [`gallery`] matches vectors against enrolled people.
//! The terminal adds time: [`hw::camera`] sources [`frame`]s, [`decide`] turns faces over frames
//! into accept / unknown, [`terminal`] runs that loop and drives [`hw::indicator`],
//! [`hw::display`] and the [`events`] log.

pub mod attendance;
pub mod config;
pub mod decide;
pub mod eval;
pub mod event_chain;
pub mod events;
pub mod frame;
pub mod gallery;
pub mod guided_enrol;
pub mod hw;
pub mod image_io;
pub mod keys;
pub mod models;
pub mod onnx_ops;
pub mod pipeline;
pub mod precision;
pub mod snapshots;
pub mod terminal;
pub mod vision;
