//! The device edge: cameras in, LEDs / relay / display out. Nothing here knows about faces.

pub mod camera;
pub mod command;
pub mod display;
pub mod indicator;
pub mod preview;
#[cfg(feature = "v4l2")]
pub mod v4l2;
