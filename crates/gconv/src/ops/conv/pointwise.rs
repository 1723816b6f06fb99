//! A pointwise convolution's weight gradient on the subgroup GEMMs with both tensors read in
//! place (`WeightGrad::Pointwise`): grad_W sums over the samples' positions, along which x and
//! grad_y are both contiguous, so their texture copies are the GEMM's A (rows of channel
//! planes) and B^T as they lie (`A_PLANES` 1 and `B_PLANES` 2 in gemm_in_place.wgsl), where
//! the texture GEMM writes x's im2col and packs grad_y^T with a transposing kernel. The data
//! gradient is the texture GEMM's (`tiled::data_backward`), which reads the same copy of grad_y
//! where it runs in place too (`DataGrad::Pointwise`).

use super::plan::Pass;
use super::select::{Columns, DataGrad};
use super::tiled;
use crate::ops::check_u32;
use crate::ops::gemm::pack::View;
use crate::ops::gemm::tiled::{Epilogue, record_gemm};
use crate::ops::texture::{Gather, Packed};
use crate::{Result, Tensor};

/// Both gradients: per chunk of samples, grad_W^T (C_in, C_out) (+)= x @ grad_y^T
/// (`Columns::GradY`), or grad_W (C_out, C_in) (+)= grad_y @ x^T (`Columns::X`), each over
/// the chunk's positions; then the data gradient.
pub(super) fn backward(
    pass: &mut Pass<'_, '_>,
    (x, w, grad_y): (&Tensor, &Tensor, &Tensor),
    (grad_x, grad_w): (Option<&Tensor>, &Tensor),
    (chunk, b): (usize, Columns),
    data: Option<DataGrad>,
) -> Result<()> {
    let (plan, ctx) = (pass.plan, pass.ctx);
    let (op, g) = (plan.op, &plan.g);
    let (k, p) = g.col_dims();
    let x_flat = tiled::copy_of(plan, pass.rec, x)?;
    let gy_flat = tiled::copy_of(plan, pass.rec, grad_y)?;
    // (A's copy and rows, B's copy and columns, whether C is grad_W^T).
    let ((a, m), (b, n), transposed) = match b {
        Columns::GradY => ((&x_flat, g.x.c), (&gy_flat, g.c_out), true),
        Columns::X => ((&gy_flat, g.c_out), (&x_flat, g.x.c), false),
    };
    for (i, n0) in (0..g.x.n).step_by(chunk).enumerate() {
        let len = chunk.min(g.x.n - n0);
        let total = check_u32(op, "positions", len * p)?;
        let params = g.chunk_params(n0, false, total);
        let a = Packed::implicit(a, Gather::AlongK, params, m, len * p);
        let b = Packed::implicit(b, Gather::AlongK, params, len * p, n);
        let epilogue =
            Epilogue { accumulate: i > 0, ..Epilogue::to(View::dense(0, k, transposed)) };
        record_gemm(ctx, op, pass.rec, &a, &b, grad_w, &epilogue)?;
    }
    tiled::data_backward(pass, (w, grad_y, Some(&gy_flat)), grad_x, data)
}
