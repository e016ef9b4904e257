//! pam_facegate: log in by face. The module asks the running facegate service over its Unix
//! socket to verify the PAM user at the camera (docs/login.md); it never loads a model itself.
//! Anything short of a clear match returns a code that lets the stack go on to the password:
//! PAM_AUTH_ERR when a face was seen and refused, PAM_AUTHINFO_UNAVAIL when face login could
//! not be tried, PAM_IGNORE when there is nobody at the camera to ask (remote session).
//!
//! Only `pam_sm_authenticate` and `pam_sm_setcred` are exported (`nm -D`): a cdylib exports
//! nothing but its `#[no_mangle] extern "C"` functions.

pub mod client;
pub mod ffi;
mod handle;
pub mod locality;
pub mod options;
pub mod verdict;

use std::ffi::{c_char, c_int, CStr};
use std::path::Path;
use std::time::Instant;

use handle::Handle;
use locality::{Locality, Session};
use options::Options;
use verdict::Verdict;

/// # Safety
/// Called by libpam with its handle and the stack line's arguments.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut ffi::PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    let start = Instant::now();
    // A panic must not unwind into (or abort) the login program: it becomes "unavailable".
    std::panic::catch_unwind(|| {
        // SAFETY: libpam's handle and argument vector, valid for this call.
        let (handle, args) = unsafe { (Handle::new(pamh), arguments(argc, argv)) };
        authenticate(&handle, flags, &args, start)
    })
    .unwrap_or(ffi::PAM_AUTHINFO_UNAVAIL)
}

/// Face login sets no credentials; succeeding keeps `[success=end]` stacks consistent.
///
/// # Safety
/// Called by libpam; the arguments are not used.
#[no_mangle]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut ffi::PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    ffi::PAM_SUCCESS
}

/// # Safety
/// `argv` holds `argc` NUL-terminated strings (or is null with argc 0).
unsafe fn arguments(argc: c_int, argv: *const *const c_char) -> Vec<String> {
    if argv.is_null() || argc <= 0 {
        return Vec::new();
    }
    // SAFETY: per the contract above.
    unsafe { std::slice::from_raw_parts(argv, argc as usize) }
        .iter()
        .filter(|p| !p.is_null())
        // SAFETY: each entry is a NUL-terminated string.
        .map(|&p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        .collect()
}

fn authenticate(handle: &Handle, flags: c_int, args: &[String], start: Instant) -> c_int {
    let options = Options::parse(args.iter().map(String::as_str));
    let debug = |text: &str| {
        if options.debug {
            handle.log(libc::LOG_DEBUG, text);
        }
    };
    let silent = flags & ffi::PAM_SILENT != 0;
    let say = |text: &str| {
        if !silent {
            // A conversation that fails to show a line is no reason to refuse a login.
            let _ = handle.say(ffi::PAM_TEXT_INFO, text);
        }
    };
    for arg in &options.unknown {
        handle.log(
            libc::LOG_WARNING,
            &format!("ignoring unknown option {arg:?}"),
        );
    }

    let user = match handle.user() {
        Ok(user) => user,
        Err(rc) => {
            handle.log(libc::LOG_WARNING, "no user to verify");
            return if rc == ffi::PAM_CONV_ERR {
                rc
            } else {
                ffi::PAM_AUTHINFO_UNAVAIL
            };
        }
    };

    let rhost = handle.item(ffi::PAM_RHOST);
    let tty = handle.item(ffi::PAM_TTY);
    let env = |name: &str| handle.env(name);
    let session = Session {
        rhost: rhost.as_deref(),
        tty: tty.as_deref(),
        env: &env,
        lid_dir: Path::new(locality::LID_DIR),
    };
    match locality::locality(&session) {
        Locality::Local => {}
        Locality::Remote(why) => {
            debug(&format!(
                "user {user}: no face login in a remote session ({why})"
            ));
            return ffi::PAM_IGNORE;
        }
        Locality::LidClosed => {
            debug(&format!("user {user}: no face login with the lid closed"));
            return ffi::PAM_AUTHINFO_UNAVAIL;
        }
    }

    debug(&format!(
        "user {user}: asking {} (timeout {} ms, liveness {})",
        options.socket.display(),
        options.timeout.as_millis(),
        options.liveness
    ));
    let deadline = start + options.timeout;
    let answer = verdict::ask(&options, &user, deadline, &mut |prompt| {
        debug(&format!("service: {prompt}"));
        say(prompt);
    });
    let (code, message) = verdict::outcome(&answer);
    if let Some(message) = message {
        say(message);
    }
    let ms = start.elapsed().as_millis();
    let (priority, line) = match &answer {
        Ok(Verdict::Accepted { score, person }) => (
            libc::LOG_NOTICE,
            format!(
                "user {user}: recognised as {} (score {}) in {ms} ms",
                person.as_deref().unwrap_or("?"),
                fmt_score(*score)
            ),
        ),
        Ok(Verdict::Rejected { why, score }) => (
            libc::LOG_NOTICE,
            format!(
                "user {user}: {} (score {}) in {ms} ms",
                why.as_str(),
                fmt_score(*score)
            ),
        ),
        Ok(Verdict::Declined { code, message }) => (
            libc::LOG_INFO,
            format!("user {user}: face login declined: {code}: {message}"),
        ),
        Err(e) => (libc::LOG_WARNING, format!("user {user}: {e} ({ms} ms)")),
    };
    handle.log(priority, &line);
    code
}

fn fmt_score(score: Option<f64>) -> String {
    score.map_or_else(|| "none".to_string(), |s| format!("{s:.3}"))
}
