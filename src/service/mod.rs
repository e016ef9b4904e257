//! The service: while `facegate run` runs it owns the gallery and serves a local API on a Unix
//! socket (see docs/service.md and [`protocol`]). Changes made through it reach the running
//! matcher before they are answered; the CLI is a client of it ([`client`]) and touches the
//! gallery file itself only when no service runs.

pub mod client;
pub mod feed;
pub mod frames;
pub mod ops;
pub mod peer;
pub mod protocol;
pub mod server;
pub mod verify;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[service]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceParams {
    /// The API socket (systemd makes its folder: `RuntimeDirectory=facegate`).
    pub socket: PathBuf,
    /// Permission bits of the socket; only its owner and group can connect.
    pub socket_mode: u32,
    /// The socket's group (left as is when the group does not exist).
    pub socket_group: String,
    /// Members may change the gallery (root always may).
    pub admin_group: String,
    /// Members may read status and the list, identify, and follow decisions.
    pub reader_group: String,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ServiceParams {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/run/facegate/api.sock"),
            socket_mode: 0o660,
            socket_group: "facegate".into(),
            admin_group: "facegate-admin".into(),
            reader_group: "facegate".into(),
            max_connections: 16,
        }
    }
}
