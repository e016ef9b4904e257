//! The pure vision core: detection, alignment, quality, liveness and embedding, and the
//! pipeline that chains them for one image. No devices here.

pub mod align;
pub mod detect;
pub mod embed;
pub mod enhance;
pub mod liveness;
pub mod pipeline;
pub mod quality;
