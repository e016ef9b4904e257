//! Opening the devices the config names: the frame source (folder, MJPEG stream or file, camera
//! program, V4L2 device), the LEDs and relay, and the display.

use std::path::Path;
#[cfg(any(feature = "gpio", feature = "rpi"))]
use std::time::Duration;

use crate::config::{IndicatorKind, OutputParams};
use crate::hw::camera::{CameraParams, DirSource, FrameSource, MjpegSource, Opener, SourceError};
use crate::hw::display::{Display, DisplayError, DisplayKind, FramebufferDisplay, PngDisplay};
use crate::hw::indicator::{Indicator, IndicatorError, LogIndicator};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0}")]
    Source(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Camera(#[from] SourceError),
    #[error(transparent)]
    Indicator(#[from] IndicatorError),
    #[error(transparent)]
    Display(#[from] DisplayError),
}

/// A function that opens the configured source, for [`Resilient`] to call again after a loss.
pub fn opener(camera: &CameraParams) -> Result<(Opener, bool), DeviceError> {
    let source = camera.source.clone();
    let path = Path::new(&source);
    if let Some(command) = source.strip_prefix(crate::hw::command::PREFIX) {
        let command = command.trim().to_string();
        if command.is_empty() {
            return Err(DeviceError::Source(format!(
                "{source}: name the camera command after `exec:`"
            )));
        }
        let open: Opener = Box::new(move || {
            Ok(
                Box::new(crate::hw::command::CommandSource::spawn(&command)?)
                    as Box<dyn FrameSource>,
            )
        });
        // A camera: when it stops, wait and start it again.
        return Ok((open, true));
    }
    if source == "stdin" || source == "-" {
        let open: Opener = Box::new(|| {
            Ok(Box::new(MjpegSource::new(std::io::stdin(), "stdin")) as Box<dyn FrameSource>)
        });
        return Ok((open, false));
    }
    if path.is_dir() {
        let (dir, fps, paced) = (path.to_path_buf(), camera.fps, camera.realtime);
        let open: Opener = Box::new(move || {
            Ok(Box::new(DirSource::open(&dir, fps, paced)?) as Box<dyn FrameSource>)
        });
        return Ok((open, false));
    }
    if source.starts_with("/dev/video") {
        #[cfg(feature = "v4l2")]
        {
            let camera = camera.clone();
            let open: Opener = Box::new(move || {
                Ok(Box::new(crate::hw::camera::V4l2Source::open(&camera)?) as Box<dyn FrameSource>)
            });
            return Ok((open, true));
        }
        #[cfg(not(feature = "v4l2"))]
        return Err(DeviceError::Unsupported(format!(
            "{source}: this facegate was built without V4L2 support (cargo feature `v4l2`)"
        )));
    }
    if path.is_file() {
        let file = path.to_path_buf();
        let open: Opener = Box::new(move || {
            let f = std::fs::File::open(&file)
                .map_err(|e| SourceError::Lost(format!("{}: {e}", file.display())))?;
            let name = file.display().to_string();
            Ok(
                Box::new(MjpegSource::new(std::io::BufReader::new(f), &name))
                    as Box<dyn FrameSource>,
            )
        });
        return Ok((open, false));
    }
    Err(DeviceError::Source(format!(
        "{source}: no such folder, file or device"
    )))
}

/// The configured LEDs and relay.
pub fn indicator(o: &OutputParams) -> Result<Box<dyn Indicator>, DeviceError> {
    #[cfg(any(feature = "gpio", feature = "rpi"))]
    let pulse = Duration::from_millis(o.gpio.relay_pulse_ms);
    Ok(match o.indicator {
        IndicatorKind::Log => Box::new(LogIndicator::default()),
        #[cfg(feature = "gpio")]
        IndicatorKind::Gpio => Box::new(crate::hw::indicator::LineIndicator::new(
            crate::hw::indicator::CdevLines::open(&o.gpio)?,
            pulse,
        )?),
        #[cfg(feature = "rpi")]
        IndicatorKind::Rpi => Box::new(crate::hw::indicator::LineIndicator::new(
            crate::hw::indicator::RppalLines::open(&o.gpio)?,
            pulse,
        )?),
        #[allow(unreachable_patterns)]
        other => {
            return Err(DeviceError::Unsupported(format!(
                "indicator {other:?}: this facegate was built without its cargo feature"
            )))
        }
    })
}

/// The configured display, or PNG files in `png_dir` when given (headless runs).
pub fn display(
    o: &OutputParams,
    png_dir: Option<&Path>,
) -> Result<Option<Box<dyn Display>>, DeviceError> {
    Ok(match (png_dir, o.display) {
        (Some(dir), _) => Some(Box::new(PngDisplay::new(
            dir,
            o.display_width,
            o.display_height,
        )?)),
        (None, DisplayKind::Png) => Some(Box::new(PngDisplay::new(
            &o.png_dir,
            o.display_width,
            o.display_height,
        )?)),
        (None, DisplayKind::Fb) => Some(Box::new(FramebufferDisplay::open(&o.framebuffer)?)),
        (None, DisplayKind::None) => None,
    })
}
