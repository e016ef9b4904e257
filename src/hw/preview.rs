//! The live preview: what the camera sees, a box on each face the terminal is deciding on and
//! how far the decision has got, and the hint (or "Checking") in a banner below. Panels too
//! small for a useful picture (narrower than [`MIN_PREVIEW_WIDTH`], the 128×64 OLEDs) show the
//! text screen instead.

use std::sync::Arc;

use embedded_graphics::mono_font::iso_8859_1::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use image::RgbImage;

use crate::vision::quality::Hint;

/// Narrower panels get the text screen.
pub const MIN_PREVIEW_WIDTH: u32 = 160;

/// One face on the preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewFace {
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [i32; 4],
    /// How far its decision has got, 0–100.
    pub progress: u8,
}

/// A frame as the preview shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The frame scaled down to fit the panel's picture area.
    pub thumbnail: Arc<RgbImage>,
    /// The frame's own size (the boxes are in its pixels).
    pub frame_size: (u32, u32),
    pub faces: Vec<PreviewFace>,
    pub hint: Option<Hint>,
}

/// Height of the banner under the picture on a `height`-pixel panel.
fn banner_height(height: u32) -> u32 {
    (height / 6).max(24)
}

impl Preview {
    /// Scale `frame` to the picture area of a `width`×`height` panel.
    pub fn new(
        frame: &RgbImage,
        faces: Vec<PreviewFace>,
        hint: Option<Hint>,
        width: u32,
        height: u32,
    ) -> Self {
        let area_h = height.saturating_sub(banner_height(height)).max(1);
        let (fw, fh) = frame.dimensions();
        let k = (width as f32 / fw.max(1) as f32).min(area_h as f32 / fh.max(1) as f32);
        let (tw, th) = (
            ((fw as f32 * k) as u32).max(1),
            ((fh as f32 * k) as u32).max(1),
        );
        Self {
            thumbnail: Arc::new(image::imageops::thumbnail(frame, tw, th)),
            frame_size: (fw, fh),
            faces,
            hint,
        }
    }

    /// The most advanced decision on screen, 0–100.
    pub fn progress(&self) -> u8 {
        self.faces.iter().map(|f| f.progress).max().unwrap_or(0)
    }

    /// The banner's text.
    pub fn caption(&self) -> String {
        match self.hint {
            Some(Hint::MoveCloser) => "Move closer".into(),
            Some(Hint::MoreLight) => "More light".into(),
            Some(Hint::LookAtCamera) => "Look at the camera".into(),
            Some(Hint::HoldStill) => "Hold still".into(),
            None => format!("Checking {}%", self.progress()),
        }
    }

    /// Where a frame box lands on a `width`×`height` panel: `[x1, y1, x2, y2]`.
    pub fn box_on_panel(&self, bbox: [i32; 4], width: u32, height: u32) -> [i32; 4] {
        let (x0, y0, k) = self.placement(width, height);
        let map = |v: i32, o: i32| o + (v as f32 * k).round() as i32;
        [
            map(bbox[0], x0),
            map(bbox[1], y0),
            map(bbox[2], x0),
            map(bbox[3], y0),
        ]
    }

    /// Top-left corner of the picture on the panel and the frame-to-panel scale.
    fn placement(&self, width: u32, height: u32) -> (i32, i32, f32) {
        let area_h = height.saturating_sub(banner_height(height));
        let (tw, th) = self.thumbnail.dimensions();
        let x0 = (width.saturating_sub(tw) / 2) as i32;
        let y0 = (area_h.saturating_sub(th) / 2) as i32;
        (x0, y0, tw as f32 / self.frame_size.0.max(1) as f32)
    }
}

/// Draw `p` filling `target`.
pub fn draw_preview<D: DrawTarget<Color = Rgb888>>(
    p: &Preview,
    target: &mut D,
) -> Result<(), D::Error> {
    let Size { width, height } = target.bounding_box().size;
    target.clear(Rgb888::BLACK)?;
    let (x0, y0, _) = p.placement(width, height);
    let (tw, th) = p.thumbnail.dimensions();
    let area = Rectangle::new(Point::new(x0, y0), Size::new(tw, th));
    target.fill_contiguous(
        &area,
        p.thumbnail
            .pixels()
            .map(|px| Rgb888::new(px[0], px[1], px[2])),
    )?;
    let (amber, green, grey) = (
        Rgb888::new(0xff, 0xa0, 0x00),
        Rgb888::new(0x20, 0xd0, 0x50),
        Rgb888::new(0x50, 0x50, 0x50),
    );
    let stroke = (width / 120).max(2);
    for face in &p.faces {
        let b = p.box_on_panel(face.bbox, width, height);
        let colour = if face.progress >= 100 { green } else { amber };
        let size = Size::new((b[2] - b[0]).max(1) as u32, (b[3] - b[1]).max(1) as u32);
        Rectangle::new(Point::new(b[0], b[1]), size)
            .into_styled(PrimitiveStyle::with_stroke(colour, stroke))
            .draw(target)?;
        // The progress bar just under the box: grey track, green share done.
        let bar_y = b[3] + stroke as i32 + 1;
        let bar_h = stroke * 2;
        Rectangle::new(Point::new(b[0], bar_y), Size::new(size.width, bar_h))
            .into_styled(PrimitiveStyle::with_fill(grey))
            .draw(target)?;
        let done = size.width * u32::from(face.progress.min(100)) / 100;
        if done > 0 {
            Rectangle::new(Point::new(b[0], bar_y), Size::new(done, bar_h))
                .into_styled(PrimitiveStyle::with_fill(green))
                .draw(target)?;
        }
    }
    let banner_h = banner_height(height);
    let banner = Rectangle::new(
        Point::new(0, (height - banner_h) as i32),
        Size::new(width, banner_h),
    );
    let bg = if p.hint.is_some() {
        Rgb888::new(0x8a, 0x4b, 0x00)
    } else {
        Rgb888::new(0x1c, 0x2b, 0x3a)
    };
    target.fill_solid(&banner, bg)?;
    let caption = p.caption();
    let font = if (caption.len() as u32) * 10 <= width && banner_h >= 22 {
        &FONT_10X20
    } else {
        &FONT_6X10
    };
    let style = MonoTextStyle::new(font, Rgb888::WHITE);
    let layout = TextStyleBuilder::new()
        .alignment(Alignment::Center)
        .baseline(Baseline::Middle)
        .build();
    let centre = Point::new((width / 2) as i32, (height - banner_h / 2) as i32);
    Text::with_text_style(&caption, centre, style, layout).draw(target)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::display::Canvas;

    #[test]
    fn the_box_is_drawn_where_the_face_is() {
        // A grey 640×360 frame, a face box in its right half.
        let frame = RgbImage::from_pixel(640, 360, image::Rgb([90, 90, 90]));
        let face = PreviewFace {
            bbox: [400, 100, 520, 240],
            progress: 40,
        };
        let p = Preview::new(&frame, vec![face.clone()], None, 240, 240);
        let mut c = Canvas::new(240, 240);
        let Ok(()) = draw_preview(&p, &mut c);
        let b = p.box_on_panel(face.bbox, 240, 240);
        // 640 → 240: a scale of 0.375, the picture centred vertically above the banner.
        assert_eq!(b[0], 150);
        assert_eq!(b[2], 195);
        let amber = Rgb888::new(0xff, 0xa0, 0x00);
        assert_eq!(c.pixel(b[0] as u32, ((b[1] + b[3]) / 2) as u32), amber);
        assert_eq!(c.pixel(((b[0] + b[2]) / 2) as u32, b[1] as u32), amber);
        // Inside the box: the camera picture.
        let inside = c.pixel(((b[0] + b[2]) / 2) as u32, ((b[1] + b[3]) / 2) as u32);
        assert_eq!(inside, Rgb888::new(90, 90, 90));
        assert_eq!(p.caption(), "Checking 40%");
    }
}
