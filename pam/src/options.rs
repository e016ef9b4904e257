//! The module's arguments from the PAM stack line, e.g.
//! `auth sufficient pam_facegate.so timeout=3 debug`.

use std::path::PathBuf;
use std::time::Duration;

/// Where the service listens unless `socket=` says otherwise (docs/service.md).
pub const DEFAULT_SOCKET: &str = "/run/facegate/api.sock";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);
/// A login prompt that waits longer than this for a face is a hang, not a feature.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The whole attempt, connect to answer: the module returns by then whatever happens.
    pub timeout: Duration,
    /// Liveness is asked for unless the stack line says `nolive` (and the service may still
    /// refuse a request without it: config `[login] allow_nolive`).
    pub liveness: bool,
    /// Every step to syslog at LOG_DEBUG.
    pub debug: bool,
    pub socket: PathBuf,
    /// Arguments this version does not know; logged, never fatal (a typo must not lock anyone
    /// out of the password that follows).
    pub unknown: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            liveness: true,
            debug: false,
            socket: PathBuf::from(DEFAULT_SOCKET),
            unknown: Vec::new(),
        }
    }
}

impl Options {
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Self {
        let mut options = Self::default();
        for arg in args {
            match arg.split_once('=') {
                None if arg == "debug" => options.debug = true,
                None if arg == "nolive" => options.liveness = false,
                Some(("timeout", value)) => match parse_duration(value) {
                    Some(t) => options.timeout = t.clamp(MIN_TIMEOUT, MAX_TIMEOUT),
                    None => options.unknown.push(arg.to_string()),
                },
                Some(("socket", path)) if !path.is_empty() => options.socket = PathBuf::from(path),
                _ => options.unknown.push(arg.to_string()),
            }
        }
        options
    }

    /// How long the service may look at the camera: the module's own deadline less a margin
    /// for the last frame's processing and the answer's trip, so the answer arrives in time.
    pub fn camera_budget(&self) -> Duration {
        let margin =
            (self.timeout / 5).clamp(Duration::from_millis(200), Duration::from_millis(800));
        self.timeout.saturating_sub(margin)
    }
}

/// `4`, `2.5`, `4s` (seconds) or `1500ms`.
fn parse_duration(value: &str) -> Option<Duration> {
    let (number, scale) = match value.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (value.strip_suffix('s').unwrap_or(value), 1.0),
    };
    let secs = number.parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ask_for_liveness_and_four_seconds() {
        let o = Options::parse([]);
        assert_eq!(o.timeout, Duration::from_secs(4));
        assert!(o.liveness && !o.debug);
        assert_eq!(o.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(o.camera_budget(), Duration::from_millis(3200));
    }

    #[test]
    fn every_option_is_read() {
        let o = Options::parse(["timeout=1500ms", "nolive", "debug", "socket=/tmp/x.sock"]);
        assert_eq!(o.timeout, Duration::from_millis(1500));
        assert!(!o.liveness && o.debug);
        assert_eq!(o.socket, PathBuf::from("/tmp/x.sock"));
        assert!(o.unknown.is_empty());
        assert_eq!(
            Options::parse(["timeout=2.5"]).timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(
            Options::parse(["timeout=3s"]).timeout,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn bad_or_extreme_values_stay_safe() {
        let o = Options::parse(["timeout=forever", "live=no", "socket="]);
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        assert!(o.liveness, "only the exact word nolive turns liveness off");
        assert_eq!(o.unknown, ["timeout=forever", "live=no", "socket="]);
        assert_eq!(Options::parse(["timeout=3600"]).timeout, MAX_TIMEOUT);
        assert_eq!(Options::parse(["timeout=0.01"]).timeout, MIN_TIMEOUT);
        assert_eq!(Options::parse(["timeout=-1"]).timeout, DEFAULT_TIMEOUT);
    }
}
