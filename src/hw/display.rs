//! What the person at the door reads. Screens are drawn with `embedded-graphics` into a
//! [`Canvas`] of the panel's size, with the largest font that fits, so the same screens work on
//! a 240×240 colour panel and a 128×64 one. Backends: PNG files (headless, tests) and the Linux
//! framebuffer.

use std::path::{Path, PathBuf};

use embedded_graphics::mono_font::iso_8859_1::{
    FONT_10X20, FONT_5X8, FONT_6X10, FONT_6X13_BOLD, FONT_7X13_BOLD, FONT_9X18_BOLD,
};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::vision::quality::Hint;

#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Png { path: PathBuf, message: String },
    #[error("framebuffer {path}: {message}")]
    Framebuffer { path: PathBuf, message: String },
}

/// Everything the terminal can show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Idle,
    Hint(Hint),
    Welcome(String),
    Unknown,
    /// The liveness check failed.
    Spoof,
    /// Too many failed attempts; seconds left.
    Locked(u64),
    CameraLost,
    /// Guided enrolment: what to do now, and how many of the poses are captured.
    Enrol {
        prompt: String,
        done: usize,
        total: usize,
    },
    /// Guided enrolment finished for this person.
    Enrolled(String),
}

impl Screen {
    /// A short stable name (PNG file names, logs, tests).
    pub fn kind(&self) -> &'static str {
        match self {
            Screen::Idle => "idle",
            Screen::Hint(Hint::LookAtCamera) => "look_at_camera",
            Screen::Hint(Hint::MoveCloser) => "move_closer",
            Screen::Hint(Hint::MoreLight) => "more_light",
            Screen::Hint(Hint::HoldStill) => "hold_still",
            Screen::Welcome(_) => "welcome",
            Screen::Unknown => "unknown",
            Screen::Spoof => "spoof",
            Screen::Locked(_) => "locked",
            Screen::CameraLost => "camera_lost",
            Screen::Enrol { .. } => "enrol",
            Screen::Enrolled(_) => "enrolled",
        }
    }

    /// Background colour, the main line(s) and a smaller line below.
    fn content(&self) -> (Rgb888, String, String) {
        let (amber, green, red, slate, grey) = (
            Rgb888::new(0x8a, 0x4b, 0x00),
            Rgb888::new(0x0b, 0x6b, 0x2e),
            Rgb888::new(0x9b, 0x15, 0x15),
            Rgb888::new(0x1c, 0x2b, 0x3a),
            Rgb888::new(0x40, 0x40, 0x40),
        );
        let (bg, title, sub) = match self {
            Screen::Idle => (slate, "Ready".into(), "Step up to the camera".into()),
            Screen::Hint(Hint::LookAtCamera) => (
                amber,
                "Look at the camera".into(),
                "Face it straight on".into(),
            ),
            Screen::Hint(Hint::MoveCloser) => {
                (amber, "Move closer".into(), "Your face is too small".into())
            }
            Screen::Hint(Hint::MoreLight) => {
                (amber, "More light".into(), "Your face is too dark".into())
            }
            Screen::Hint(Hint::HoldStill) => {
                (amber, "Hold still".into(), "The picture is blurred".into())
            }
            // The name gets the second line to itself: a long one then still fits large.
            Screen::Welcome(name) => (green, "Welcome".into(), name.clone()),
            Screen::Unknown => (red, "Unknown".into(), "Not recognised".into()),
            Screen::Spoof => (
                red,
                "Photo or screen detected".into(),
                "Show your face".into(),
            ),
            Screen::Locked(s) => (red, "Too many tries".into(), format!("Wait {s} s")),
            Screen::CameraLost => (grey, "Camera lost".into(), "Reconnecting...".into()),
            Screen::Enrol {
                prompt,
                done,
                total,
            } => (slate, prompt.clone(), format!("{done} of {total} done")),
            Screen::Enrolled(name) => (green, "Enrolled".into(), name.clone()),
        };
        (bg, title, sub)
    }
}

/// Display and panel settings of `[outputs]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayKind {
    None,
    /// PNG files in `png_dir`, one per screen change.
    Png,
    /// The Linux framebuffer device `framebuffer`.
    Fb,
}

pub trait Display: Send {
    fn show(&mut self, screen: &Screen) -> Result<(), DisplayError>;
}

/// An RGB framebuffer in memory that embedded-graphics draws into.
#[derive(Debug, Clone)]
pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<Rgb888>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![Rgb888::BLACK; width as usize * height as usize],
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> Rgb888 {
        self.pixels[(y * self.width + x) as usize]
    }

    pub fn to_image(&self) -> RgbImage {
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let p = self.pixel(x, y);
            image::Rgb([p.r(), p.g(), p.b()])
        })
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                self.pixels[(p.y as u32 * self.width + p.x as u32) as usize] = c;
            }
        }
        Ok(())
    }
}

/// Draws every pixel as an `s`×`s` block: bitmap fonts twice or three times their size on a
/// large panel, still crisp.
struct Scaled<'a, D> {
    inner: &'a mut D,
    s: u32,
}

impl<D: DrawTarget<Color = Rgb888>> OriginDimensions for Scaled<'_, D> {
    fn size(&self) -> Size {
        let size = self.inner.bounding_box().size;
        Size::new(size.width / self.s, size.height / self.s)
    }
}

impl<D: DrawTarget<Color = Rgb888>> DrawTarget for Scaled<'_, D> {
    type Color = Rgb888;
    type Error = D::Error;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        let s = self.s as i32;
        for Pixel(p, c) in pixels {
            let block = Rectangle::new(Point::new(p.x * s, p.y * s), Size::new(self.s, self.s));
            self.inner.fill_solid(&block, c)?;
        }
        Ok(())
    }
}

/// Fonts from largest to smallest: (font, scale).
const TITLE_FONTS: [(&MonoFont, u32); 7] = [
    (&FONT_10X20, 3),
    (&FONT_10X20, 2),
    (&FONT_9X18_BOLD, 1),
    (&FONT_7X13_BOLD, 1),
    (&FONT_6X13_BOLD, 1),
    (&FONT_6X10, 1),
    (&FONT_5X8, 1),
];
const SUB_FONTS: [(&MonoFont, u32); 4] = [
    (&FONT_10X20, 1),
    (&FONT_7X13_BOLD, 1),
    (&FONT_6X10, 1),
    (&FONT_5X8, 1),
];

/// Split `text` into lines of at most `cols` characters at spaces; `None` if a word is longer.
fn wrap(text: &str, cols: usize) -> Option<Vec<String>> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if word.chars().count() > cols {
            return None;
        }
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= cols => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    Some(lines)
}

/// The largest (font, scale, lines) whose wrapped text fits `width`×`max_height`.
fn fit<'f>(
    text: &str,
    fonts: &[(&'f MonoFont<'f>, u32)],
    width: u32,
    max_height: u32,
) -> Option<(&'f MonoFont<'f>, u32, Vec<String>)> {
    fonts.iter().find_map(|&(font, s)| {
        let cw = (font.character_size.width + font.character_spacing) * s;
        let lines = wrap(text, (width / cw.max(1)) as usize)?;
        let h = lines.len() as u32 * font.character_size.height * s;
        (h <= max_height && !lines.is_empty()).then_some((font, s, lines))
    })
}

fn draw_lines<D: DrawTarget<Color = Rgb888>>(
    target: &mut D,
    font: &MonoFont,
    s: u32,
    lines: &[String],
    centre_x: i32,
    mut top: i32,
) -> Result<i32, D::Error> {
    let style = MonoTextStyle::new(font, Rgb888::WHITE);
    let layout = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Top)
        .build();
    let line_h = (font.character_size.height * s) as i32;
    let mut scaled = Scaled { inner: target, s };
    for line in lines {
        let at = Point::new(centre_x / s as i32, top / s as i32);
        Text::with_text_style(line, at, style, layout).draw(&mut scaled)?;
        top += line_h;
    }
    Ok(top)
}

/// Draw `screen` filling `target`: the title as large as fits in the upper part, the smaller
/// line below it, both centred.
pub fn draw<D: DrawTarget<Color = Rgb888>>(
    screen: &Screen,
    target: &mut D,
) -> Result<(), D::Error> {
    let (bg, title, sub) = screen.content();
    target.clear(bg)?;
    let Size { width, height } = target.bounding_box().size;
    let margin = (width / 20).max(2);
    let inner_w = width - 2 * margin;
    let gap = (height / 16).max(2);
    let sub_fit = fit(&sub, &SUB_FONTS, inner_w, height / 3);
    let sub_h = sub_fit.as_ref().map_or(0, |(f, s, l)| {
        l.len() as u32 * f.character_size.height * s + gap
    });
    let Some((font, s, lines)) = fit(&title, &TITLE_FONTS, inner_w, height - 2 * margin - sub_h)
    else {
        return Ok(());
    };
    let title_h = lines.len() as u32 * font.character_size.height * s;
    let total = title_h + sub_h;
    let top = ((height - total.min(height)) / 2) as i32;
    let centre = (width / 2) as i32;
    let bottom = draw_lines(target, font, s, &lines, centre, top)?;
    if let Some((f, fs, l)) = sub_fit {
        draw_lines(target, f, fs, &l, centre, bottom + gap as i32)?;
    }
    Ok(())
}

/// Headless display: every screen change becomes `NNNN-kind.png` in a folder.
pub struct PngDisplay {
    dir: PathBuf,
    canvas: Canvas,
    shown: u32,
    last: Option<Screen>,
}

impl PngDisplay {
    pub fn new(dir: &Path, width: u32, height: u32) -> Result<Self, DisplayError> {
        std::fs::create_dir_all(dir).map_err(|source| DisplayError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            canvas: Canvas::new(width, height),
            shown: 0,
            last: None,
        })
    }
}

impl Display for PngDisplay {
    fn show(&mut self, screen: &Screen) -> Result<(), DisplayError> {
        if self.last.as_ref() == Some(screen) {
            return Ok(());
        }
        let Ok(()) = draw(screen, &mut self.canvas);
        let path = self
            .dir
            .join(format!("{:04}-{}.png", self.shown, screen.kind()));
        self.canvas
            .to_image()
            .save(&path)
            .map_err(|e| DisplayError::Png {
                path: path.clone(),
                message: e.to_string(),
            })?;
        self.shown += 1;
        self.last = Some(screen.clone());
        Ok(())
    }
}

/// The Linux framebuffer (`/dev/fbN`), geometry read from sysfs: an HDMI screen (32 bits per
/// pixel), an SPI TFT such as the ST7789 240×240 through the kernel's `panel-mipi-dbi` or fbtft
/// driver (16), or an I2C/SPI OLED such as the SSD1306 128×64 through `ssd1307fb` (1).
pub struct FramebufferDisplay {
    path: PathBuf,
    file: std::fs::File,
    canvas: Canvas,
    bits: u32,
    stride: usize,
    bytes: Vec<u8>,
    last: Option<Screen>,
}

impl FramebufferDisplay {
    pub fn open(path: &Path) -> Result<Self, DisplayError> {
        let err = |message: String| DisplayError::Framebuffer {
            path: path.to_path_buf(),
            message,
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| err("not a device path".into()))?;
        let sys = Path::new("/sys/class/graphics").join(name);
        let read = |f: &str| {
            std::fs::read_to_string(sys.join(f))
                .map(|s| s.trim().to_string())
                .map_err(|e| err(format!("{}: {e}", sys.join(f).display())))
        };
        let size = read("virtual_size")?;
        let (w, h) = size
            .split_once(',')
            .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
            .ok_or_else(|| err(format!("virtual_size {size:?}")))?;
        let bits: u32 = read("bits_per_pixel")?
            .parse()
            .map_err(|_| err("bits_per_pixel".into()))?;
        let stride: usize = read("stride")?.parse().map_err(|_| err("stride".into()))?;
        if ![1, 16, 32].contains(&bits) {
            return Err(err(format!(
                "{bits} bits per pixel (1, 16 or 32 supported)"
            )));
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            canvas: Canvas::new(w, h),
            bits,
            stride,
            bytes: vec![0; stride * h as usize],
            last: None,
        })
    }
}

/// Pack `canvas` into framebuffer memory, `stride` bytes per row: RGB565 or XRGB8888
/// little-endian, or 1 bit per pixel (least significant bit first, 1 = lit, as `ssd1307fb` reads
/// it) where the light text on the dark backgrounds lights up.
pub fn pack_framebuffer(canvas: &Canvas, bits: u32, stride: usize, out: &mut [u8]) {
    for y in 0..canvas.height {
        let row = &mut out[y as usize * stride..];
        if bits == 1 {
            row[..canvas.width.div_ceil(8) as usize].fill(0);
            for x in 0..canvas.width {
                let p = canvas.pixel(x, y);
                let luma = 299 * p.r() as u32 + 587 * p.g() as u32 + 114 * p.b() as u32;
                if luma >= 128 * 1000 {
                    row[x as usize / 8] |= 1 << (x % 8);
                }
            }
            continue;
        }
        for x in 0..canvas.width {
            let p = canvas.pixel(x, y);
            let i = x as usize;
            if bits == 16 {
                let v =
                    ((p.r() as u16 >> 3) << 11) | ((p.g() as u16 >> 2) << 5) | (p.b() as u16 >> 3);
                row[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
            } else {
                row[i * 4..i * 4 + 4].copy_from_slice(&[p.b(), p.g(), p.r(), 0xFF]);
            }
        }
    }
}

impl Display for FramebufferDisplay {
    fn show(&mut self, screen: &Screen) -> Result<(), DisplayError> {
        use std::os::unix::fs::FileExt;
        if self.last.as_ref() == Some(screen) {
            return Ok(());
        }
        let Ok(()) = draw(screen, &mut self.canvas);
        pack_framebuffer(&self.canvas, self.bits, self.stride, &mut self.bytes);
        self.file
            .write_all_at(&self.bytes, 0)
            .map_err(|source| DisplayError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.last = Some(screen.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn all_screens() -> Vec<Screen> {
        vec![
            Screen::Idle,
            Screen::Hint(Hint::LookAtCamera),
            Screen::Hint(Hint::MoveCloser),
            Screen::Hint(Hint::MoreLight),
            Screen::Hint(Hint::HoldStill),
            Screen::Welcome("Lin-Manuel Miranda".into()),
            Screen::Unknown,
            Screen::Spoof,
            Screen::Locked(30),
            Screen::CameraLost,
            Screen::Enrol {
                prompt: crate::terminal::guided_enrol::Pose::Glasses.prompt().into(),
                done: 3,
                total: 4,
            },
            Screen::Enrolled("Lin-Manuel Miranda".into()),
        ]
    }

    /// Rows holding white (text) pixels, and the text's bounding box.
    fn text_extent(c: &Canvas) -> (u32, [u32; 4]) {
        let (mut n, mut b) = (0, [u32::MAX, u32::MAX, 0, 0]);
        for y in 0..c.height {
            for x in 0..c.width {
                if c.pixel(x, y) == Rgb888::WHITE {
                    n += 1;
                    b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
                }
            }
        }
        (n, b)
    }

    #[test]
    fn every_screen_has_text_inside_the_panel_on_both_panel_sizes() {
        for (w, h) in [(240, 240), (128, 64)] {
            for screen in all_screens() {
                let mut c = Canvas::new(w, h);
                let Ok(()) = draw(&screen, &mut c);
                let (n, b) = text_extent(&c);
                assert!(n > 100, "{w}×{h} {screen:?}: only {n} text pixels");
                // Inside a margin: nothing clipped at the edges.
                assert!(
                    b[0] >= 2 && b[1] >= 1 && b[2] < w - 2 && b[3] < h - 1,
                    "{w}×{h} {screen:?}: {b:?}"
                );
            }
        }
    }

    #[test]
    fn the_title_uses_the_largest_font_that_fits() {
        // 128 px wide: "Welcome," and a long name need the small fonts, but no smaller than
        // 6×10 (readable on a 0.96" OLED); on 240 px the short titles are drawn scaled up.
        let (font, s, lines) = fit("Move closer", &TITLE_FONTS, 128 - 12, 64).unwrap();
        assert!(font.character_size.height * s >= 13, "{lines:?}");
        let (font, s, _) = fit("Unknown", &TITLE_FONTS, 240 - 24, 160).unwrap();
        assert!(font.character_size.height * s >= 40);
        let (font, s, lines) =
            fit("Welcome, Lin-Manuel Miranda", &TITLE_FONTS, 128 - 12, 40).unwrap();
        assert!(font.character_size.height * s >= 10, "{lines:?}");
    }

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(
            wrap("Look at the camera", 10).unwrap(),
            ["Look at", "the camera"]
        );
        assert!(wrap("Supercalifragilistic", 10).is_none());
    }

    #[test]
    fn png_display_writes_one_file_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = PngDisplay::new(dir.path(), 128, 64).unwrap();
        for s in [Screen::Idle, Screen::Idle, Screen::Unknown, Screen::Idle] {
            d.show(&s).unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["0000-idle.png", "0001-unknown.png", "0002-idle.png"]
        );
        let img = image::open(dir.path().join("0001-unknown.png"))
            .unwrap()
            .into_rgb8();
        assert_eq!(img.dimensions(), (128, 64));
    }

    #[test]
    fn framebuffer_packing() {
        let mut c = Canvas::new(2, 1);
        let Ok(()) = c.draw_iter([Pixel(Point::new(1, 0), Rgb888::new(255, 0, 8))]);
        let mut out = vec![0u8; 2 * 4 + 4];
        pack_framebuffer(&c, 32, 12, &mut out);
        assert_eq!(&out[4..8], &[8, 0, 255, 255]);
        let mut out16 = vec![0u8; 4];
        pack_framebuffer(&c, 16, 4, &mut out16);
        assert_eq!(u16::from_le_bytes([out16[2], out16[3]]), 0xF801);
    }

    #[test]
    fn monochrome_panels_light_exactly_the_text() {
        // An SSD1306 128×64 OLED: 16 bytes per row; every background is dark enough to stay
        // off, so the lit pixels are the white text pixels.
        for screen in all_screens() {
            let mut c = Canvas::new(128, 64);
            let Ok(()) = draw(&screen, &mut c);
            let mut out = vec![0xAAu8; 16 * 64];
            pack_framebuffer(&c, 1, 16, &mut out);
            let lit: u32 = out.iter().map(|b| b.count_ones()).sum();
            let (text, _) = text_extent(&c);
            assert_eq!(lit, text, "{screen:?}");
            for y in 0..64u32 {
                for x in 0..128u32 {
                    let on = out[(y * 16 + x / 8) as usize] >> (x % 8) & 1 == 1;
                    assert_eq!(on, c.pixel(x, y) == Rgb888::WHITE, "{screen:?} ({x}, {y})");
                }
            }
        }
    }
}
