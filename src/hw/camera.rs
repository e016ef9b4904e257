//! Frame sources: one trait, and the backends a terminal reads from: a folder of frames (tests,
//! demos), an MJPEG stream on a pipe (Raspberry Pi CSI cameras through `rpicam-vid`), and V4L2
//! devices (feature `v4l2`). [`Resilient`] keeps a terminal running when its camera goes away.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::media::frame::{mjpeg_to_rgb, Frame};

/// Pixel format asked of a V4L2 camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Motion JPEG: what most USB cameras give at full frame rate.
    Mjpeg,
    /// YUYV 4:2:2, uncompressed.
    Yuyv,
    /// 8-bit grey (infrared cameras).
    Grey,
}

/// The `[camera]` section: where frames come from and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraParams {
    /// `/dev/videoN` (V4L2), `stdin` (an MJPEG stream, e.g. from `rpicam-vid --codec mjpeg
    /// -o -`), `exec:COMMAND` (a camera program writing MJPEG, restarted when it stops, e.g.
    /// `exec:rpicam-vid -t 0 -n --codec mjpeg -o -`), or a folder of frames.
    pub source: String,
    /// V4L2 pixel format.
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Frames per second asked of a camera; for a folder, the rate its frames were taken at.
    pub fps: f32,
    /// Folders: replay at `fps` in real time rather than as fast as possible.
    pub realtime: bool,
    /// Analyse only every n-th frame (1: all), for boards slower than the camera.
    pub every_nth: u32,
    /// First delay before reopening a lost camera; doubles on each failure...
    pub retry_first_ms: u64,
    /// ...up to this.
    pub retry_max_ms: u64,
    /// Unreadable frames in a row after which the camera counts as lost.
    pub max_bad_frames: u32,
}

impl Default for CameraParams {
    fn default() -> Self {
        Self {
            source: "/dev/video0".to_string(),
            format: PixelFormat::Mjpeg,
            width: 640,
            height: 480,
            fps: 30.0,
            realtime: false,
            every_nth: 1,
            retry_first_ms: 250,
            retry_max_ms: 8000,
            max_bad_frames: 30,
        }
    }
}

impl CameraParams {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: Duration::from_millis(self.retry_first_ms),
            max: Duration::from_millis(self.retry_max_ms.max(self.retry_first_ms)),
            max_bad_frames: self.max_bad_frames,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// One frame could not be read or decoded; the source itself is fine.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// The device or stream failed or could not be opened; it must be (re)opened.
    #[error("{0}")]
    Lost(String),
}

/// Anything that yields camera frames.
pub trait FrameSource: Send {
    /// Fill `frame` with the next frame (reusing its buffer where the format allows); `Ok(false)`
    /// at the end of a finite source (a folder, a closed pipe).
    fn read_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError>;
    /// For logs: what this source reads.
    fn describe(&self) -> String;
}

/// Image files in a folder, in name order, as if a camera had taken them `fps` times a second.
/// Timestamps are `index / fps` whether or not the replay is paced, so decisions do not depend
/// on how fast the machine is.
pub struct DirSource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    fps: f32,
    /// Replay in real time (sleep between frames) instead of as fast as possible.
    paced: bool,
    started: Option<Instant>,
}

impl DirSource {
    pub fn open(dir: &Path, fps: f32, paced: bool) -> Result<Self, SourceError> {
        let lost = |e: std::io::Error| SourceError::Lost(format!("{}: {e}", dir.display()));
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(lost)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(
                            e.to_ascii_lowercase().as_str(),
                            "jpg" | "jpeg" | "png" | "bmp" | "ppm" | "pgm" | "gif"
                        )
                    })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SourceError::Lost(format!(
                "{}: no image files",
                dir.display()
            )));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            next: 0,
            fps: if fps > 0.0 { fps } else { 30.0 },
            paced,
            started: None,
        })
    }

    /// Continue from frame `index` (e.g. after a reopen).
    pub fn seek(&mut self, index: usize) {
        self.next = index;
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn position(&self) -> usize {
        self.next
    }
}

impl FrameSource for DirSource {
    fn read_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let Some(path) = self.files.get(self.next) else {
            return Ok(false);
        };
        let index = self.next as u64;
        self.next += 1;
        let timestamp = Duration::from_secs_f64(index as f64 / self.fps as f64);
        if self.paced {
            let started = *self
                .started
                .get_or_insert_with(|| Instant::now() - timestamp);
            if let Some(wait) = (started + timestamp).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        frame.image = crate::media::image_io::load_rgb(path)
            .map_err(|e| SourceError::BadFrame(e.to_string()))?;
        frame.timestamp = timestamp;
        frame.index = index;
        Ok(true)
    }

    fn describe(&self) -> String {
        format!(
            "folder {} ({} frames at {} fps{})",
            self.dir.display(),
            self.files.len(),
            self.fps,
            if self.paced { ", real time" } else { "" }
        )
    }
}

/// Concatenated JPEGs on a byte stream (what `rpicam-vid --codec mjpeg -o -` writes), split on
/// their start/end markers. Timestamps are arrival times.
pub struct MjpegSource<R> {
    reader: R,
    name: String,
    buf: Vec<u8>,
    eof: bool,
    started: Instant,
    index: u64,
}

/// A JPEG larger than this is taken as garbage and skipped to the next start marker.
const MAX_JPEG_BYTES: usize = 16 << 20;

enum Scan {
    /// A complete JPEG occupies `buf[..end]`.
    Complete(usize),
    NeedMore,
    /// The bytes after the start marker are not a JPEG.
    Invalid,
    /// The JPEG was cut off: another one starts at this offset before it ended.
    Cut(usize),
}

/// From the first scan's data on: the end marker ends the JPEG; a start marker means this one
/// was cut short (entropy-coded data never holds either: 0xFF bytes in it are stuffed).
fn scan_entropy(buf: &[u8], from: usize) -> Scan {
    let mut i = from;
    while let Some(p) = buf[i..].iter().position(|&b| b == 0xFF) {
        let at = i + p;
        match buf.get(at + 1) {
            None => return Scan::NeedMore,
            Some(0xD9) => return Scan::Complete(at + 2),
            Some(0xD8) => return Scan::Cut(at),
            // Stuffed bytes, restart markers, fill bytes, and the tables and headers of
            // further scans (progressive JPEGs): carry on.
            Some(_) => i = at + 1,
        }
    }
    Scan::NeedMore
}

/// Find the end of the JPEG starting at `buf[0]` (which holds a start marker): walk the marker
/// segments by their lengths (so an EXIF thumbnail's markers are skipped) to the scan, then look
/// for the end marker, which entropy-coded data never contains.
fn scan_jpeg(buf: &[u8]) -> Scan {
    let mut i = 2;
    loop {
        if i + 4 > buf.len() {
            return Scan::NeedMore;
        }
        if buf[i] != 0xFF {
            return Scan::Invalid;
        }
        let marker = buf[i + 1];
        match marker {
            0xFF => i += 1, // fill byte
            0xD8 | 0xD9 | 0x01 | 0xD0..=0xD7 => return Scan::Invalid,
            _ => {
                let len = u16::from_be_bytes([buf[i + 2], buf[i + 3]]) as usize;
                if len < 2 {
                    return Scan::Invalid;
                }
                if marker == 0xDA {
                    let scan = i + 2 + len;
                    if scan > buf.len() {
                        return Scan::NeedMore;
                    }
                    return scan_entropy(buf, scan);
                }
                i += 2 + len;
            }
        }
    }
}

impl<R: Read + Send> MjpegSource<R> {
    pub fn new(reader: R, name: &str) -> Self {
        Self {
            reader,
            name: name.to_string(),
            buf: Vec::with_capacity(1 << 20),
            eof: false,
            started: Instant::now(),
            index: 0,
        }
    }

    /// Read more bytes; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, SourceError> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 64 << 10];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SourceError::Lost(format!("{}: {e}", self.name))),
            }
        }
    }

    /// The next complete JPEG, skipping garbage; `Ok(None)` at the end of the stream.
    fn next_jpeg(&mut self) -> Result<Option<Vec<u8>>, SourceError> {
        loop {
            match self.buf.windows(2).position(|w| w == [0xFF, 0xD8]) {
                Some(start) => {
                    self.buf.drain(..start);
                }
                None => {
                    // Keep a trailing 0xFF: it may begin the next start marker.
                    let keep = usize::from(self.buf.last() == Some(&0xFF));
                    self.buf.drain(..self.buf.len() - keep);
                    if !self.fill()? {
                        return Ok(None);
                    }
                    continue;
                }
            }
            match scan_jpeg(&self.buf) {
                Scan::Complete(end) => return Ok(Some(self.buf.drain(..end).collect())),
                Scan::Cut(next) => {
                    self.buf.drain(..next);
                    return Err(SourceError::BadFrame(format!(
                        "{}: a JPEG cut short ({next} bytes) before the next one",
                        self.name
                    )));
                }
                Scan::Invalid => {
                    self.buf.drain(..2);
                    return Err(SourceError::BadFrame(format!(
                        "{}: data after a JPEG start marker is not a JPEG",
                        self.name
                    )));
                }
                Scan::NeedMore if self.buf.len() > MAX_JPEG_BYTES => {
                    self.buf.drain(..2);
                    return Err(SourceError::BadFrame(format!(
                        "{}: no JPEG end within {MAX_JPEG_BYTES} bytes",
                        self.name
                    )));
                }
                Scan::NeedMore => {
                    if !self.fill()? {
                        let cut = self.buf.len();
                        self.buf.clear();
                        return Err(SourceError::BadFrame(format!(
                            "{}: stream ended inside a JPEG ({cut} bytes)",
                            self.name
                        )));
                    }
                }
            }
        }
    }
}

impl<R: Read + Send> FrameSource for MjpegSource<R> {
    fn read_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let Some(jpeg) = self.next_jpeg()? else {
            return Ok(false);
        };
        let index = self.index;
        self.index += 1;
        frame.image = mjpeg_to_rgb(&jpeg)
            .map_err(|e| SourceError::BadFrame(format!("{}: frame {index}: {e}", self.name)))?;
        frame.timestamp = self.started.elapsed();
        frame.index = index;
        Ok(true)
    }

    fn describe(&self) -> String {
        format!("MJPEG stream on {}", self.name)
    }
}

/// How [`Resilient`] retries a lost source.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Consecutive bad frames after which the source is taken as lost and reopened.
    pub max_bad_frames: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(250),
            max: Duration::from_secs(8),
            max_bad_frames: 30,
        }
    }
}

/// What [`Resilient::poll`] saw.
#[derive(Debug)]
pub enum SourceEvent {
    /// The caller's frame now holds the next frame.
    Frame,
    /// One frame was unreadable and skipped.
    Skipped(SourceError),
    /// The source failed (or could not be opened); the next try is in `retry_in`.
    Lost {
        error: SourceError,
        retry_in: Duration,
    },
    /// Still lost; nothing to do before `until`.
    Waiting { until: Instant },
    /// The source is open again after being lost.
    Recovered,
    /// A finite source ended.
    End,
}

/// Opens (and reopens) a source.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, SourceError> + Send>;

/// A source that survives its device: a failure closes it, retries open it again with doubling
/// delays, and frame timestamps keep increasing across reopens. It never sleeps itself: the
/// caller is told how long to wait, and keeps its outputs (display, watchdog) alive meanwhile.
pub struct Resilient {
    open: Opener,
    current: Option<Box<dyn FrameSource>>,
    backoff: Backoff,
    delay: Duration,
    retry_at: Option<Instant>,
    lost: bool,
    bad_in_a_row: u32,
    /// Our time at the open source's first frame, and that frame's own timestamp: a reopened
    /// source's clock starts again, ours carries on.
    base: Option<(Duration, Duration)>,
    /// Our time for the next first frame: zero at start, after a loss the last frame's time
    /// plus the time the camera was away.
    next_base: Duration,
    last_timestamp: Option<Duration>,
    lost_at: Option<Instant>,
    index: u64,
    description: String,
}

impl Resilient {
    pub fn new(open: Opener, backoff: Backoff) -> Self {
        Self {
            open,
            current: None,
            backoff,
            delay: backoff.first,
            retry_at: None,
            lost: false,
            bad_in_a_row: 0,
            base: None,
            next_base: Duration::ZERO,
            last_timestamp: None,
            lost_at: None,
            index: 0,
            description: String::from("(not opened)"),
        }
    }

    pub fn is_lost(&self) -> bool {
        self.lost
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    fn lose(&mut self, error: SourceError, now: Instant) -> SourceEvent {
        self.current = None;
        self.lost = true;
        self.lost_at.get_or_insert(now);
        let retry_in = self.delay;
        self.retry_at = Some(now + retry_in);
        self.delay = (self.delay * 2).min(self.backoff.max);
        SourceEvent::Lost { error, retry_in }
    }

    /// Read the next frame into `frame`, or (re)open the source when it is due; `now` is the
    /// wall clock.
    pub fn poll(&mut self, now: Instant, frame: &mut Frame) -> SourceEvent {
        let Some(source) = self.current.as_mut() else {
            if let Some(until) = self.retry_at.filter(|&t| now < t) {
                return SourceEvent::Waiting { until };
            }
            match (self.open)() {
                Ok(source) => {
                    self.description = source.describe();
                    self.current = Some(source);
                    self.bad_in_a_row = 0;
                    self.base = None;
                    if let (Some(last), Some(lost_at)) = (self.last_timestamp, self.lost_at.take())
                    {
                        self.next_base = last + now.saturating_duration_since(lost_at);
                    }
                    if std::mem::take(&mut self.lost) {
                        self.delay = self.backoff.first;
                        return SourceEvent::Recovered;
                    }
                    return self.poll(now, frame);
                }
                Err(error) => return self.lose(error, now),
            }
        };
        match source.read_into(frame) {
            Ok(true) => {
                self.bad_in_a_row = 0;
                let (ours, theirs) = *self.base.get_or_insert((self.next_base, frame.timestamp));
                let mut t = ours + frame.timestamp.saturating_sub(theirs);
                if let Some(last) = self.last_timestamp {
                    t = t.max(last);
                }
                self.last_timestamp = Some(t);
                frame.timestamp = t;
                frame.index = self.index;
                self.index += 1;
                SourceEvent::Frame
            }
            Ok(false) => SourceEvent::End,
            Err(SourceError::BadFrame(msg)) => {
                self.index += 1;
                self.bad_in_a_row += 1;
                if self.bad_in_a_row >= self.backoff.max_bad_frames.max(1) {
                    return self.lose(
                        SourceError::Lost(format!(
                            "{} bad frames in a row: {msg}",
                            self.bad_in_a_row
                        )),
                        now,
                    );
                }
                SourceEvent::Skipped(SourceError::BadFrame(msg))
            }
            Err(error) => self.lose(error, now),
        }
    }
}

#[cfg(feature = "v4l2")]
pub use super::v4l2::V4l2Source;

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
        let image = image::RgbImage::from_pixel(w, h, image::Rgb([shade, 80, 160]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&image)
            .unwrap();
        out
    }

    /// A reader that hands out at most `chunk` bytes per read, as a pipe does.
    struct Trickle(std::io::Cursor<Vec<u8>>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn mjpeg_stream_is_split_into_frames_and_garbage_is_skipped() {
        let mut stream = b"noise before".to_vec();
        stream.extend(jpeg(32, 24, 10));
        stream.extend(jpeg(16, 8, 200));
        // A frame cut off by a glitch, then garbage containing a false start marker.
        let cut = jpeg(40, 30, 90);
        stream.extend(&cut[..cut.len() / 2]);
        stream.extend([0xFF, 0xD8, 0x00, 0x11]);
        stream.extend(jpeg(8, 8, 50));
        stream.extend(&cut[..cut.len() - 10]);
        for chunk in [7, 64 << 10] {
            let mut src =
                MjpegSource::new(Trickle(std::io::Cursor::new(stream.clone()), chunk), "test");
            let mut sizes = Vec::new();
            let mut bad = 0;
            let mut f = Frame::empty();
            loop {
                match src.read_into(&mut f) {
                    Ok(true) => sizes.push(f.image.dimensions()),
                    Ok(false) => break,
                    Err(SourceError::BadFrame(_)) => bad += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(sizes, [(32, 24), (16, 8), (8, 8)], "chunk {chunk}");
            // The cut frame, the false start marker, the truncated tail: each a bad frame, none
            // fatal, and no good frame lost to them.
            assert_eq!(bad, 3, "chunk {chunk}");
        }
    }

    /// A camera double: yields `ok` frames, then fails as lost; may refuse to open.
    struct Camera {
        frames_left: u32,
        t: Duration,
    }
    impl FrameSource for Camera {
        fn read_into(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
            if self.frames_left == 0 {
                return Err(SourceError::Lost("unplugged".into()));
            }
            self.frames_left -= 1;
            self.t += Duration::from_millis(100);
            frame.timestamp = self.t;
            Ok(true)
        }
        fn describe(&self) -> String {
            "camera double".into()
        }
    }

    #[test]
    fn a_lost_source_is_retried_with_backoff_and_recovers() {
        let opens = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = opens.clone();
        // Open 1 works (3 frames), opens 2 and 3 fail, open 4 works again.
        let opener: Opener =
            Box::new(
                move || match counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    1 | 2 => Err(SourceError::Lost("no such device".into())),
                    _ => Ok(Box::new(Camera {
                        frames_left: 3,
                        t: Duration::ZERO,
                    }) as Box<dyn FrameSource>),
                },
            );
        let t0 = Instant::now();
        let backoff = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(300),
            max_bad_frames: 3,
        };
        let mut src = Resilient::new(opener, backoff);
        let ms = |m| t0 + Duration::from_millis(m);
        let ms_d = Duration::from_millis;
        let mut stamps = Vec::new();
        let mut f = Frame::empty();
        for _ in 0..3 {
            match src.poll(ms(0), &mut f) {
                SourceEvent::Frame => stamps.push(f.timestamp),
                e => panic!("{e:?}"),
            }
        }
        assert!(
            matches!(src.poll(ms(300), &mut f), SourceEvent::Lost { retry_in, .. } if retry_in == Duration::from_millis(100))
        );
        assert!(src.is_lost());
        assert!(
            matches!(src.poll(ms(350), &mut f), SourceEvent::Waiting { until } if until == ms(400))
        );
        // Second open fails: the delay doubles, then is capped.
        assert!(
            matches!(src.poll(ms(400), &mut f), SourceEvent::Lost { retry_in, .. } if retry_in == Duration::from_millis(200))
        );
        assert!(
            matches!(src.poll(ms(600), &mut f), SourceEvent::Lost { retry_in, .. } if retry_in == Duration::from_millis(300))
        );
        assert!(matches!(src.poll(ms(900), &mut f), SourceEvent::Recovered));
        assert!(!src.is_lost());
        match src.poll(ms(900), &mut f) {
            SourceEvent::Frame => {
                // The new camera's clock restarted; ours continues from the last frame (200 ms)
                // plus the time the camera was away (300 → 900 ms).
                assert_eq!(stamps, [Duration::ZERO, ms_d(100), ms_d(200)]);
                assert_eq!(f.timestamp, ms_d(800));
                assert!(f.timestamp > *stamps.last().unwrap());
                assert_eq!(f.index, 3);
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(opens.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[test]
    fn a_folder_replays_in_order_with_nominal_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        for (name, shade) in [("b.jpg", 2u8), ("a.jpg", 1), ("c.png", 3)] {
            image::RgbImage::from_pixel(4, 4, image::Rgb([shade * 60, 0, 0]))
                .save(dir.path().join(name))
                .unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
        std::fs::write(dir.path().join("d.jpg"), "not a jpeg").unwrap();
        let mut src = DirSource::open(dir.path(), 20.0, false).unwrap();
        assert_eq!(src.len(), 4);
        let mut seen = Vec::new();
        let mut f = Frame::empty();
        loop {
            match src.read_into(&mut f) {
                Ok(true) => seen.push((f.index, f.timestamp, f.image.get_pixel(0, 0)[0] / 50)),
                Ok(false) => break,
                Err(SourceError::BadFrame(_)) => seen.push((99, Duration::ZERO, 0)),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            seen,
            [
                (0, Duration::ZERO, 1),
                (1, Duration::from_millis(50), 2),
                (2, Duration::from_millis(100), 3),
                (99, Duration::ZERO, 0),
            ]
        );
        assert!(DirSource::open(&dir.path().join("missing"), 20.0, false).is_err());
    }
}
