//! The training batch's augmentation, torchvision's RandomCrop(padding) then
//! RandomHorizontalFlip per sample, with the GPU kernel's choices for a seed (the same hash).

use super::Array;

/// PCG's output permutation, as `augment.wgsl`'s `hash`.
fn hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Sample n's choices for `seed`: (dy, dx, mirrored).
pub fn augment_choices(seed: u32, n: usize, pad: usize, flip: bool) -> (i64, i64, bool) {
    let h = hash(seed ^ hash((n as u32).wrapping_add(0x632b_e5ab)));
    let span = 2 * pad as u32 + 1;
    let dy = i64::from(hash(h) % span) - pad as i64;
    let dx = i64::from(hash(h ^ 0x5bd1_e995) % span) - pad as i64;
    (dy, dx, flip && h & 1 == 1)
}

/// x (N, C, H, W) cropped from its padding (`fill[c]` outside the image) at each sample's
/// offset and mirrored where its choice says.
pub fn augment(x: &Array, seed: u32, pad: usize, flip: bool, fill: &[f64]) -> Array {
    let [n, c, h, w] = x.shape[..] else { panic!("augment: x must be (N, C, H, W)") };
    let mut y = Array::zeros(&x.shape);
    for s in 0..n {
        let (dy, dx, mirrored) = augment_choices(seed, s, pad, flip);
        for ch in 0..c {
            for oy in 0..h {
                for ox in 0..w {
                    let fx = if mirrored { w - 1 - ox } else { ox };
                    let (sy, sx) = (oy as i64 + dy, fx as i64 + dx);
                    let inside = (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx);
                    let at = ((s * c + ch) * h + oy) * w + ox;
                    y.data[at] = if inside {
                        x.data[((s * c + ch) * h + sy as usize) * w + sx as usize]
                    } else {
                        fill[ch]
                    };
                }
            }
        }
    }
    y
}
