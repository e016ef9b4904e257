//! V4L2 cameras through the `v4l` crate: memory-mapped buffers, YUYV / GREY converted into the
//! caller's frame without allocating, MJPEG decoded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use super::camera::{CameraParams, FrameSource, PixelFormat, SourceError};
use crate::media::frame::{grey_to_rgb_into, mjpeg_to_rgb, yuyv_to_rgb_into, Frame};

/// A frame that does not arrive within this is a camera gone quiet: reopen it.
const DEQUEUE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct V4l2Source {
    path: PathBuf,
    format: PixelFormat,
    width: u32,
    height: u32,
    fps: f32,
    // The stream holds its own handle to the device; keep the device open alongside it.
    stream: Stream<'static>,
    _device: Device,
    started: Instant,
    index: u64,
}

fn fourcc(format: PixelFormat) -> FourCC {
    FourCC::new(match format {
        PixelFormat::Mjpeg => b"MJPG",
        PixelFormat::Yuyv => b"YUYV",
        PixelFormat::Grey => b"GREY",
    })
}

impl V4l2Source {
    pub fn open(params: &CameraParams) -> Result<Self, SourceError> {
        let path = PathBuf::from(&params.source);
        let lost = |what: &str, e: std::io::Error| {
            SourceError::Lost(format!("{}: {what}: {e}", path.display()))
        };
        let device = Device::with_path(&path).map_err(|e| lost("open", e))?;
        let mut wanted = device.format().map_err(|e| lost("get format", e))?;
        wanted.width = params.width;
        wanted.height = params.height;
        wanted.fourcc = fourcc(params.format);
        let got = device
            .set_format(&wanted)
            .map_err(|e| lost("set format", e))?;
        if got.fourcc != wanted.fourcc {
            return Err(SourceError::Lost(format!(
                "{}: the camera does not offer {:?} (it chose {})",
                path.display(),
                params.format,
                got.fourcc
            )));
        }
        if params.fps > 0.0 {
            // Not every camera takes a frame rate; it then runs at its own.
            if let Err(e) = device.set_params(&Parameters::with_fps(params.fps.round() as u32)) {
                log::warn!("{}: cannot set {} fps: {e}", path.display(), params.fps);
            }
        }
        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, 4)
            .map_err(|e| lost("map buffers", e))?;
        stream.set_timeout(DEQUEUE_TIMEOUT);
        Ok(Self {
            path,
            format: params.format,
            width: got.width,
            height: got.height,
            fps: params.fps,
            stream,
            _device: device,
            started: Instant::now(),
            index: 0,
        })
    }
}

impl FrameSource for V4l2Source {
    fn read_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let (buf, meta) = self
            .stream
            .next()
            .map_err(|e| SourceError::Lost(format!("{}: {e}", self.path.display())))?;
        let data = &buf[..(meta.bytesused as usize).min(buf.len())];
        let index = self.index;
        self.index += 1;
        let bad = |e: crate::media::frame::ConvertError| {
            SourceError::BadFrame(format!("{}: frame {index}: {e}", self.path.display()))
        };
        match self.format {
            PixelFormat::Yuyv => yuyv_to_rgb_into(data, self.width, self.height, &mut frame.image),
            PixelFormat::Grey => grey_to_rgb_into(data, self.width, self.height, &mut frame.image),
            PixelFormat::Mjpeg => mjpeg_to_rgb(data).map(|image| frame.image = image),
        }
        .map_err(bad)?;
        frame.timestamp = self.started.elapsed();
        frame.index = index;
        Ok(true)
    }

    fn describe(&self) -> String {
        format!(
            "V4L2 {} ({:?} {}×{} at {} fps)",
            self.path.display(),
            self.format,
            self.width,
            self.height,
            self.fps
        )
    }
}
