//! Data augmentation on the GPU (`augment.wgsl`): torchvision's `RandomCrop(padding=pad)` and
//! `RandomHorizontalFlip()` applied per sample, the choices a hash of a seed and the sample's
//! index, so a training step augments inside its one submission and a run reproduces.

use super::{check_u32, context_of};
use crate::kernel::{Dispatch, Recorder, Shader};
use crate::{Context, DType, Error, Result, Tensor};

/// What to do to each training image.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentOptions {
    /// Pixels of padding on every side before a crop of the image's own size (0: no crop).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// The padding's value per channel (one value serves every channel): the normalised
    /// value of a black pixel, -mean / std, as padding before `Normalize` gives.
    pub fill: Vec<f32>,
}

impl AugmentOptions {
    /// Checks the options for inputs of `channels` channels and `height` x `width`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for padding as large as the image, or fill values that are
    /// not finite or neither one nor one per channel.
    pub fn validate(&self, channels: usize, height: usize, width: usize) -> Result<()> {
        if self.crop_padding >= height.min(width).max(1) && self.crop_padding > 0 {
            return Err(Error::invalid(
                "augment",
                format!(
                    "crop padding {} is not smaller than the {height}x{width} image",
                    self.crop_padding
                ),
            ));
        }
        if !(self.fill.len() == 1 || self.fill.len() == channels)
            || self.fill.iter().any(|f| !f.is_finite())
        {
            return Err(Error::invalid(
                "augment",
                format!("fill {:?}: one finite value or one per channel ({channels})", self.fill),
            ));
        }
        Ok(())
    }

    /// The fill value of every channel.
    pub(crate) fn fills(&self, channels: usize) -> Vec<f32> {
        (0..channels).map(|c| self.fill[c % self.fill.len().max(1)]).collect()
    }
}

/// Augments the batch `x` (N, C, H, W) with the choices of `seed`.
///
/// # Errors
/// [`Error::InvalidArgument`] for an input that is not (N, C, H, W) or bad options.
pub fn augment(x: &Tensor, seed: u32, o: &AugmentOptions) -> Result<Tensor> {
    const OP: &str = "augment";
    let ctx = context_of(OP, &[x])?;
    let [_, c, h, w] = x.shape()[..] else {
        return Err(Error::invalid(OP, format!("expected (N, C, H, W), got {:?}", x.shape())));
    };
    o.validate(c, h, w)?;
    let y = Tensor::output(&ctx, x.shape(), DType::F32, OP)?;
    let seed = Tensor::from_slice_i32(&ctx, &[seed as i32], &[1])?;
    let fill = Tensor::from_slice(&ctx, &o.fills(c), &[c])?;
    ctx.run(OP, |rec| record_augment(&ctx, rec, (x, &y), seed.buffer(), &fill, o))?;
    Ok(y)
}

/// Records y = the augmentation of x for the seed in `seed` (one u32), with `fill` the
/// per-channel padding values.
pub(crate) fn record_augment(
    ctx: &Context,
    rec: &mut Recorder<'_>,
    (x, y): (&Tensor, &Tensor),
    seed: &wgpu::Buffer,
    fill: &Tensor,
    o: &AugmentOptions,
) -> Result<()> {
    const OP: &str = "augment";
    let [_, c, h, w] = x.shape()[..] else {
        return Err(Error::invalid(OP, format!("expected (N, C, H, W), got {:?}", x.shape())));
    };
    let total = check_u32(OP, "elements", x.numel())?;
    if total == 0 {
        return Ok(());
    }
    let params = [
        total,
        check_u32(OP, "channels", c)?,
        check_u32(OP, "height", h)?,
        check_u32(OP, "width", w)?,
        check_u32(OP, "padding", o.crop_padding)?,
        u32::from(o.flip),
        0,
        0,
    ];
    ctx.record(
        rec,
        &Dispatch::linear(
            ctx,
            OP,
            (Shader::Augment, "augment"),
            bytemuck::cast_slice(&params),
            &[(1, x.buffer()), (2, y.buffer()), (3, seed), (4, fill.buffer())],
            u64::from(total),
        )?,
    )
}
