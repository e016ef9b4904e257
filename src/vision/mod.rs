//! The pure vision core: detection, alignment, quality, liveness and embedding. No devices here.

pub mod align;
pub mod detect;
pub mod embed;
pub mod enhance;
pub mod liveness;
pub mod quality;
