//! A fake camera for the emulated-board test (board/vm/test): writes still images into a V4L2
//! output device (v4l2loopback) as YUYV frames, so `facegate run` captures them through its real
//! V4L2 code. Not part of the product.
//!
//! `v4l2_feed DEVICE WIDTHxHEIGHT FPS CONTROL_FILE`
//!
//! Every frame it reads CONTROL_FILE: an image path (shown letterboxed on mid grey, as if held
//! still in front of the camera), `blank` (an empty grey frame) or `stop` (exit). Whoever drives
//! the test switches what the camera sees by rewriting that file.

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use v4l::video::Output;
use v4l::{Device, Format, FourCC};

/// RGB → YUYV 4:2:2 with BT.601 limited-range coefficients (the inverse of what
/// `facegate::media::frame::yuyv_to_rgb_into` decodes).
fn to_yuyv(rgb: &RgbImage) -> Vec<u8> {
    let y = |[r, g, b]: [i32; 3]| (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
    let u = |[r, g, b]: [i32; 3]| (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
    let v = |[r, g, b]: [i32; 3]| (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
    let mut out = Vec::with_capacity(rgb.as_raw().len() / 3 * 2);
    for pair in rgb.as_raw().chunks_exact(6) {
        let a = [pair[0], pair[1], pair[2]].map(i32::from);
        let b = [pair[3], pair[4], pair[5]].map(i32::from);
        // Chroma from the mean of the two pixels.
        let m = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2];
        out.extend_from_slice(&[y(a), u(m), y(b), v(m)]);
    }
    out
}

/// `what` fitted into a `width`×`height` frame on mid grey.
fn frame(what: &str, width: u32, height: u32) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut canvas = RgbImage::from_pixel(width, height, Rgb([128, 128, 128]));
    if what != "blank" {
        let photo = image::open(what)
            .map_err(|e| format!("{what}: {e}"))?
            .to_rgb8();
        let scale =
            (width as f32 / photo.width() as f32).min(height as f32 / photo.height() as f32);
        let (w, h) = (
            ((photo.width() as f32 * scale).round() as u32).clamp(1, width),
            ((photo.height() as f32 * scale).round() as u32).clamp(1, height),
        );
        let fitted = image::imageops::resize(&photo, w, h, FilterType::Triangle);
        image::imageops::overlay(
            &mut canvas,
            &fitted,
            i64::from((width - w) / 2),
            i64::from((height - h) / 2),
        );
    }
    Ok(to_yuyv(&canvas))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [device, size, fps, control] = args.as_slice() else {
        return Err("usage: v4l2_feed DEVICE WIDTHxHEIGHT FPS CONTROL_FILE".into());
    };
    let (width, height) = size.split_once('x').ok_or("size as WIDTHxHEIGHT")?;
    let (width, height): (u32, u32) = (width.parse()?, height.parse()?);
    if width % 2 != 0 || height == 0 {
        return Err("YUYV needs an even width and a height".into());
    }
    let period = Duration::from_secs_f32(1.0 / fps.parse::<f32>()?.max(0.1));

    let dev = Device::with_path(device).map_err(|e| format!("{device}: {e}"))?;
    let got = Output::set_format(&dev, &Format::new(width, height, FourCC::new(b"YUYV")))
        .map_err(|e| format!("{device}: set output format: {e}"))?;
    if (got.width, got.height, got.fourcc) != (width, height, FourCC::new(b"YUYV")) {
        return Err(format!("{device}: asked for {width}x{height} YUYV, got {got}").into());
    }
    // Frames go through write() on the same descriptor the format was set on; the device keeps
    // ownership of it (ManuallyDrop: the File must not close it).
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(dev.handle().fd()) });

    let mut shown = String::new();
    let mut yuyv = frame("blank", width, height)?;
    let mut next = Instant::now();
    loop {
        let wanted = std::fs::read_to_string(control)
            .map_err(|e| format!("{control}: {e}"))?
            .trim()
            .to_string();
        if wanted == "stop" {
            return Ok(());
        }
        if !wanted.is_empty() && wanted != shown {
            yuyv = frame(&wanted, width, height)?;
            eprintln!("v4l2_feed: now showing {wanted}");
            shown = wanted;
        }
        out.write_all(&yuyv)
            .map_err(|e| format!("{device}: write: {e}"))?;
        next += period;
        match next.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => next = Instant::now(),
        }
    }
}
