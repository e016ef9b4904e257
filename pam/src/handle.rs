//! Safe calls on the handle libpam gives the module: the user, items, environment, the
//! conversation (messages on the person's screen) and syslog.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use crate::ffi::{self, PamHandle};

pub struct Handle {
    raw: *mut PamHandle,
}

impl Handle {
    /// # Safety
    /// `raw` is the handle libpam passed to this call of a `pam_sm_*` entry point.
    pub unsafe fn new(raw: *mut PamHandle) -> Self {
        Self { raw }
    }

    /// The account being authenticated (libpam asks for it if the application set none).
    pub fn user(&self) -> Result<String, c_int> {
        let mut user: *const c_char = std::ptr::null();
        // SAFETY: valid handle; libpam keeps the string alive while the handle lives.
        let rc = unsafe { ffi::pam_get_user(self.raw, &mut user, std::ptr::null()) };
        if rc != ffi::PAM_SUCCESS {
            return Err(rc);
        }
        if user.is_null() {
            return Err(ffi::PAM_USER_UNKNOWN);
        }
        // SAFETY: non-null, NUL-terminated string owned by libpam.
        let user = unsafe { CStr::from_ptr(user) }
            .to_string_lossy()
            .into_owned();
        if user.is_empty() {
            return Err(ffi::PAM_USER_UNKNOWN);
        }
        Ok(user)
    }

    /// A string item (PAM_RHOST, PAM_TTY, ...), if set.
    pub fn item(&self, item_type: c_int) -> Option<String> {
        let mut item: *const c_void = std::ptr::null();
        // SAFETY: valid handle; string items are NUL-terminated.
        let rc = unsafe { ffi::pam_get_item(self.raw, item_type, &mut item) };
        if rc != ffi::PAM_SUCCESS || item.is_null() {
            return None;
        }
        // SAFETY: as above.
        Some(
            unsafe { CStr::from_ptr(item.cast()) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// A variable of the PAM environment, else of the process.
    pub fn env(&self, name: &str) -> Option<String> {
        let c_name = CString::new(name).ok()?;
        // SAFETY: valid handle and name.
        let value = unsafe { ffi::pam_getenv(self.raw, c_name.as_ptr()) };
        if !value.is_null() {
            // SAFETY: NUL-terminated string owned by libpam.
            return Some(
                unsafe { CStr::from_ptr(value) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        std::env::var(name).ok()
    }

    /// Show one line through the application's conversation function (a terminal prints it, a
    /// display manager shows it under the login box).
    pub fn say(&self, style: c_int, text: &str) -> Result<(), c_int> {
        let mut conv: *const c_void = std::ptr::null();
        // SAFETY: valid handle; PAM_CONV is a `struct pam_conv *`.
        let rc = unsafe { ffi::pam_get_item(self.raw, ffi::PAM_CONV, &mut conv) };
        if rc != ffi::PAM_SUCCESS || conv.is_null() {
            return Err(ffi::PAM_CONV_ERR);
        }
        // SAFETY: libpam stores a valid pam_conv for the handle's lifetime.
        let conv = unsafe { &*(conv as *const ffi::PamConv) };
        let Some(function) = conv.conv else {
            return Err(ffi::PAM_CONV_ERR);
        };
        let text = CString::new(text.replace('\0', "")).map_err(|_| ffi::PAM_CONV_ERR)?;
        let message = ffi::PamMessage {
            msg_style: style,
            msg: text.as_ptr(),
        };
        let mut messages = [&message as *const ffi::PamMessage];
        let mut response: *mut ffi::PamResponse = std::ptr::null_mut();
        // SAFETY: one message that outlives the call; the response, if any, is malloc'd by the
        // application and ours to free.
        let rc = unsafe { function(1, messages.as_mut_ptr(), &mut response, conv.appdata_ptr) };
        if !response.is_null() {
            // SAFETY: as above: one pam_response and its optional string, both from malloc.
            unsafe {
                libc::free((*response).resp.cast());
                libc::free(response.cast());
            }
        }
        if rc == ffi::PAM_SUCCESS {
            Ok(())
        } else {
            Err(rc)
        }
    }

    /// One line to syslog (auth facility, through libpam: tagged with the PAM service name).
    pub fn log(&self, priority: c_int, text: &str) {
        let Ok(text) = CString::new(text.replace('\0', "")) else {
            return;
        };
        // SAFETY: a constant "%s" format with one C string argument.
        unsafe { ffi::pam_syslog(self.raw, priority, c"%s".as_ptr(), text.as_ptr()) };
    }
}
