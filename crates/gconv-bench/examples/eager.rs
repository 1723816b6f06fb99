//! temp
use gconv::ops::{self, ConvOptions};
use std::time::Instant;
fn main() -> anyhow::Result<()> {
    let ctx = gconv::Context::new()?;
    let n = 8 * 64 * 56 * 56;
    let xs: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect();
    let x = gconv::Tensor::from_slice(&ctx, &xs, &[8, 64, 56, 56])?;
    let w = gconv::Tensor::from_slice(&ctx, &vec![0.1f32; 64 * 9], &[64, 1, 3, 3])?;
    let b = gconv::Tensor::from_slice(&ctx, &vec![0.1f32; 64], &[64])?;
    let o = ConvOptions::default().padding(1).groups(64);
    for round in 0..3 {
        let mut t = Vec::new();
        for _ in 0..30 {
            let s = Instant::now();
            let y = ops::conv2d(&x, &w, Some(&b), &o)?;
            ctx.synchronize()?;
            t.push(s.elapsed().as_secs_f64() * 1e3);
            drop(y);
        }
        t.sort_by(f64::total_cmp);
        println!("round {round}: eager min {:.3} med {:.3} ms", t[0], t[15]);
    }
    Ok(())
}
