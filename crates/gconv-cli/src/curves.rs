//! `gconv train --plot FILE`: training and test loss and accuracy by epoch, drawn with
//! plotters into a buffer (text from the bundled DejaVu Sans Mono, so no system fonts) and
//! written atomically after every epoch.

use std::path::Path;

use anyhow::{Result, anyhow};
use image::{DynamicImage, RgbImage};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::picture;

/// The train and test series of one panel.
type Series = [fn(&Point) -> f64; 2];

const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSansMono.ttf");
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 420;

/// One epoch's figures.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub epoch: u64,
    pub train_loss: f64,
    pub test_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
}

fn font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = ONCE.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if *ok { Ok(()) } else { Err(anyhow!("the bundled font does not load")) }
}

/// Draws the curves of `points` (in epoch order) to `path` (.png or .jpg), atomically.
pub fn plot(points: &[Point], path: &Path) -> Result<()> {
    picture::output_format(path)?;
    font()?;
    let mut buffer = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let last = points.last().map_or(1, |p| p.epoch).max(1);
        let first = points.first().map_or(1, |p| p.epoch).min(last);
        let xs = first as f64 - 0.05..last as f64 + 0.05;
        let max_loss = points
            .iter()
            .flat_map(|p| [p.train_loss, p.test_loss])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.1;
        let panels: [(&DrawingArea<_, _>, &str, f64, Series); 2] = [
            (&left, "loss", max_loss, [|p| p.train_loss, |p| p.test_loss]),
            (
                &right,
                "accuracy (%)",
                100.0,
                [|p| 100.0 * p.train_accuracy, |p| 100.0 * p.test_accuracy],
            ),
        ];
        for (area, name, top, series) in panels {
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(xs.clone(), 0.0..top)
                .map_err(|e| anyhow!("plotting: {e}"))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_labels((last - first + 1).min(12) as usize)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| anyhow!("plotting: {e}"))?;
            for (f, label, colour) in [(series[0], "train", BLUE), (series[1], "test", RED)] {
                let line: Vec<(f64, f64)> = points
                    .iter()
                    .map(|p| (p.epoch as f64, f(p)))
                    .filter(|(_, y)| y.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
                    .map_err(|e| anyhow!("plotting: {e}"))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(line.iter().map(|&at| Circle::new(at, 3, colour.filled())))
                    .map_err(|e| anyhow!("plotting: {e}"))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| anyhow!("plotting: {e}"))?;
        }
        root.present().map_err(|e| anyhow!("plotting: {e}"))?;
    }
    let img = RgbImage::from_raw(WIDTH, HEIGHT, buffer).ok_or_else(|| anyhow!("plot buffer"))?;
    picture::save(&DynamicImage::ImageRgb8(img), path)
}
