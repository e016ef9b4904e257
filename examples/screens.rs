//! Render every terminal screen to PNG, to look at them: `cargo run --example screens -- DIR
//! [WIDTHxHEIGHT...]` (default 240x240 and 128x64).

use facegate::hw::display::{Display, PngDisplay, Screen};
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
    for (w, h) in sizes {
        let mut display = PngDisplay::new(&dir.join(format!("{w}x{h}")), w, h)?;
        for s in &screens {
            display.show(s)?;
        }
    }
    Ok(())
}
