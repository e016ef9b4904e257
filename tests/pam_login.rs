//! pam_facegate.so driven through the real libpam (pam_start_confdir with a PAM config folder in
//! a temporary directory: no file under /etc is read or touched), against no service, a service
//! that never answers, and the real facegate service on a frames source.

use std::ffi::{c_int, c_void, CStr, CString};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

use pam_facegate::ffi;

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
