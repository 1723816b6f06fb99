//! `gconv eval`: loss and accuracy on the test split, the confusion matrix with class names,
//! per-class accuracy and the most confused pairs; `--json` prints all of it, `--confusion`
//! draws the matrix as a labelled heatmap.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use gconv::data::Dataset;
use gconv::nn::Model;
use image::{Rgb, RgbImage};

use crate::dataset::data_shape;
use crate::picture;
use crate::train::{ModelArgs, input_of, load_model};

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A safetensors checkpoint with PyTorch's state-dict names (optional with --onnx, whose
    /// file holds weights).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Samples per evaluation batch.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Print everything as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Draw the confusion matrix as a labelled heatmap (.png or .jpg).
    #[arg(long, value_name = "FILE")]
    confusion: Option<PathBuf>,
    /// How many of the most confused pairs to list.
    #[arg(long, default_value_t = 5)]
    pairs: usize,
}

/// What an evaluation found.
pub struct Evaluation {
    pub metrics: gconv::nn::Metrics,
    /// `matrix[true][predicted]` counts.
    pub matrix: Vec<Vec<u64>>,
}

/// Evaluates `data` in batches: the device's loss and accuracy, and the confusion matrix from
/// the logits of each batch.
pub fn evaluate(
    model: &mut Model,
    data: &Dataset,
    batch: usize,
    input: [usize; 3],
) -> Result<Evaluation> {
    let classes = data.classes.len();
    let mut matrix = vec![vec![0u64; classes]; classes];
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(batch.max(1)) {
        let (x, y) = data.batch(chunk, input);
        let logits = model.eval_batch_logits(&x, &y)?.to_vec()?;
        let width = logits.len() / chunk.len().max(1);
        for (row, &label) in logits.chunks(width.max(1)).zip(&y) {
            let predicted = argmax(row);
            if let Some(r) = matrix.get_mut(label as usize)
                && let Some(cell) = r.get_mut(predicted)
            {
                *cell += 1;
            }
        }
    }
    Ok(Evaluation { metrics: model.take_metrics()?, matrix })
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

/// Per-class accuracy (None for a class without test images).
fn per_class(matrix: &[Vec<u64>]) -> Vec<Option<f64>> {
    matrix
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let total: u64 = row.iter().sum();
            (total > 0).then(|| row[c] as f64 / total as f64)
        })
        .collect()
}

/// The `n` largest off-diagonal counts: (true, predicted, count), largest first.
fn confused(matrix: &[Vec<u64>], n: usize) -> Vec<(usize, usize, u64)> {
    let mut pairs: Vec<(usize, usize, u64)> = matrix
        .iter()
        .enumerate()
        .flat_map(|(t, row)| row.iter().enumerate().map(move |(p, &c)| (t, p, c)))
        .filter(|&(t, p, c)| t != p && c > 0)
        .collect();
    pairs.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    pairs.truncate(n);
    pairs
}

pub fn eval(ctx: &gconv::Context, a: &EvalArgs) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if let Some(path) = &a.confusion {
        picture::output_format(path)?;
    }
    let mut data = a.model.data.load(a.model.source.input.as_deref())?;
    let (mut model, info) =
        load_model(ctx, &a.model.source, a.checkpoint.as_deref(), |_| data_shape(&data.train))?;
    // The normalisation the model was trained with, where its checkpoint records one.
    if let (Some(norm), true) = (info.norm, a.model.data.mean.is_empty()) {
        data.set_normalization(norm);
    }
    let input = input_of(&model)?;
    let e = evaluate(&mut model, &data.test, a.batch_size, input)?;
    let names = &data.test.classes;
    let accuracy = per_class(&e.matrix);
    let pairs = confused(&e.matrix, a.pairs);
    if a.json {
        let report = serde_json::json!({
            "loss": e.metrics.loss,
            "accuracy": e.metrics.accuracy,
            "samples": e.metrics.samples,
            "classes": names,
            "confusion": e.matrix,
            "per_class_accuracy": accuracy,
            "most_confused": pairs.iter().map(|&(t, p, c)| serde_json::json!({
                "true": names[t], "predicted": names[p], "count": c,
            })).collect::<Vec<_>>(),
        });
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!(
            "test loss {:.4}, test accuracy {:.2}% ({} images)",
            e.metrics.loss,
            100.0 * e.metrics.accuracy,
            e.metrics.samples
        );
        print_matrix(names, &e.matrix, &accuracy);
        if !pairs.is_empty() {
            say!("most confused (true -> predicted):");
            for (t, p, c) in &pairs {
                say!("  {} -> {}: {c}", names[*t], names[*p]);
            }
        }
    }
    if let Some(path) = &a.confusion {
        picture::save(&heatmap(names, &e.matrix).into(), path)?;
        if !a.json {
            say!("wrote the confusion matrix to {}", path.display());
        }
    }
    Ok(())
}

/// The matrix as text: rows the true class, columns the predicted one, then the accuracy.
fn print_matrix(names: &[String], matrix: &[Vec<u64>], accuracy: &[Option<f64>]) {
    let label = names.iter().map(|n| n.chars().count()).max().unwrap_or(1).clamp(5, 16);
    let width = matrix.iter().flatten().max().map_or(1, |m| m.to_string().len()).max(3);
    let short = |n: &str, w: usize| n.chars().take(w).collect::<String>();
    let header: String =
        (0..names.len()).map(|p| format!(" {:>width$}", short(&p.to_string(), width))).collect();
    say!("confusion matrix (rows: true class, columns: predicted class index):");
    say!("{:>label$}   {header}  accuracy", "");
    for (t, row) in matrix.iter().enumerate() {
        let cells: String = row.iter().map(|c| format!(" {c:>width$}")).collect();
        let acc = accuracy[t].map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a));
        say!("{:>label$} {t:>2}{cells}  {acc:>7}", short(&names[t], label));
    }
}

/// The confusion matrix as a heatmap: each row shaded by the share of its class's images,
/// counts in the cells, class names along both axes.
fn heatmap(names: &[String], matrix: &[Vec<u64>]) -> RgbImage {
    let n = names.len().max(1) as u32;
    let cell = if n <= 12 {
        40
    } else if n <= 40 {
        16
    } else {
        8
    };
    let label = names.iter().map(|s| picture::text_width(s, 1)).max().unwrap_or(8).min(160) + 8;
    let (w, h) = (label + n * cell + 8, 24 + n * cell + label);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let black = Rgb([0, 0, 0]);
    picture::draw_text(&mut img, "true class (rows) vs predicted (columns)", 4, 4, 1, black);
    let top = 24;
    for (t, row) in matrix.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f32;
        for (p, &count) in row.iter().enumerate() {
            let share = count as f32 / total;
            // White to deep blue.
            let shade = |full: f32| (255.0 - share * (255.0 - full)).round() as u8;
            let colour = Rgb([shade(20.0), shade(60.0), shade(160.0)]);
            let (x, y) = (label + p as u32 * cell, top + t as u32 * cell);
            for dy in 0..cell - 1 {
                for dx in 0..cell - 1 {
                    img.put_pixel(x + dx, y + dy, colour);
                }
            }
            let text = count.to_string();
            if cell >= 16 && picture::text_width(&text, 1) < cell {
                let ink = if share > 0.5 { Rgb([255, 255, 255]) } else { black };
                let tx = x + (cell - picture::text_width(&text, 1)) / 2;
                picture::draw_text(&mut img, &text, tx, y + (cell - 8) / 2, 1, ink);
            }
        }
        let name: String = names[t].chars().take(20).collect();
        let y = top + t as u32 * cell + (cell.saturating_sub(8)) / 2;
        picture::draw_text(&mut img, &name, 4, y, 1, black);
    }
    // Column names, one character per line down from under the grid.
    for (p, name) in names.iter().enumerate() {
        let x = label + p as u32 * cell + cell.saturating_sub(8) / 2;
        for (k, ch) in name.chars().take(((label - 8) / 8) as usize).enumerate() {
            let y = top + n * cell + 4 + 8 * k as u32;
            picture::draw_text(&mut img, &ch.to_string(), x, y, 1, black);
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_class_accuracy_and_the_most_confused_pairs_come_from_the_matrix() {
        let m = vec![vec![8, 2, 0], vec![5, 5, 0], vec![0, 0, 0]];
        assert_eq!(per_class(&m), [Some(0.8), Some(0.5), None]);
        assert_eq!(confused(&m, 5), [(1, 0, 5), (0, 1, 2)]);
        assert_eq!(confused(&m, 1), [(1, 0, 5)]);
        let img = heatmap(&["cat".into(), "dog".into(), "bird".into()], &m);
        assert!(img.width() > 3 * 40 && img.height() > 3 * 40);
    }
}
