//! A camera program as a frame source: the Raspberry Pi's CSI camera modules give no frames
//! through plain V4L2 and are read through libcamera, whose `rpicam-vid -t 0 --codec mjpeg -o -`
//! writes MJPEG to its standard output. Piping that into `--source stdin` works until the program
//! dies; as a source of its own it is restarted like any lost camera.

use std::process::{Child, ChildStdout, Command, Stdio};

use crate::media::frame::Frame;

use super::camera::{FrameSource, MjpegSource, SourceError};

/// The prefix of a `[camera] source` that names a command.
pub const PREFIX: &str = "exec:";

/// A running camera command and the MJPEG stream on its standard output.
pub struct CommandSource {
    command: String,
    child: Child,
    stream: MjpegSource<ChildStdout>,
}

impl CommandSource {
    /// Start `command` with `sh -c` (so a user writes it as in a shell); its standard error
    /// goes to ours, where the program's own complaints are worth reading.
    pub fn spawn(command: &str) -> Result<Self, SourceError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| SourceError::Lost(format!("starting `{command}`: {e}")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        Ok(Self {
            stream: MjpegSource::new(stdout, command),
            command: command.to_string(),
            child,
        })
    }
}

impl FrameSource for CommandSource {
    fn read_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        if self.stream.read_into(frame)? {
            return Ok(true);
        }
        // The program closed its output: a camera that stops is lost, never finished.
        let status = match self.child.wait() {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        Err(SourceError::Lost(format!(
            "camera command `{}` ended ({status})",
            self.command
        )))
    }

    fn describe(&self) -> String {
        format!("MJPEG from `{}` (pid {})", self.command, self.child.id())
    }
}

impl Drop for CommandSource {
    fn drop(&mut self) {
        // Reopening starts a new process: never leave the old one holding the camera.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
