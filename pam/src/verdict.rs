//! One `verify_user` exchange (docs/service.md) and what its answer means for PAM.

use std::time::Instant;

use serde_json::{json, Value};

use crate::client::{ClientError, Connection};
use crate::ffi;
use crate::options::Options;

/// The service's answer to one login attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accepted {
        score: Option<f64>,
        person: Option<String>,
    },
    Rejected {
        why: Rejection,
        score: Option<f64>,
    },
    /// The service declined to try (`not_enrolled`, `rate_limited`, `unavailable`, ...).
    Declined {
        code: String,
        message: String,
    },
}

/// Why the face did not log the user in: the person at the camera may still type the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NotRecognised,
    Spoof,
    NoFace,
    Dark,
    TimedOut,
}

impl Rejection {
    fn parse(outcome: &str) -> Option<Self> {
        Some(match outcome {
            "not_recognised" => Self::NotRecognised,
            "spoof" => Self::Spoof,
            "no_face" => Self::NoFace,
            "dark" => Self::Dark,
            "timeout" => Self::TimedOut,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRecognised => "not_recognised",
            Self::Spoof => "spoof",
            Self::NoFace => "no_face",
            Self::Dark => "dark",
            Self::TimedOut => "timeout",
        }
    }
}

pub fn request(options: &Options, user: &str) -> Value {
    json!({
        "v": 1,
        "op": "verify_user",
        "user": user,
        "timeout_ms": options.camera_budget().as_millis() as u64,
        "liveness": options.liveness,
    })
}

/// Ask the service, passing each `{"prompt": ...}` event to `prompt`, until the final line or
/// the deadline.
pub fn ask(
    options: &Options,
    user: &str,
    deadline: Instant,
    prompt: &mut dyn FnMut(&str),
) -> Result<Verdict, ClientError> {
    let mut connection = Connection::connect(&options.socket, deadline)?;
    connection.send(&request(options, user), deadline)?;
    loop {
        let line = connection.receive(deadline)?;
        if let Some(event) = line.get("event") {
            if let Some(text) = event.get("prompt").and_then(Value::as_str) {
                prompt(text);
            }
            continue;
        }
        return interpret(&line);
    }
}

/// The final line: `{"ok":true,"result":{...}}` or `{"ok":false,"error":{...}}`.
pub fn interpret(line: &Value) -> Result<Verdict, ClientError> {
    let bad = |why: &str| ClientError::BadReply(format!("{why}: {line}"));
    match line.get("ok").and_then(Value::as_bool) {
        Some(true) => {
            let result = line.get("result").ok_or_else(|| bad("no result"))?;
            let outcome = result
                .get("outcome")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no outcome"))?;
            let score = result.get("score").and_then(Value::as_f64);
            if outcome == "accepted" {
                let person = result
                    .get("person")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                return Ok(Verdict::Accepted { score, person });
            }
            let why = Rejection::parse(outcome).ok_or_else(|| bad("unknown outcome"))?;
            Ok(Verdict::Rejected { why, score })
        }
        Some(false) => {
            let error = line.get("error");
            let field = |name: &str| {
                error
                    .and_then(|e| e.get(name))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            Ok(Verdict::Declined {
                code: field("code"),
                message: field("message"),
            })
        }
        None => Err(bad("neither a result nor an error")),
    }
}

/// What the module returns and tells the person: the PAM code, and a line for the screen (None:
/// say nothing, the password prompt follows anyway).
pub fn outcome(verdict: &Result<Verdict, ClientError>) -> (i32, Option<&'static str>) {
    match verdict {
        Ok(Verdict::Accepted { .. }) => (ffi::PAM_SUCCESS, None),
        Ok(Verdict::Rejected { why, .. }) => (
            ffi::PAM_AUTH_ERR,
            Some(match why {
                Rejection::NotRecognised => "Not recognised",
                Rejection::Spoof => "Photo detected",
                Rejection::NoFace => "No face seen",
                Rejection::Dark => "Too dark to see your face",
                Rejection::TimedOut => "Not recognised in time",
            }),
        ),
        // Unavailable, never a failure: `sufficient` and `[success=end default=ignore]` stacks
        // go straight on to the password.
        Ok(Verdict::Declined { code, .. }) => (
            ffi::PAM_AUTHINFO_UNAVAIL,
            match code.as_str() {
                // Every sudo of a user who never enrolled would say it: stay quiet.
                "not_enrolled" => None,
                "rate_limited" => Some("Face login paused after repeated failures"),
                "unavailable" => Some("Face login unavailable (camera busy or missing)"),
                "liveness_unavailable" => Some("Face login unavailable: no liveness check here"),
                "forbidden" => Some("Face login not allowed for this account here"),
                _ => Some("Face login unavailable"),
            },
        ),
        Err(ClientError::NoService(_)) => (ffi::PAM_AUTHINFO_UNAVAIL, None),
        Err(ClientError::TimedOut) => (
            ffi::PAM_AUTHINFO_UNAVAIL,
            Some("Face login did not answer in time"),
        ),
        Err(_) => (ffi::PAM_AUTHINFO_UNAVAIL, Some("Face login unavailable")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_follows_the_protocol() {
        let o = Options::parse(["timeout=2", "nolive"]);
        assert_eq!(
            request(&o, "alice"),
            json!({"v":1,"op":"verify_user","user":"alice","timeout_ms":1600,"liveness":false})
        );
    }

    #[test]
    fn every_answer_maps_to_a_code_that_keeps_the_password() {
        let ok = |result: Value| interpret(&json!({"v":1,"ok":true,"result":result}));
        let accepted = ok(json!({"outcome":"accepted","score":0.71,"person":"Alice"}));
        assert_eq!(
            accepted.as_ref().unwrap(),
            &Verdict::Accepted {
                score: Some(0.71),
                person: Some("Alice".into())
            }
        );
        assert_eq!(outcome(&accepted), (ffi::PAM_SUCCESS, None));
        for (name, text) in [
            ("not_recognised", "Not recognised"),
            ("spoof", "Photo detected"),
            ("no_face", "No face seen"),
            ("dark", "Too dark to see your face"),
            ("timeout", "Not recognised in time"),
        ] {
            let v = ok(json!({"outcome":name,"score":null,"person":null}));
            assert_eq!(outcome(&v), (ffi::PAM_AUTH_ERR, Some(text)), "{name}");
        }
        let declined =
            interpret(&json!({"v":1,"ok":false,"error":{"code":"not_enrolled","message":"x"}}));
        assert_eq!(outcome(&declined), (ffi::PAM_AUTHINFO_UNAVAIL, None));
        let limited = interpret(
            &json!({"v":1,"ok":false,"error":{"code":"rate_limited","message":"retry_after_s 30"}}),
        );
        assert_eq!(outcome(&limited).0, ffi::PAM_AUTHINFO_UNAVAIL);
        let no_liveness = interpret(
            &json!({"v":1,"ok":false,"error":{"code":"liveness_unavailable","message":"x"}}),
        );
        assert_eq!(
            outcome(&no_liveness),
            (
                ffi::PAM_AUTHINFO_UNAVAIL,
                Some("Face login unavailable: no liveness check here")
            )
        );
        assert!(ok(json!({"outcome":"maybe"})).is_err());
        assert!(interpret(&json!({"v":1})).is_err());
        assert_eq!(
            outcome(&Err(ClientError::TimedOut)).0,
            ffi::PAM_AUTHINFO_UNAVAIL
        );
    }
}
