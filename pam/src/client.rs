//! One line-delimited JSON connection to the service's Unix socket, every call bounded by one
//! deadline. Plain libc rather than std's UnixStream because a module lives inside someone
//! else's process: the connect must not block on a full backlog, writes must not raise SIGPIPE
//! in a program that did not ignore it (MSG_NOSIGNAL), and no thread may be started.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest answer line accepted from the service; a verify_user reply is a few hundred bytes.
const MAX_REPLY_LINE: usize = 1 << 20;

#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens there (no socket file, connection refused, or a backlog that stayed full).
    NoService(io::Error),
    /// The deadline passed while connecting, sending or waiting for a line.
    TimedOut,
    /// The service closed the connection before answering.
    Closed,
    /// A reply that is not one JSON object per line.
    BadReply(String),
    Io(io::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoService(e) => write!(f, "no facegate service: {e}"),
            Self::TimedOut => f.write_str("the facegate service did not answer in time"),
            Self::Closed => f.write_str("the facegate service closed the connection"),
            Self::BadReply(why) => write!(f, "unreadable answer from the facegate service: {why}"),
            Self::Io(e) => write!(f, "talking to the facegate service: {e}"),
        }
    }
}

pub struct Connection {
    fd: OwnedFd,
    pending: Vec<u8>,
}

impl Connection {
    pub fn connect(path: &Path, deadline: Instant) -> Result<Self, ClientError> {
        let address = socket_address(path).map_err(ClientError::NoService)?;
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(ClientError::Io(io::Error::last_os_error()));
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        loop {
            // SAFETY: address is a valid sockaddr_un and its size is passed with it.
            let rc = unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&address as *const libc::sockaddr_un).cast(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                // A Unix socket with a full backlog: the service is alive but not accepting.
                Some(libc::EAGAIN) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Some(libc::EAGAIN) => return Err(ClientError::TimedOut),
                Some(libc::EINPROGRESS) => {
                    wait(&fd, libc::POLLOUT, deadline)?;
                    break;
                }
                _ => return Err(ClientError::NoService(error)),
            }
        }
        Ok(Self {
            fd,
            pending: Vec::new(),
        })
    }

    /// Send one JSON value as one line.
    pub fn send(&mut self, value: &Value, deadline: Instant) -> Result<(), ClientError> {
        let mut line = value.to_string().into_bytes();
        line.push(b'\n');
        let mut rest = &line[..];
        while !rest.is_empty() {
            // SAFETY: rest points at rest.len() readable bytes.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                rest = &rest[n as usize..];
                continue;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) => wait(&self.fd, libc::POLLOUT, deadline)?,
                Some(libc::EPIPE) | Some(libc::ECONNRESET) => return Err(ClientError::Closed),
                _ => return Err(ClientError::Io(error)),
            }
        }
        Ok(())
    }

    /// The next line as a JSON value.
    pub fn receive(&mut self, deadline: Instant) -> Result<Value, ClientError> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return serde_json::from_slice(&line[..end])
                    .map_err(|e| ClientError::BadReply(e.to_string()));
            }
            if self.pending.len() > MAX_REPLY_LINE {
                return Err(ClientError::BadReply(format!(
                    "a line longer than {MAX_REPLY_LINE} bytes"
                )));
            }
            wait(&self.fd, libc::POLLIN, deadline)?;
            let mut buffer = [0u8; 4096];
            // SAFETY: buffer is writable for its whole length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            match n {
                0 => return Err(ClientError::Closed),
                n if n > 0 => self.pending.extend_from_slice(&buffer[..n as usize]),
                _ => {
                    let error = io::Error::last_os_error();
                    match error.raw_os_error() {
                        Some(libc::EINTR) | Some(libc::EAGAIN) => {}
                        Some(libc::ECONNRESET) => return Err(ClientError::Closed),
                        _ => return Err(ClientError::Io(error)),
                    }
                }
            }
        }
    }
}

/// Wait until the descriptor is ready for `events` or the deadline passes.
fn wait(fd: &OwnedFd, events: i16, deadline: Instant) -> Result<(), ClientError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::TimedOut);
        }
        // Round up so a sub-millisecond remainder still waits instead of spinning.
        let ms = left.as_micros().div_ceil(1000).min(c_int::MAX as u128) as c_int;
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut poll, 1, ms) };
        if rc > 0 {
            // Readable, writable, or hung up / errored: the next call says which.
            return Ok(());
        }
        if rc < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINTR) {
                return Err(ClientError::Io(error));
            }
        }
    }
}

fn socket_address(path: &Path) -> io::Result<libc::sockaddr_un> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid (empty) value.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // Keep the terminating NUL that zeroed() left at the end.
    if bytes.is_empty() || bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unusable socket path {}", path.display()),
        ));
    }
    for (slot, &b) in address.sun_path.iter_mut().zip(bytes) {
        *slot = b as libc::c_char;
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    #[test]
    fn missing_socket_is_no_service_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let err = Connection::connect(
            &dir.path().join("absent.sock"),
            start + Duration::from_secs(5),
        )
        .err()
        .expect("nothing listens");
        assert!(matches!(err, ClientError::NoService(_)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn lines_go_both_ways_and_silence_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut out = stream;
            // The answer in two pieces, then silence.
            out.write_all(b"{\"echo\":").unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            writeln!(out, "{}}}", line.trim()).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut conn = Connection::connect(&path, deadline).unwrap();
        conn.send(&serde_json::json!({"op": "status"}), deadline)
            .unwrap();
        let reply = conn.receive(deadline).unwrap();
        assert_eq!(reply, serde_json::json!({"echo": {"op": "status"}}));
        let start = Instant::now();
        let err = conn
            .receive(start + Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, ClientError::TimedOut), "{err}");
        assert!(start.elapsed() < Duration::from_millis(400));
        server.join().unwrap();
    }
}
