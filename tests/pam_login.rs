//! pam_facegate.so driven through the real libpam (pam_start_confdir with a PAM config folder in
//! a temporary directory: no file under /etc is read or touched), against no service, a service
//! that never answers, and the real facegate service on a frames source.

mod common;

use std::ffi::{c_int, c_void, CStr, CString};
use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use facegate::terminal::events::{read_log, LogParams};
use pam_facegate::ffi;
use serde_json::Value;

/// The module cargo built for this test (a dev-dependency: its .so sits beside the test binary).
fn module_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        let so = dir.join("libpam_facegate.so");
        if so.is_file() {
            return so;
        }
    }
    panic!("libpam_facegate.so not found beside {}", exe.display());
}

/// The module treats an SSH_* variable as a remote session; a developer running the tests over
/// ssh must not turn every case into PAM_IGNORE. Done once, before any test calls libpam.
fn local_session() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for var in ["SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"] {
            std::env::remove_var(var);
        }
    });
}

/// One pam_authenticate: its code, the lines the module showed, and how long it took.
struct Attempt {
    code: c_int,
    messages: Vec<String>,
    elapsed: Duration,
}

/// The conversation: keep every informational line, answer no prompt.
unsafe extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const ffi::PamMessage,
    resp: *mut *mut ffi::PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let messages = unsafe { &mut *(appdata as *mut Vec<String>) };
    for i in 0..num_msg as usize {
        let m = unsafe { &**msg.add(i) };
        if m.msg_style != ffi::PAM_TEXT_INFO && m.msg_style != ffi::PAM_ERROR_MSG {
            return ffi::PAM_CONV_ERR;
        }
        messages.push(
            unsafe { CStr::from_ptr(m.msg) }
                .to_string_lossy()
                .into_owned(),
        );
    }
    unsafe { *resp = std::ptr::null_mut() };
    ffi::PAM_SUCCESS
}

/// A PAM service "facegate-test" in its own config folder.
struct Stack {
    dir: tempfile::TempDir,
}

impl Stack {
    /// `lines` are the auth lines, with MODULE standing for the built .so.
    fn new(lines: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let module = module_path();
        let text = lines.replace("MODULE", module.to_str().unwrap());
        std::fs::write(dir.path().join("facegate-test"), text).unwrap();
        Self { dir }
    }

    /// The module alone, its own code returned as the stack's.
    fn module_only(args: &str) -> Self {
        Self::new(&format!("auth [success=done default=bad] MODULE {args}\n"))
    }

    fn authenticate(&self, user: &str, rhost: Option<&str>) -> Attempt {
        local_session();
        let service = CString::new("facegate-test").unwrap();
        let user = CString::new(user).unwrap();
        let confdir = CString::new(self.dir.path().to_str().unwrap()).unwrap();
        let mut messages: Vec<String> = Vec::new();
        let conv = ffi::PamConv {
            conv: Some(conversation),
            appdata_ptr: (&mut messages as *mut Vec<String>).cast(),
        };
        let mut pamh: *mut ffi::PamHandle = std::ptr::null_mut();
        let rc = unsafe {
            ffi::pam_start_confdir(
                service.as_ptr(),
                user.as_ptr(),
                &conv,
                confdir.as_ptr(),
                &mut pamh,
            )
        };
        assert_eq!(rc, ffi::PAM_SUCCESS, "pam_start_confdir");
        let tty = CString::new("/dev/tty1").unwrap();
        unsafe { ffi::pam_set_item(pamh, ffi::PAM_TTY, tty.as_ptr().cast()) };
        let rhost = rhost.map(|h| CString::new(h).unwrap());
        if let Some(h) = &rhost {
            unsafe { ffi::pam_set_item(pamh, ffi::PAM_RHOST, h.as_ptr().cast()) };
        }
        let start = Instant::now();
        let code = unsafe { ffi::pam_authenticate(pamh, 0) };
        let elapsed = start.elapsed();
        unsafe { ffi::pam_end(pamh, code) };
        Attempt {
            code,
            messages,
            elapsed,
        }
    }
}

fn socket_arg(path: &Path) -> String {
    format!("socket={}", path.display())
}

#[test]
fn only_the_pam_entry_points_are_exported() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module_path())
        .output()
        .expect("nm (binutils)");
    assert!(out.status.success());
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["pam_sm_authenticate", "pam_sm_setcred"]);
}

#[test]
fn no_service_is_unavailable_at_once_and_the_password_follows() {
    let dir = tempfile::tempdir().unwrap();
    let socket = socket_arg(&dir.path().join("absent.sock"));
    let attempt = Stack::module_only(&socket).authenticate("alice", None);
    assert_eq!(attempt.code, ffi::PAM_AUTHINFO_UNAVAIL);
    assert!(
        attempt.elapsed < Duration::from_millis(100),
        "took {:?}",
        attempt.elapsed
    );
    assert!(attempt.messages.is_empty(), "{:?}", attempt.messages);

    // The documented stack: face `sufficient`, then the password (pam_permit stands in for
    // pam_unix so no real password is needed): unavailable falls straight through to it.
    let stack = Stack::new(&format!(
        "auth sufficient MODULE {socket}\nauth required pam_permit.so\n"
    ));
    assert_eq!(stack.authenticate("alice", None).code, ffi::PAM_SUCCESS);
    let deny = Stack::new(&format!(
        "auth sufficient MODULE {socket}\nauth required pam_deny.so\n"
    ));
    assert_eq!(deny.authenticate("alice", None).code, ffi::PAM_AUTH_ERR);
}

#[test]
fn a_service_that_never_answers_costs_the_timeout_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accept and read, never answer; hold the connection until the test ends.
    let hold = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        drop(stream);
    });
    let stack = Stack::module_only(&format!("{} timeout=1", socket_arg(&path)));
    let attempt = stack.authenticate("alice", None);
    assert_eq!(attempt.code, ffi::PAM_AUTHINFO_UNAVAIL);
    assert!(
        attempt.elapsed >= Duration::from_millis(950)
            && attempt.elapsed < Duration::from_millis(1300),
        "took {:?}",
        attempt.elapsed
    );
    assert_eq!(attempt.messages, ["Face login did not answer in time"]);
    hold.join().unwrap();
}

#[test]
fn a_remote_session_is_ignored_without_asking_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    // libpam reports a lone PAM_IGNORE as "permission denied", so the stack makes it visible:
    // only PAM_IGNORE jumps over pam_deny to pam_permit; any other answer dies.
    let stack = Stack::new(&format!(
        "auth [ignore=1 default=die] MODULE {}\nauth requisite pam_deny.so\nauth required pam_permit.so\n",
        socket_arg(&path)
    ));
    let attempt = stack.authenticate("alice", Some("10.1.2.3"));
    assert_eq!(
        attempt.code,
        ffi::PAM_SUCCESS,
        "the module did not return PAM_IGNORE"
    );
    assert!(attempt.messages.is_empty());
    assert!(
        listener.accept().is_err(),
        "the module connected to the service for a remote session"
    );
}

const LIN: &str = "lin-manuel-miranda";
const ALEX: &str = "alex-lacamoire";

/// A login station in a temporary folder: its gallery, config, socket, decision log, and the
/// real `facegate run` serving it in `[login] mode = "login"` (the camera, here a folder of
/// frames, is opened for each request).
struct Station {
    dir: tempfile::TempDir,
    service: Option<(Child, Arc<Mutex<String>>)>,
    /// The door loop's decision lines (`facegate run` stdout).
    decisions: Arc<Mutex<String>>,
}

impl Station {
    fn new(frames: &Path, mode: &str) -> Self {
        Self::with_config(frames, mode, "")
    }

    /// With `extra` appended to the station's config.
    fn with_config(frames: &Path, mode: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The test's own primary group reads the API (verify_user for any login), so the test
        // need not run as root.
        let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
            .unwrap()
            .expect("the test's primary group has a name")
            .name;
        let config = format!(
            "[camera]\nsource = {frames:?}\n\
             [login]\nmode = {mode:?}\nallow_nolive = true\n\
             [service]\nreader_group = {group:?}\nsocket_mode = 0o600\n{extra}"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Self {
            dir,
            service: None,
            decisions: Arc::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cli(&self) -> Command {
        let mut c = common::facegate();
        c.env("FACEGATE_SOCKET", self.path("api.sock"))
            .arg("--gallery")
            .arg(self.path("gallery.fg"))
            .arg("--config")
            .arg(self.path("config.toml"));
        c
    }

    fn enroll(&self, data: &Path, name: &str, login: &str) {
        let photo = data.join(format!("video/hamilton/enroll_{name}.png"));
        self.enroll_photos(name, login, &[photo]);
    }

    fn enroll_photos(&self, name: &str, login: &str, photos: &[PathBuf]) {
        let out = self
            .cli()
            .args(["enroll", "--largest", "--name", name, "--user", login])
            .args(photos)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `facegate run` on the station's frames, paced like a 30 fps camera; returns once its API
    /// answers.
    fn start(&mut self) {
        let mut child = self
            .cli()
            .args(["run", "--fps", "30", "--log-file"])
            .arg(self.path("events.fglog"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (d, stdout) = (self.decisions.clone(), child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                d.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let (l, stderr) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        while UnixStream::connect(self.path("api.sock")).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("facegate run exited ({status}): {}", log.lock().unwrap());
            }
            assert!(Instant::now() < deadline, "the API never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.service = Some((child, log));
    }

    fn service_log(&self) -> String {
        self.service
            .as_ref()
            .map_or(String::new(), |(_, l)| l.lock().unwrap().clone())
    }

    fn stack(&self, args: &str) -> Stack {
        Stack::module_only(&format!("{} {args}", socket_arg(&self.path("api.sock"))))
    }
}

impl Drop for Station {
    fn drop(&mut self) {
        if let Some((child, _)) = self.service.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Frames `from..=to` of the Hamilton clip, `times` times over, as a folder of their own
/// (symlinks).
fn clip_frames(data: &Path, dir: &Path, from: u32, to: u32, times: u32) -> PathBuf {
    let out = dir.join(format!("frames-{from}-{to}"));
    std::fs::create_dir(&out).unwrap();
    let mut n = 0;
    for _ in 0..times {
        for i in from..=to {
            let src = data.join(format!("video/hamilton/frames/{i:04}.jpg"));
            std::os::unix::fs::symlink(src, out.join(format!("{n:06}.jpg"))).unwrap();
            n += 1;
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The real module, the real service, real frames: the account's own face logs in; another
/// enrolled person's face is refused; liveness asked for while the service has it off is
/// "unavailable" (the password follows); the sixth failure in a row is refused without the
/// camera being opened (its folder is gone by then, which would otherwise say so); and every
/// attempt is in the decision log with its outcome and score.
#[test]
fn the_real_service_logs_the_account_in_by_its_own_face_only() {
    let data = data_or_skip!();
    let scratch = tempfile::tempdir().unwrap();
    // Frames 121-235: Lin-Manuel Miranda alone, facing the camera.
    let frames = clip_frames(&data, scratch.path(), 121, 235, 1);
    // This station has the liveness check switched off.
    let mut station = Station::with_config(&frames, "login", "[liveness]\nenabled = false\n");
    station.enroll(&data, LIN, "lin");
    station.enroll(&data, ALEX, "alex");
    station.start();

    // Liveness is asked for unless the line says nolive: switched off here, so the password.
    let attempt = station.stack("").authenticate("lin", None);
    assert_eq!(
        attempt.code,
        ffi::PAM_AUTHINFO_UNAVAIL,
        "{}",
        station.service_log()
    );
    assert_eq!(
        attempt.messages,
        ["Face login unavailable: no liveness check here"]
    );

    // Nobody linked to the account: unavailable, silently.
    let attempt = station.stack("nolive").authenticate("nobody", None);
    assert_eq!(attempt.code, ffi::PAM_AUTHINFO_UNAVAIL);
    assert!(attempt.messages.is_empty(), "{:?}", attempt.messages);

    // Lin at the camera, as lin: logged in, each time.
    let mut times = Vec::new();
    for _ in 0..5 {
        let attempt = station.stack("nolive").authenticate("lin", None);
        assert_eq!(
            attempt.code,
            ffi::PAM_SUCCESS,
            "{:?}\n{}",
            attempt.messages,
            station.service_log()
        );
        assert_eq!(
            attempt.messages.first().map(String::as_str),
            Some("Look at the camera")
        );
        times.push(attempt.elapsed);
    }
    times.sort();
    eprintln!(
        "pam_authenticate -> PAM_SUCCESS over {} attempts (test profile: opt-level 1, dependencies 3; {} frames paced at 30 fps): \
         median {:?}, p95 {:?}, all {:?}",
        times.len(),
        std::fs::read_dir(&frames).unwrap().count(),
        percentile(&times, 50.0),
        percentile(&times, 95.0),
        times
    );

    // Lin at the camera, as alex (enrolled too, a different person): refused, five times.
    for i in 0..5 {
        let attempt = station.stack("nolive").authenticate("alex", None);
        assert_eq!(
            attempt.code,
            ffi::PAM_AUTH_ERR,
            "attempt {i}: {:?}\n{}",
            attempt.messages,
            station.service_log()
        );
        assert_eq!(
            attempt.messages.last().map(String::as_str),
            Some("Not recognised")
        );
    }
    // The camera goes away. The sixth try for alex is refused by the limit before any camera
    // is opened; lin, not limited, does reach for the camera and finds none.
    let gone = scratch.path().join("unplugged");
    std::fs::rename(&frames, &gone).unwrap();
    let attempt = station.stack("nolive").authenticate("alex", None);
    assert_eq!(attempt.code, ffi::PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        attempt.messages,
        ["Face login paused after repeated failures"]
    );
    let attempt = station.stack("nolive").authenticate("lin", None);
    assert_eq!(attempt.code, ffi::PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        attempt.messages.last().map(String::as_str),
        Some("Face login unavailable (camera busy or missing)")
    );
    // A camera on an empty room (a table, nobody there): refused, not unavailable.
    std::os::unix::fs::symlink(data.join("video/dlib_video_frames_noface"), &frames).unwrap();
    let attempt = station.stack("nolive").authenticate("lin", None);
    assert_eq!(attempt.code, ffi::PAM_AUTH_ERR, "{:?}", attempt.messages);
    assert_eq!(
        attempt.messages.last().map(String::as_str),
        Some("No face seen")
    );
    std::fs::remove_file(&frames).unwrap();
    std::fs::rename(&gone, &frames).unwrap();

    // `facegate login-test` makes the same check and shows its steps.
    let out = station
        .cli()
        .args(["--json", "login-test", "lin", "--nolive"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(report["result"]["outcome"], "accepted", "{report}");
    assert_eq!(report["result"]["person"], LIN);
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"service: Look at the camera"), "{steps:?}");
    let out = station
        .cli()
        .args(["login-test", "alex", "--nolive"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rate_limited"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Every attempt is in the decision log, in order, with its outcome and score.
    drop(station.service.take());
    let contents = read_log(&LogParams {
        path: station.path("events.fglog"),
        ..LogParams::default()
    })
    .unwrap();
    let seen: Vec<(&str, &str)> = contents
        .logins
        .iter()
        .map(|l| (l.user.as_str(), l.outcome.as_str()))
        .collect();
    let mut want = vec![("lin", "liveness_unavailable"), ("nobody", "not_enrolled")];
    want.extend([("lin", "accepted"); 5]);
    want.extend([("alex", "not_recognised"); 5]);
    want.extend([
        ("alex", "rate_limited"),
        ("lin", "unavailable"),
        ("lin", "no_face"),
        ("lin", "accepted"),
        ("alex", "rate_limited"),
    ]);
    assert_eq!(seen, want);
    let out = station
        .cli()
        .args(["log", "--log-file"])
        .arg(station.path("events.fglog"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" login alex not_recognised score "))
            .count(),
        5,
        "{text}"
    );
    // The login records are links of the log's MAC chain like the door's decisions.
    let out = station
        .cli()
        .args(["log", "--verify", "--log-file"])
        .arg(station.path("events.fglog"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for l in &contents.logins {
        match l.outcome.as_str() {
            "accepted" => assert!(l.score.unwrap() >= 0.5937, "{l:?}"),
            "not_recognised" => assert!(l.score.unwrap() < 0.5937, "{l:?}"),
            _ => assert_eq!(l.score, None, "{l:?}"),
        }
        assert!(!l.liveness || l.outcome == "liveness_unavailable");
    }
}

/// A door that logs people in too (`mode = "both"`): the door loop keeps the camera and makes
/// its own decisions; a login listens to the frames the loop analyses.
#[test]
fn a_door_station_shares_its_frames_with_face_login() {
    let data = data_or_skip!();
    let scratch = tempfile::tempdir().unwrap();
    // Lin alone, looped for a few minutes of camera time so the door loop outlives the test.
    let frames = clip_frames(&data, scratch.path(), 121, 235, 40);
    let mut station = Station::new(&frames, "both");
    station.enroll(&data, LIN, "lin");
    station.enroll(&data, ALEX, "alex");
    station.start();
    let attempt = station.stack("nolive").authenticate("lin", None);
    assert_eq!(
        attempt.code,
        ffi::PAM_SUCCESS,
        "{:?}\n{}",
        attempt.messages,
        station.service_log()
    );
    let attempt = station.stack("nolive").authenticate("alex", None);
    assert_eq!(attempt.code, ffi::PAM_AUTH_ERR, "{:?}", attempt.messages);
    assert_eq!(
        attempt.messages.last().map(String::as_str),
        Some("Not recognised")
    );
    // The door went on deciding meanwhile: Lin is let in at the door by its own rules.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !station
        .decisions
        .lock()
        .unwrap()
        .contains(&format!("ACCEPT {LIN}"))
    {
        assert!(
            Instant::now() < deadline,
            "no door decision: {}",
            station.service_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(station.service.take());
    let contents = read_log(&LogParams {
        path: station.path("events.fglog"),
        ..LogParams::default()
    })
    .unwrap();
    let logins: Vec<&str> = contents.logins.iter().map(|l| l.outcome.as_str()).collect();
    assert_eq!(logins, ["accepted", "not_recognised"]);
    assert!(
        contents
            .events
            .iter()
            .any(|e| e.name.as_deref() == Some(LIN)),
        "the door's decisions share the log"
    );
}

/// Liveness on (the PAM line without `nolive`): printed
/// photos of the enrolled account's own face (NUAA) are refused as a photo; the live face of the
/// same person, and Lin-Manuel Miranda's face in the Hamilton clip, log in.
#[test]
fn with_liveness_a_printed_photo_of_the_user_is_refused_and_the_live_face_logs_in() {
    let data = data_or_skip!();
    let Some(pad) = common::nuaa_dir() else {
        eprintln!("SKIPPED: ../shared/pad/nuaa_dev is not present on this machine");
        return;
    };
    let live = common::nuaa_frames(&pad, "live", "0003");
    let attack = common::nuaa_frames(&pad, "attack", "0003");
    assert!(
        live.len() >= 15 && attack.len() >= 20,
        "{live:?} {attack:?}"
    );
    let scratch = tempfile::tempdir().unwrap();
    // Enrolled from three live frames spread over the session (liveness checks them too).
    let picks = [0, live.len() / 2, live.len() - 1].map(|i| live[i].clone());

    // Printed photos of pat at the camera.
    let attack_dir = common::linked_frames(scratch.path(), "attack", &attack);
    let mut station = Station::new(&attack_dir, "login");
    station.enroll_photos("0003", "pat", &picks);
    station.start();
    let attempt = station.stack("").authenticate("pat", None);
    assert_eq!(
        attempt.code,
        ffi::PAM_AUTH_ERR,
        "{:?}\n{}",
        attempt.messages,
        station.service_log()
    );
    assert!(
        attempt.messages.iter().any(|m| m == "Photo detected"),
        "{:?}",
        attempt.messages
    );
    drop(station);

    // Pat themselves at the camera.
    let live_dir = common::linked_frames(scratch.path(), "live", &live);
    let mut station = Station::new(&live_dir, "login");
    station.enroll_photos("0003", "pat", &picks);
    station.start();
    let attempt = station.stack("").authenticate("pat", None);
    assert_eq!(
        attempt.code,
        ffi::PAM_SUCCESS,
        "{:?}\n{}",
        attempt.messages,
        station.service_log()
    );
    drop(station);

    // Lin in the Hamilton clip, liveness on.
    let frames = clip_frames(&data, scratch.path(), 121, 235, 1);
    let mut station = Station::new(&frames, "login");
    station.enroll(&data, LIN, "lin");
    station.start();
    let mut times = Vec::new();
    for _ in 0..3 {
        let attempt = station.stack("").authenticate("lin", None);
        assert_eq!(
            attempt.code,
            ffi::PAM_SUCCESS,
            "{:?}\n{}",
            attempt.messages,
            station.service_log()
        );
        times.push(attempt.elapsed);
    }
    times.sort();
    eprintln!(
        "with liveness: pam_authenticate -> PAM_SUCCESS over {} attempts: median {:?}, p95 {:?}, all {:?}",
        times.len(),
        percentile(&times, 50.0),
        percentile(&times, 95.0),
        times
    );
}
