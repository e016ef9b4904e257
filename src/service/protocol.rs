//! The local API's wire format (v1, see docs/service.md): one JSON object per line. This module
//! decodes requests and encodes responses; it knows nothing of sockets or the gallery.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub const VERSION: u64 = 1;
/// The longest request line, newline excluded.
pub const MAX_LINE: usize = 16 << 20;

/// The error codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    TooLarge,
    UnsupportedVersion,
    Forbidden,
    NotFound,
    Conflict,
    Unavailable,
    NotEnrolled,
    RateLimited,
    /// verify_user asked for liveness and this service cannot check it.
    LivenessUnavailable,
    Internal,
}

/// A failed request: its code and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

/// Faces to enrol: photos (base64 of JPEG/PNG bytes) or ready embeddings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Faces {
    pub images: Option<Vec<String>>,
    pub embeddings: Option<Vec<Vec<f32>>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Enroll {
    pub name: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(flatten)]
    pub faces: Faces,
    #[serde(default)]
    pub largest: bool,
    #[serde(default)]
    pub no_liveness: bool,
    /// Refuse (store nothing, `conflict`) when a face is a look-alike of someone else enrolled,
    /// instead of storing it with a warning.
    #[serde(default)]
    pub strict: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Append {
    pub person: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(flatten)]
    pub faces: Faces,
    #[serde(default)]
    pub largest: bool,
    #[serde(default)]
    pub no_liveness: bool,
    /// Refuse (store nothing, `conflict`) when a face is a look-alike of someone else enrolled,
    /// instead of storing it with a warning.
    #[serde(default)]
    pub strict: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VerifyUser {
    pub user: String,
    #[serde(default = "default_verify_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "yes")]
    pub liveness: bool,
}

fn default_verify_timeout() -> u64 {
    4000
}

fn yes() -> bool {
    true
}

/// One request, decoded and checked for shape (not yet for permission).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status {},
    List {},
    Enroll(Enroll),
    Append(Append),
    Remove { person: String },
    Clear {},
    Identify { image: String },
    Decisions {},
    VerifyUser(VerifyUser),
}

impl Request {
    pub fn op(&self) -> &'static str {
        match self {
            Request::Status {} => "status",
            Request::List {} => "list",
            Request::Enroll(_) => "enroll",
            Request::Append(_) => "append",
            Request::Remove { .. } => "remove",
            Request::Clear {} => "clear",
            Request::Identify { .. } => "identify",
            Request::Decisions {} => "decisions",
            Request::VerifyUser(_) => "verify_user",
        }
    }

    /// Whether the request changes the gallery (admin only).
    pub fn changes_gallery(&self) -> bool {
        matches!(
            self,
            Request::Enroll(_) | Request::Append(_) | Request::Remove { .. } | Request::Clear {}
        )
    }
}

const OPS: &str = "status, list, enroll, append, remove, clear, identify, decisions, verify_user";

/// Decode one request line (without its newline). Every failure is a `bad_request` or
/// `unsupported_version` with a message that says what is wrong; it never panics.
pub fn decode_request(line: &[u8]) -> Result<Request, ApiError> {
    if line.len() > MAX_LINE {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!("request of {} bytes; the limit is {MAX_LINE}", line.len()),
        ));
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| ApiError::bad_request(format!("the request is not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("the request is not JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(ApiError::bad_request("the request must be a JSON object"));
    };
    match map.remove("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(v) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {v} is not supported; this service speaks v{VERSION}"),
            ))
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "the request has no \"v\" (protocol version; use {VERSION})"
            )))
        }
    }
    let op = match map.get("op") {
        Some(Value::String(op)) => op.clone(),
        Some(_) => return Err(ApiError::bad_request("\"op\" must be a string")),
        None => {
            return Err(ApiError::bad_request(format!(
                "the request has no \"op\" ({OPS})"
            )))
        }
    };
    let request: Request = serde_json::from_value(Value::Object(map)).map_err(|e| {
        if e.to_string().starts_with("unknown variant") {
            ApiError::bad_request(format!("unknown op {op:?} (ops: {OPS})"))
        } else {
            ApiError::bad_request(format!("op {op}: {e}"))
        }
    })?;
    check(&request)?;
    Ok(request)
}

/// What serde cannot say: exactly one kind of faces, nothing empty.
fn check(request: &Request) -> Result<(), ApiError> {
    let faces = match request {
        Request::Enroll(e) => &e.faces,
        Request::Append(a) => &a.faces,
        _ => return Ok(()),
    };
    match (&faces.images, &faces.embeddings) {
        (Some(i), None) if !i.is_empty() => Ok(()),
        (None, Some(e)) if !e.is_empty() => Ok(()),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give \"images\" or \"embeddings\", not both",
        )),
        _ => Err(ApiError::bad_request(
            "give at least one face: \"images\" (base64 JPEG/PNG) or \"embeddings\"",
        )),
    }
}

/// `{"v":1,"ok":true,"result":...}` as one line, newline included.
pub fn ok_line(result: Value) -> String {
    line(json!({ "v": VERSION, "ok": true, "result": result }))
}

pub fn error_line(error: &ApiError) -> String {
    line(json!({
        "v": VERSION,
        "ok": false,
        "error": { "code": error.code, "message": error.message },
    }))
}

pub fn event_line(event: Value) -> String {
    line(json!({ "v": VERSION, "event": event }))
}

fn line(value: Value) -> String {
    let mut s = value.to_string();
    s.push('\n');
    s
}

/// A request as the client sends it.
pub fn request(op: &str, fields: Value) -> String {
    let mut map = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.insert("v".into(), json!(VERSION));
    map.insert("op".into(), json!(op));
    line(Value::Object(map))
}

/// One line from the service, as the client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok(Value),
    Err(ApiError),
    Event(Value),
}

pub fn decode_reply(line: &str) -> Result<Reply, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("the service sent no JSON: {e}"))?;
    if v["v"] != json!(VERSION) {
        return Err(format!(
            "the service speaks protocol {}, not v{VERSION}",
            v["v"]
        ));
    }
    if let Some(event) = v.get("event") {
        return Ok(Reply::Event(event.clone()));
    }
    match v["ok"].as_bool() {
        Some(true) => Ok(Reply::Ok(v["result"].clone())),
        Some(false) => {
            let code =
                serde_json::from_value(v["error"]["code"].clone()).unwrap_or(ErrorCode::Internal);
            let message = v["error"]["message"].as_str().unwrap_or("").to_string();
            Ok(Reply::Err(ApiError { code, message }))
        }
        None => Err(format!(
            "the service sent neither a result nor an error: {line}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(line: &str) -> ErrorCode {
        decode_request(line.as_bytes()).unwrap_err().code
    }

    #[test]
    fn requests_of_every_op_decode() {
        let cases = [
            (r#"{"v":1,"op":"status"}"#, Request::Status {}),
            (r#"{"v":1,"op":"list","extra":1}"#, Request::List {}),
            (r#"{"v":1,"op":"clear"}"#, Request::Clear {}),
            (
                r#"{"v":1,"op":"remove","person":"Ada"}"#,
                Request::Remove {
                    person: "Ada".into(),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(decode_request(line.as_bytes()).unwrap(), want, "{line}");
        }
        let e =
            decode_request(br#"{"v":1,"op":"enroll","name":"Ada","embeddings":[[1,0]]}"#).unwrap();
        assert!(
            matches!(e, Request::Enroll(Enroll { ref name, ref faces, strict: false, .. }) if name == "Ada" && faces.embeddings == Some(vec![vec![1.0, 0.0]]))
        );
        let a = decode_request(
            br#"{"v":1,"op":"append","person":"3","embeddings":[[1,0]],"strict":true}"#,
        )
        .unwrap();
        assert!(
            matches!(a, Request::Append(Append { strict: true, .. })),
            "{a:?}"
        );
        let v = decode_request(br#"{"v":1,"op":"verify_user","user":"ada"}"#).unwrap();
        assert_eq!(
            v,
            Request::VerifyUser(VerifyUser {
                user: "ada".into(),
                timeout_ms: 4000,
                liveness: true
            })
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        assert_eq!(code(r#"{"op":"status"}"#), ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"v":2,"op":"status"}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            code(r#"{"v":"1","op":"status"}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(code("[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code("{"), ErrorCode::BadRequest);
        let e = decode_request(br#"{"v":1,"op":"explode"}"#).unwrap_err();
        assert!(
            e.message.contains("unknown op \"explode\""),
            "{}",
            e.message
        );
        let e = decode_request(br#"{"v":1,"op":"remove"}"#).unwrap_err();
        assert!(e.message.contains("person"), "{}", e.message);
        let e = decode_request(br#"{"v":1,"op":"enroll","name":"A"}"#).unwrap_err();
        assert!(e.message.contains("at least one face"), "{}", e.message);
        let both = r#"{"v":1,"op":"enroll","name":"A","images":["x"],"embeddings":[[1]]}"#;
        assert!(decode_request(both.as_bytes())
            .unwrap_err()
            .message
            .contains("not both"));
        assert_eq!(code("\u{0}\u{1}"), ErrorCode::BadRequest);
        assert_eq!(
            decode_request(&[0xff, 0xfe]).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn replies_round_trip() {
        let e = ApiError::new(ErrorCode::Forbidden, "no");
        assert_eq!(
            decode_reply(&error_line(&e)).unwrap(),
            Reply::Err(e.clone())
        );
        assert_eq!(
            decode_reply(&ok_line(json!({"a":1}))).unwrap(),
            Reply::Ok(json!({"a":1}))
        );
        assert_eq!(
            decode_reply(&event_line(json!({"b":2}))).unwrap(),
            Reply::Event(json!({"b":2}))
        );
    }

    proptest! {
        // A few hundred cases in CI; more by hand: PROPTEST_CASES=100000 cargo test decoder.
        #[test]
        fn decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_json_like_text(
            op in "(status|list|enroll|append|remove|clear|identify|decisions|verify_user|[a-z]{0,8})",
            key in "[a-z_]{0,10}",
            value in prop_oneof![
                Just("null".to_string()), Just("[]".to_string()), Just("{}".to_string()),
                "-?[0-9]{1,20}(\\.[0-9]{0,5})?(e[0-9]{1,3})?", "\"[^\"\\\\]{0,20}\"",
                Just("[[1e39,-0.0]]".to_string()), Just("[\"\"]".to_string()),
            ],
            v in prop_oneof![Just("1".to_string()), "[0-9a-z\"]{0,3}"],
        ) {
            let line = format!("{{\"v\":{v},\"op\":\"{op}\",\"{key}\":{value}}}");
            match decode_request(line.as_bytes()) {
                Ok(r) => prop_assert_eq!(r.op(), op.as_str()),
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
        }
    }
}
