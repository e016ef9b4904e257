//! `verify_user`: 1:1 verification of a login's linked person at the camera, for pam_facegate.
//! The caller has been authorised already (peer.rs: the peer owns the login, or is a reader or
//! admin). This is the service-side entry point the PAM work replaces with the camera and the
//! login operating point; it keeps this signature.

use serde_json::Value;

use crate::gallery::live::LiveGallery;

use super::peer::Peer;
use super::protocol::{ApiError, ErrorCode, VerifyUser};

/// What a verification may use.
pub struct VerifyContext<'a> {
    pub live: &'a LiveGallery,
    pub peer: &'a Peer,
}

/// Answer one `verify_user`: `emit` sends `{"prompt": ...}` events, the result is the final
/// object. People in this gallery format carry no login link, so no login has a linked person
/// and the answer is `not_enrolled`, saying so.
pub fn verify_user(
    ctx: &VerifyContext<'_>,
    request: &VerifyUser,
    _emit: &mut dyn FnMut(Value) -> std::io::Result<()>,
) -> Result<Value, ApiError> {
    let people = ctx.live.read().len();
    Err(ApiError::new(
        ErrorCode::NotEnrolled,
        format!(
            "no enrolled person is linked to login {:?} ({people} people enrolled, none linked \
             to a login in this gallery)",
            request.user
        ),
    ))
}
