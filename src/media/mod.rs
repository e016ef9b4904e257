//! Pictures in: still images decoded from files, and camera frames with their pixel formats.
//! Nothing here knows about faces.

pub mod frame;
pub mod image_io;
