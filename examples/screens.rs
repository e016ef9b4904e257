//! Render every terminal screen to PNG, to look at them: `cargo run --example screens -- DIR
//! [WIDTHxHEIGHT...]` (default 240x240 and 128x64). The preview screens show the camera frame
//! in `$FRAME` (an image file, with a face box and progress drawn at `$BOX` = `x1,y1,x2,y2`)
//! or, without it, a plain test pattern with a made-up box.

use facegate::hw::display::{Display, PngDisplay, Screen};
use facegate::hw::preview::{Preview, PreviewFace};
use facegate::terminal::decide::Hint;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: screens DIR [WxH...]")?);
    let mut sizes: Vec<(u32, u32)> = args
        .map(|a| {
            let (w, h) = a.split_once('x').ok_or("size as WxH")?;
            Ok::<_, Box<dyn std::error::Error>>((w.parse()?, h.parse()?))
        })
        .collect::<Result<_, _>>()?;
    if sizes.is_empty() {
        sizes = vec![(240, 240), (128, 64)];
    }
    let screens = [
        Screen::Idle,
        Screen::Hint(Hint::LookAtCamera),
        Screen::Hint(Hint::MoveCloser),
        Screen::Hint(Hint::MoreLight),
        Screen::Hint(Hint::HoldStill),
        Screen::Welcome("lin-manuel-miranda".into()),
        Screen::Unknown,
        Screen::Locked(30),
        Screen::CameraLost,
    ];
    let frame = match std::env::var_os("FRAME") {
        Some(f) => image::open(f)?.into_rgb8(),
        None => image::RgbImage::from_fn(640, 360, |x, y| {
            image::Rgb([(x / 3) as u8, (y / 2) as u8, 120])
        }),
    };
    let bbox: [i32; 4] = match std::env::var("BOX") {
        Ok(b) => {
            let v: Vec<f32> = b
                .split(',')
                .map(|v| v.trim().parse())
                .collect::<Result<_, _>>()?;
            [v[0] as i32, v[1] as i32, v[2] as i32, v[3] as i32]
        }
        Err(_) => [260, 80, 380, 230],
    };
    for (w, h) in sizes {
        let mut display = PngDisplay::new(&dir.join(format!("{w}x{h}")), w, h)?;
        for s in &screens {
            display.show(s)?;
        }
        for (progress, hint) in [(40, None), (80, Some(Hint::HoldStill))] {
            let face = PreviewFace { bbox, progress };
            display.show(&Screen::Preview(Preview::new(
                &frame,
                vec![face],
                hint,
                w,
                h,
            )))?;
        }
    }
    Ok(())
}
