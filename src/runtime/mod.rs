//! The inference runtime: model files and their manifests (checksums verified at load), the
//! numeric variants of each model (fp32 / int8 / f16, and `precision = "auto"`), and facegate's
//! own kernels for the operators tract runs slowly.

pub mod models;
pub mod onnx_ops;
pub mod precision;
