//! PNG plots of evaluation results: ROC and DET curves on a log axis, similarity heatmaps.
//!
//! Drawn by plotters into an RGB buffer and encoded with `image`, with DejaVu Sans compiled in,
//! so plotting needs no system font or graphics library on the terminal or in CI.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and valid; if it were not, text would be missing, not wrong.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// One labelled curve of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A marked operating point, e.g. the configured threshold.
#[derive(Debug, Clone)]
pub struct Mark {
    pub label: String,
    pub x: f64,
    pub y: f64,
}

/// A curve plot whose x axis (a rate) is logarithmic from `x_min` to 1.
#[derive(Debug, Clone)]
pub struct CurvePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_min: f64,
    /// `Some(min)`: logarithmic y axis from `min` to 1; `None`: linear from `y_range`.
    pub y_log_min: Option<f64>,
    pub y_range: (f64, f64),
    pub series: Vec<Series>,
    pub marks: Vec<Mark>,
}

/// Write `plot` as a PNG of `width`×`height` pixels. Points below an axis minimum are drawn on
/// the axis (a rate of 0 has no place on a log axis).
/// The series, the marked points and the legend: the same on a log or a linear y axis.
fn draw_curves<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<LogCoord<f64>, Y>>,
    plot: &'a CurvePlot,
    colours: &'a [RGBColor],
    clamp_x: impl Fn(f64) -> f64,
    clamp_y: impl Fn(f64) -> f64,
    legend: SeriesLabelPosition,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    for (s, colour) in plot.series.iter().zip(colours.iter().cycle()) {
        let points = s.points.iter().map(|&(x, y)| (clamp_x(x), clamp_y(y)));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    for m in &plot.marks {
        let p = (clamp_x(m.x), clamp_y(m.y));
        chart
            .draw_series([Circle::new(p, 5, BLACK.filled())])
            .map_err(|e| err(&e))?
            .label(&m.label)
            .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.filled()));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(|e| err(&e))
}

pub fn curve_png(path: &Path, plot: &CurvePlot, width: u32, height: u32) -> Result<(), PlotError> {
    register_font();
    let err = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let clamp_x = |x: f64| x.max(plot.x_min).min(1.0);
        let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        match plot.y_log_min {
            Some(y_min) => {
                let clamp_y = |y: f64| y.max(y_min).min(1.0);
                let mut chart = ChartBuilder::on(&root)
                    .caption(&plot.title, (FONT, 22))
                    .margin(15)
                    .x_label_area_size(45)
                    .y_label_area_size(65)
                    .build_cartesian_2d((plot.x_min..1.0).log_scale(), (y_min..1.0).log_scale())
                    .map_err(|e| err(&e))?;
                chart
                    .configure_mesh()
                    .x_desc(&plot.x_label)
                    .y_desc(&plot.y_label)
                    .x_label_formatter(&|x| format!("{x:.0e}"))
                    .y_label_formatter(&|y| format!("{y:.0e}"))
                    .label_style((FONT, 14))
                    .draw()
                    .map_err(|e| err(&e))?;
                draw_curves(
                    &mut chart,
                    plot,
                    &colours,
                    clamp_x,
                    clamp_y,
                    SeriesLabelPosition::UpperRight,
                )
                .map_err(|e| err(&e))?;
            }
            None => {
                let (y0, y1) = plot.y_range;
                let clamp_y = |y: f64| y.max(y0).min(y1);
                let mut chart = ChartBuilder::on(&root)
                    .caption(&plot.title, (FONT, 22))
                    .margin(15)
                    .x_label_area_size(45)
                    .y_label_area_size(65)
                    .build_cartesian_2d((plot.x_min..1.0).log_scale(), y0..y1)
                    .map_err(|e| err(&e))?;
                chart
                    .configure_mesh()
                    .x_desc(&plot.x_label)
                    .y_desc(&plot.y_label)
                    .x_label_formatter(&|x| format!("{x:.0e}"))
                    .y_label_formatter(&|y| format!("{y:.2}"))
                    .label_style((FONT, 14))
                    .draw()
                    .map_err(|e| err(&e))?;
                draw_curves(
                    &mut chart,
                    plot,
                    &colours,
                    clamp_x,
                    clamp_y,
                    SeriesLabelPosition::LowerRight,
                )
                .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    save_rgb(path, buf, width, height)
}

/// A square similarity matrix as a heatmap with `names` on both axes; cells at or above
/// `threshold` off the diagonal are outlined (those people would be confused with each other).
pub fn heatmap_png(
    path: &Path,
    title: &str,
    names: &[String],
    matrix: &[Vec<f32>],
    threshold: f32,
) -> Result<(), PlotError> {
    register_font();
    let err = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let n = names.len().max(1);
    // Cells big enough to print the value for small groups; 100 people stay under 2,000 px.
    let cell: u32 = if n <= 12 {
        60
    } else {
        (1600 / n as u32).clamp(8, 40)
    };
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(1) as u32;
    let label_font = if cell >= 14 { 13 } else { 9 };
    let label_px = (longest * label_font * 6 / 10 + 12).min(260);
    let side = cell * n as u32;
    // Wide enough for the title too (about 10 px per character at 18 px).
    let title_px = title.chars().count() as u32 * 10 + 20;
    let (width, height) = ((label_px + side + 130).max(title_px), label_px + side + 50);
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        root.draw_text(title, &(FONT, 18).into_text_style(&root), (10, 10))
            .map_err(|e| err(&e))?;
        let (ox, oy) = (label_px as i32, 40 + label_px as i32 - 30);
        let text = (FONT, label_font).into_text_style(&root);
        let value_text = (FONT, 12).into_text_style(&root);
        for (i, row) in matrix.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (x, y) = (ox + (j as u32 * cell) as i32, oy + (i as u32 * cell) as i32);
                let rect = [(x, y), (x + cell as i32, y + cell as i32)];
                root.draw(&Rectangle::new(rect, colour_for(v).filled()))
                    .map_err(|e| err(&e))?;
                if i != j && v >= threshold {
                    root.draw(&Rectangle::new(
                        [(x + 1, y + 1), (x + cell as i32 - 2, y + cell as i32 - 2)],
                        BLACK.stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?;
                }
                if cell >= 40 {
                    // Light text on the dark cells.
                    let ink = if v > 0.6 { WHITE } else { BLACK };
                    let value_text = value_text.color(&ink);
                    root.draw_text(
                        &format!("{v:.2}"),
                        &value_text,
                        (x + 8, y + cell as i32 / 2 - 6),
                    )
                    .map_err(|e| err(&e))?;
                }
            }
        }
        for (i, name) in names.iter().enumerate() {
            let centre = (i as u32 * cell + cell / 2) as i32 - label_font as i32 / 2;
            // Rows on the left, columns along the top, written upwards.
            root.draw_text(name, &text, (4, oy + centre))
                .map_err(|e| err(&e))?;
            let up = text.transform(FontTransform::Rotate270);
            root.draw_text(name, &up, (ox + centre, oy - 4))
                .map_err(|e| err(&e))?;
        }
        // Colour scale from −0.2 to 1.
        let (sx, sy) = (ox + side as i32 + 30, oy);
        let steps = 100;
        for k in 0..steps {
            let v = 1.0 - 1.2 * k as f32 / steps as f32;
            let y = sy + (k * side.max(100) / steps) as i32;
            let h = (side.max(100) / steps).max(1) as i32;
            root.draw(&Rectangle::new(
                [(sx, y), (sx + 20, y + h + 1)],
                colour_for(v).filled(),
            ))
            .map_err(|e| err(&e))?;
        }
        root.draw_text("1.0", &value_text, (sx + 24, sy))
            .map_err(|e| err(&e))?;
        root.draw_text(
            "-0.2",
            &value_text,
            (sx + 24, sy + side.max(100) as i32 - 12),
        )
        .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    save_rgb(path, buf, width, height)
}

/// White at or below 0, through yellow and orange to dark red at 1.
fn colour_for(v: f32) -> RGBColor {
    let t = v.clamp(0.0, 1.0);
    let stops = [
        (0.0, (255.0, 255.0, 255.0)),
        (0.35, (255.0, 237.0, 160.0)),
        (0.6, (253.0, 141.0, 60.0)),
        (0.8, (227.0, 26.0, 28.0)),
        (1.0, (128.0, 0.0, 38.0)),
    ];
    let k = stops
        .windows(2)
        .position(|w| t <= w[1].0)
        .unwrap_or(stops.len() - 2);
    let ((t0, c0), (t1, c1)) = (stops[k], stops[k + 1]);
    let f = (t - t0) / (t1 - t0);
    let mix = |a: f32, b: f32| (a + (b - a) * f).round() as u8;
    RGBColor(mix(c0.0, c1.0), mix(c0.1, c1.1), mix(c0.2, c1.2))
}

fn save_rgb(path: &Path, buf: Vec<u8>, width: u32, height: u32) -> Result<(), PlotError> {
    let img = image::RgbImage::from_raw(width, height, buf).expect("buffer is width×height×3");
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| PlotError::Write {
            path: path.to_path_buf(),
            source,
        })
}
