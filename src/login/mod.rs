//! Face login (pam_facegate, `facegate login-test`): the 1:1 decision over camera frames at the
//! login operating point, and the per-account rate limit. Pure: frames' scores in, outcomes out;
//! the service's `verify_user` handler feeds them from the camera.

/// Deciding one login attempt from several frames.
pub mod decide;
/// Failed attempts per account and the doubling pause after too many.
pub mod limit;

/// The login operating point: the false accept rate per comparison the login threshold is
/// calibrated for, ten times stricter than the door's 1e-4 (models/*.toml `threshold`).
pub const LOGIN_FAR: f64 = 1e-5;

/// The calibrated cosine threshold at [`LOGIN_FAR`] for an embedder (manifest `id`, fp32 model;
/// its f16/int8 variants use the same, as their door thresholds do), or None: then face login
/// needs an explicit config `[login] threshold`.
pub fn login_threshold(embedder_id: &str) -> Option<f32> {
    match embedder_id {
        // `facegate --embedder mobilefacenet calibrate --impostors ../shared/data/dev/lfw_disjoint
        // --far 1e-5` (2026-12-03): measured FAR 9.24e-6 over 1,191,056 impostor comparisons,
        // TAR 88.57 % over 140 genuine comparisons. Only ~11 impostor pairs lie above it: the
        // point is measured, but thinly; recalibrate with more strangers when there are some.
        "mobilefacenet-arcface" => Some(0.5937),
        // The same command with --embedder dlib (2026-12-03): measured FAR 9.24e-6 over the
        // same 1,191,056 impostor comparisons, TAR 52.14 % over 140 genuine comparisons.
        "dlib-resnet" => Some(0.9536),
        _ => None,
    }
}
