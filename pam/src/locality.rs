//! Is there a person in front of this machine's camera? A remote session (ssh, a PAM_RHOST) or
//! a closed laptop lid means no: face login steps aside at once and the password is asked.

use std::path::Path;

/// Where Linux's ACPI button driver reports each lid ("state:      open|closed").
pub const LID_DIR: &str = "/proc/acpi/button/lid";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locality {
    Local,
    /// Why the session looks remote.
    Remote(String),
    LidClosed,
}

/// What the session tells: the PAM items, the environment (the PAM one first, then the
/// process's: sudo run inside ssh keeps SSH_CONNECTION), and the lid switch.
pub struct Session<'a> {
    pub rhost: Option<&'a str>,
    pub tty: Option<&'a str>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub lid_dir: &'a Path,
}

pub fn locality(session: &Session<'_>) -> Locality {
    if let Some(host) = session.rhost.filter(|h| !h.is_empty()) {
        if !matches!(host, "localhost" | "127.0.0.1" | "::1") {
            return Locality::Remote(format!("remote host {host}"));
        }
    }
    if let Some(tty) = session.tty.filter(|t| t.starts_with("ssh")) {
        return Locality::Remote(format!("tty {tty}"));
    }
    for var in ["SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"] {
        if (session.env)(var).is_some_and(|v| !v.is_empty()) {
            return Locality::Remote(format!("{var} is set"));
        }
    }
    if lids_all_closed(session.lid_dir) {
        return Locality::LidClosed;
    }
    Locality::Local
}

/// True when the machine has lids and every one reports closed (no lid: a desktop or a board).
fn lids_all_closed(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut lids = 0;
    for entry in entries.flatten() {
        let Ok(state) = std::fs::read_to_string(entry.path().join("state")) else {
            continue;
        };
        lids += 1;
        if !state.contains("closed") {
            return false;
        }
    }
    lids > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn remote_sessions_and_closed_lids_are_seen() {
        let lids = tempfile::tempdir().unwrap();
        let base = Session {
            rhost: None,
            tty: Some("/dev/tty1"),
            env: &no_env,
            lid_dir: lids.path(),
        };
        assert_eq!(locality(&base), Locality::Local);
        let remote = Session {
            rhost: Some("10.0.0.7"),
            ..base
        };
        assert!(matches!(locality(&remote), Locality::Remote(_)));
        let loopback = Session {
            rhost: Some("localhost"),
            ..base
        };
        assert_eq!(locality(&loopback), Locality::Local);
        let sshd = Session {
            tty: Some("ssh"),
            ..base
        };
        assert!(matches!(locality(&sshd), Locality::Remote(_)));
        let ssh_env =
            |name: &str| (name == "SSH_CONNECTION").then(|| "10.0.0.7 1 10.0.0.1 22".into());
        let sudo_in_ssh = Session {
            env: &ssh_env,
            ..base
        };
        assert!(matches!(locality(&sudo_in_ssh), Locality::Remote(_)));

        std::fs::create_dir(lids.path().join("LID0")).unwrap();
        std::fs::write(lids.path().join("LID0/state"), "state:      open\n").unwrap();
        assert_eq!(locality(&base), Locality::Local);
        std::fs::write(lids.path().join("LID0/state"), "state:      closed\n").unwrap();
        assert_eq!(locality(&base), Locality::LidClosed);
    }
}
