//! facegate: offline face recognition for door and login terminals.
//!
//! The data path is one line, and so are the modules: [`image_io`] and [`vision::detect`] find
//! faces, [`vision::align`] cuts aligned chips, [`vision::embed`] turns them into vectors,
//! [`pipeline`] chains those for one image, [`gallery`] matches vectors against enrolled people.

pub mod config;
pub mod eval;
pub mod gallery;
pub mod image_io;
pub mod models;
pub mod pipeline;
pub mod vision;
