//! The API listener: one thread accepts, one thread per connection (at most
//! `max_connections`; more wait in the kernel's backlog) decodes lines, checks the peer's
//! rights and answers.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::gallery::live::LiveGallery;
use crate::gallery::operating_point::Rule;
use crate::gallery::GalleryStore;
use crate::media::image_io::decode_rgb;
use crate::vision::pipeline::Pipeline;

use super::feed::Feed;
use super::ops::{self, Target};
use super::peer::{self, Groups, Peer};
use super::protocol::{
    decode_request, error_line, event_line, ok_line, ApiError, ErrorCode, Faces, Request, MAX_LINE,
};
use super::verify::{self, LoginStation, VerifyContext};
use super::ServiceParams;

/// A client that sends nothing for this long is disconnected.
const IDLE: Duration = Duration::from_secs(30);
/// The longest a change waits for the running matcher to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another facegate service already answers on {0}")]
    AlreadyRunning(PathBuf),
    #[error("the folder of the API socket {0} does not exist (systemd makes it: RuntimeDirectory=facegate)")]
    NoFolder(PathBuf),
    #[error("API socket {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
}

/// What `status` reports besides the live state.
#[derive(Debug, Clone)]
pub struct Info {
    pub embedder: String,
    /// (name, sha256) of each model file.
    pub models: Vec<(String, String)>,
    pub mode: &'static str,
}

/// Everything the handlers share with the terminal.
pub struct State {
    pub live: Arc<LiveGallery>,
    /// Saved to under the service's lease (held by whoever runs the server).
    pub store: GalleryStore,
    pub pipeline: Arc<Pipeline>,
    /// The door's threshold rule: every request applies it to the live gallery's size as it
    /// is at that moment, so the threshold follows each enrolment and removal.
    pub door: Rule,
    pub feed: Arc<Feed>,
    /// Face login: settings, frames, rate limit, log.
    pub login: Arc<LoginStation>,
    pub info: Info,
    pub started: Instant,
}

/// The running listener; the socket file is removed when it is dropped.
pub struct Server {
    path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Server {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Bind the socket and serve it on background threads.
pub fn start(params: &ServiceParams, state: Arc<State>) -> Result<Server, ServerError> {
    let path = params.socket.clone();
    let io_err = |error| ServerError::Io {
        path: path.clone(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(ServerError::NoFolder(path.clone()));
        }
    }
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(ServerError::AlreadyRunning(path.clone()));
        }
        // Left by a killed service: nobody listens on it.
        std::fs::remove_file(&path).map_err(io_err)?;
    }
    let listener = UnixListener::bind(&path).map_err(io_err)?;
    let server = Server { path: path.clone() };
    if let Ok(Some(group)) = nix::unistd::Group::from_name(&params.socket_group) {
        std::os::unix::fs::chown(&path, None, Some(group.gid.as_raw())).map_err(io_err)?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(params.socket_mode))
        .map_err(io_err)?;
    let groups = Arc::new(Groups::resolve(&params.admin_group, &params.reader_group));
    let slots = Arc::new((Mutex::new(params.max_connections.max(1)), Condvar::new()));
    std::thread::Builder::new()
        .name("api-accept".into())
        .spawn(move || accept_loop(listener, state, groups, slots))
        .map_err(io_err)?;
    Ok(server)
}

fn accept_loop(
    listener: UnixListener,
    state: Arc<State>,
    groups: Arc<Groups>,
    slots: Arc<(Mutex<usize>, Condvar)>,
) {
    loop {
        {
            let (free, freed) = &*slots;
            let mut n = free.lock().unwrap_or_else(|e| e.into_inner());
            while *n == 0 {
                n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
            }
            *n -= 1;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("API: accept: {e}");
                release(&slots);
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let (state, groups, slots2) = (state.clone(), groups.clone(), slots.clone());
        let spawned = std::thread::Builder::new()
            .name("api-conn".into())
            .spawn(move || {
                if let Err(e) = serve(stream, &state, &groups) {
                    log::debug!("API connection: {e}");
                }
                release(&slots2);
            });
        if let Err(e) = spawned {
            log::warn!("API: cannot start a connection thread: {e}");
            release(&slots);
        }
    }
}

fn release(slots: &(Mutex<usize>, Condvar)) {
    *slots.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    slots.1.notify_one();
}

/// Answer requests on one connection until it closes, idles out, or breaks the framing.
fn serve(stream: UnixStream, state: &State, groups: &Groups) -> io::Result<()> {
    let peer = Peer::of(&stream)?;
    stream.set_read_timeout(Some(IDLE))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE {
            let e = ApiError::new(
                ErrorCode::TooLarge,
                format!("request longer than {MAX_LINE} bytes; connection closed"),
            );
            writer.write_all(error_line(&e).as_bytes())?;
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request = decode_request(&line)
            .and_then(|r| peer::authorise(&peer, groups, &r, peer::uid_of_login).map(|_| r));
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                writer.write_all(error_line(&e).as_bytes())?;
                continue;
            }
        };
        log::debug!(
            "API: {} from uid {} pid {}",
            request.op(),
            peer.uid,
            peer.pid
        );
        if let Request::Decisions {} = request {
            return stream_decisions(&mut writer, reader.get_ref(), state);
        }
        let answer = {
            let mut emit = |event: Value| writer.write_all(event_line(event).as_bytes());
            handle(state, &peer, request, &mut emit)
        };
        let out = match answer {
            Ok(result) => ok_line(result),
            Err(e) => error_line(&e),
        };
        writer.write_all(out.as_bytes())?;
    }
}

fn handle(
    state: &State,
    peer: &Peer,
    request: Request,
    emit: &mut dyn FnMut(Value) -> io::Result<()>,
) -> Result<Value, ApiError> {
    match request {
        Request::Status {} => Ok(status(state)),
        Request::List {} => Ok(ops::list_json(&state.live.read(), &state.door)),
        Request::Enroll(e) => {
            let faces = faces(state, &e.faces, e.largest, e.no_liveness)?;
            change(state, |g| {
                Ok(ops::enrol(
                    g,
                    &Target::New(e.name.clone()),
                    &faces,
                    &state.door,
                    e.strict,
                    e.user.as_deref(),
                )?)
            })
            .and_then(to_value)
        }
        Request::Append(a) => {
            let faces = faces(state, &a.faces, a.largest, a.no_liveness)?;
            let target = Target::Existing(ops::selector(&a.person));
            change(state, |g| {
                Ok(ops::enrol(
                    g,
                    &target,
                    &faces,
                    &state.door,
                    a.strict,
                    a.user.as_deref(),
                )?)
            })
            .and_then(to_value)
        }
        Request::Remove { person } => {
            let selector = ops::selector(&person);
            let p = change(state, |g| Ok(g.remove(&selector)?))?;
            Ok(json!({ "removed": { "id": p.id, "name": p.name.as_str() } }))
        }
        Request::Clear {} => {
            let n = change(state, |g| {
                let n = g.len();
                g.clear();
                Ok(n)
            })?;
            Ok(json!({ "removed": n }))
        }
        Request::Identify { image } => {
            let image = decode_image(&image, "image")?;
            let mut out = serde_json::Map::new();
            out.insert("image".into(), Value::Null);
            // The threshold of the gallery each face is matched against (a change between two
            // faces of one photo moves both together); reported as it was at the start.
            let reported = state.door.at(state.live.read().template_count());
            let found = ops::identify(&state.pipeline, &reported, &image, |e| {
                let g = state.live.read();
                g.best_match(e, state.door.at(g.template_count()).threshold)
            })
            .map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
            out.extend(found);
            Ok(Value::Object(out))
        }
        Request::VerifyUser(v) => {
            let ctx = VerifyContext {
                live: &state.live,
                peer,
                pipeline: &state.pipeline,
                station: &state.login,
            };
            verify::verify_user(&ctx, &v, emit)
        }
        Request::Decisions {} => unreachable!("streamed by serve"),
    }
}

fn to_value(e: ops::Enrolled) -> Result<Value, ApiError> {
    serde_json::to_value(e).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// Change the gallery: on a copy, saved (atomically, under the service's lease), swapped in,
/// and answered only once the running matcher has applied it.
fn change<T>(
    state: &State,
    f: impl FnOnce(&mut crate::gallery::Gallery) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let (out, generation) = state.live.update(|g| {
        let out = f(g)?;
        state
            .store
            .save(g)
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("saving the gallery: {e}")))?;
        Ok::<_, ApiError>(out)
    })?;
    if !state.live.wait_applied(generation, APPLY_TIMEOUT) {
        return Err(ApiError::new(
            ErrorCode::Internal,
            format!(
                "the change is saved, but the running matcher did not apply it within {} s",
                APPLY_TIMEOUT.as_secs()
            ),
        ));
    }
    Ok(out)
}

/// The embeddings of an enrol request, labelled for warnings.
fn faces(
    state: &State,
    faces: &Faces,
    largest: bool,
    no_liveness: bool,
) -> Result<Vec<(String, Vec<f32>)>, ApiError> {
    if let Some(embeddings) = &faces.embeddings {
        return Ok(embeddings
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("embeddings[{i}]"), e.clone()))
            .collect());
    }
    let images = faces.images.as_deref().unwrap_or_default();
    images
        .iter()
        .enumerate()
        .map(|(i, b64)| {
            let label = format!("images[{i}]");
            let image = decode_image(b64, &label)?;
            let e = ops::enrolment_face(&state.pipeline, &image, largest, &label, !no_liveness)
                .map_err(ApiError::bad_request)?;
            Ok((label, e))
        })
        .collect()
}

fn decode_image(b64: &str, label: &str) -> Result<image::RgbImage, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| ApiError::bad_request(format!("{label}: not base64: {e}")))?;
    decode_rgb(&bytes, Path::new(label)).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn status(state: &State) -> Value {
    let g = state.live.read();
    let models: Vec<Value> = state
        .info
        .models
        .iter()
        .map(|(name, sha)| json!({ "name": name, "sha256": sha }))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "embedder": state.info.embedder,
        "models": models,
        "gallery": {
            "people": g.len(),
            "templates": g.template_count(),
            "generation": state.live.generation(),
            "path": state.store.path(),
        },
        "operating_point": state.door.at(g.template_count()),
        "mode": state.info.mode,
        "last_decision": state.feed.last(),
    })
}

/// Send each decision as an event until the client goes away.
fn stream_decisions(writer: &mut UnixStream, stream: &UnixStream, state: &State) -> io::Result<()> {
    let rx = state.feed.subscribe();
    loop {
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(d) => writer.write_all(event_line(json!({ "decision": d })).as_bytes())?,
            Err(RecvTimeoutError::Timeout) => {
                // A quiet door: notice a client that left, so its slot is freed.
                use nix::sys::socket::{recv, MsgFlags};
                use std::os::fd::AsRawFd;
                let mut b = [0u8; 1];
                let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
                if matches!(recv(stream.as_raw_fd(), &mut b, flags), Ok(0)) {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}
