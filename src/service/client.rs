//! The CLI's side of the API: find the service that owns a gallery, send requests, read
//! replies. When no service answers, the CLI works on the file itself (under the lock).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::protocol::{decode_reply, request, ApiError, ErrorCode, Reply};

/// A slow enrolment (many photos embedded on a small board) still answers within this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the facegate service's socket {} refused this user ({error}): run as root or as a \
         member of group facegate-admin (changes) or facegate (reading)",
        socket.display()
    )]
    Denied { socket: PathBuf, error: io::Error },
    #[error("talking to the facegate service at {}: {error}", socket.display())]
    Io { socket: PathBuf, error: io::Error },
    #[error("the facegate service refused: {0} ({code})", code = code_name(.0.code))]
    Api(ApiError),
    #[error("the facegate service at {}: {message}", socket.display())]
    Protocol { socket: PathBuf, message: String },
}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Which path a command took, for its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Service,
    File,
}

pub struct Client {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect; `None` when no service listens there (no socket, or a stale one).
    pub fn connect(socket: &Path) -> Result<Option<Client>, ClientError> {
        let stream = match UnixStream::connect(socket) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                return Err(ClientError::Denied {
                    socket: socket.to_path_buf(),
                    error,
                })
            }
            Err(error) => {
                return Err(ClientError::Io {
                    socket: socket.to_path_buf(),
                    error,
                })
            }
        };
        let io = |error| ClientError::Io {
            socket: socket.to_path_buf(),
            error,
        };
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Some(Client {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
        }))
    }

    /// The service at `socket` if it answers and owns the gallery file `gallery`. A service
    /// of another gallery is not this command's business: `None`, as if none ran.
    pub fn for_gallery(socket: &Path, gallery: &Path) -> Result<Option<Client>, ClientError> {
        let Some(mut client) = Client::connect(socket)? else {
            return Ok(None);
        };
        let status = client.call("status", json!({}))?;
        let theirs = status["gallery"]["path"].as_str().map(PathBuf::from);
        let same = theirs.is_some_and(|t| same_file(&t, gallery));
        Ok(same.then_some(client))
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send one request and wait for its result (events before it are passed to `on_event`).
    pub fn call_with_events(
        &mut self,
        op: &str,
        fields: Value,
        on_event: &mut dyn FnMut(Value),
    ) -> Result<Value, ClientError> {
        self.send(op, fields)?;
        loop {
            match self.next()? {
                Reply::Ok(v) => return Ok(v),
                Reply::Err(e) => return Err(ClientError::Api(e)),
                Reply::Event(e) => on_event(e),
            }
        }
    }

    pub fn call(&mut self, op: &str, fields: Value) -> Result<Value, ClientError> {
        self.call_with_events(op, fields, &mut |_| {})
    }

    /// Subscribe to decisions: each call of the returned closure waits for the next one.
    pub fn decisions(mut self) -> Result<impl FnMut() -> Result<Value, ClientError>, ClientError> {
        self.reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|error| ClientError::Io {
                socket: self.socket.clone(),
                error,
            })?;
        self.send("decisions", json!({}))?;
        Ok(move || match self.next()? {
            Reply::Event(e) => Ok(e["decision"].clone()),
            Reply::Err(e) => Err(ClientError::Api(e)),
            Reply::Ok(v) => Err(ClientError::Protocol {
                socket: self.socket.clone(),
                message: format!("a result in a stream: {v}"),
            }),
        })
    }

    fn send(&mut self, op: &str, fields: Value) -> Result<(), ClientError> {
        self.writer
            .write_all(request(op, fields).as_bytes())
            .map_err(|error| ClientError::Io {
                socket: self.socket.clone(),
                error,
            })
    }

    fn next(&mut self) -> Result<Reply, ClientError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|error| ClientError::Io {
                socket: self.socket.clone(),
                error,
            })?;
        if n == 0 {
            return Err(ClientError::Protocol {
                socket: self.socket.clone(),
                message: "the service closed the connection without answering".into(),
            });
        }
        decode_reply(&line).map_err(|message| ClientError::Protocol {
            socket: self.socket.clone(),
            message,
        })
    }
}

/// Whether two paths name the same file (the same path, or the same inode once resolved).
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            // Not there yet: resolve the folder, keep the name.
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Some(dir.canonicalize().ok()?.join(p.file_name()?))
        })
    };
    a == b || matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_socket_means_no_service() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Client::connect(&dir.path().join("none.sock"))
            .unwrap()
            .is_none());
        // A socket file nobody listens on (a killed service's) is no service either.
        let path = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(Client::connect(&path).unwrap().is_none());
    }

    #[test]
    fn paths_are_compared_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("g.fg");
        std::fs::write(&a, b"x").unwrap();
        let b = dir.path().join(".").join("g.fg");
        assert!(same_file(&a, &b));
        assert!(!same_file(&a, &dir.path().join("h.fg")));
    }
}
