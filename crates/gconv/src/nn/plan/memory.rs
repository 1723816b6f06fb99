//! A plan's memory: the lifetime of every value and gradient over the plan's steps, buffers
//! taken from a pool that shares those whose lifetimes do not overlap, and the other tensors
//! the recorded kernels read and write ([`Tensors`]), all allocated once.

use super::PlanKind;
use super::flow::{self, Contribution, Flow, overwrites, t_bwd};
use super::lower::{Exec, Lowered};
use crate::ops::conv::ReluPoolScratch;
use crate::{Context, DType, Error, Result, Tensor};

/// Everything the plan's kernels are recorded against.
pub(super) struct Tensors {
    /// The input batch (value 0), written by the host.
    pub input: Tensor,
    /// The class targets (i32), written by the host.
    pub target: Tensor,
    /// Value v's tensor (value 0 the input, value n the logits).
    pub values: Vec<Tensor>,
    /// Value v's gradient (training, where anything sends one back to v).
    pub grads: Vec<Option<Tensor>>,
    /// Where node k's backward pass writes its input's gradient before adding it to a
    /// gradient that an earlier-run reader already wrote (fan-in without atomics).
    pub grad_scratch: Vec<Option<Tensor>>,
    /// Where every node's backward pass sends its inputs' gradients.
    pub flow: Flow,
    /// A fused node's convolution-output gradient, for a backward pass that unpools first.
    pub conv_grads: Vec<Option<Tensor>>,
    /// The argmax of a max-pooling node (a fused one's in training).
    pub indices: Vec<Option<Tensor>>,
    /// What a fused node's forward pass keeps for its backward pass.
    pub relu_pool: Vec<Option<ReluPoolScratch>>,
    /// One storage scratch for every convolution of the plan (they run one after another):
    /// im2col's columns, or a 3x3 weight on its way into a texture.
    pub col: Tensor,
    /// The loss's per-sample values and count.
    pub losses: Tensor,
    pub count: Tensor,
    /// Bytes of the pooled activation and gradient buffers.
    pub pooled_bytes: u64,
}

/// Pooled buffers: a request takes the smallest free buffer that fits, or a new one.
struct Pool {
    buffers: Vec<(wgpu::Buffer, u64, usize)>,
}

impl Pool {
    fn take(
        &mut self,
        ctx: &Context,
        bytes: u64,
        start: usize,
        end: usize,
    ) -> Result<wgpu::Buffer> {
        let bytes = bytes.max(4);
        let best = self
            .buffers
            .iter_mut()
            .filter(|(_, size, busy_until)| *size >= bytes && *busy_until < start)
            .min_by_key(|(_, size, _)| *size);
        if let Some((buffer, _, busy)) = best {
            *busy = end;
            return Ok(buffer.clone());
        }
        let limit = ctx.limits().max_buffer_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: "an activation".into(),
                bytes,
                limit_name: "max_buffer_size",
                limit,
            });
        }
        let buffer = ctx.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gconv activation"),
            // Whole texels: the tiled kernels copy buffers into rgba32f textures.
            size: bytes.div_ceil(16) * 16,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.buffers.push((buffer.clone(), bytes, end));
        Ok(buffer)
    }
}

/// What a buffer request is for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Use {
    /// An activation's storage class.
    Value(usize),
    /// A gradient's storage class.
    Grad(usize),
    /// A fused node's convolution-output gradient, live during its backward step only.
    ConvGrad(usize),
    /// Node k's input-gradient scratch, live during its backward step only.
    Scratch(usize),
}

/// The buffers [`pooled_buffers`] hands out, by storage class or node.
struct Pooled {
    act: Vec<Option<wgpu::Buffer>>,
    grad: Vec<Option<wgpu::Buffer>>,
    conv: Vec<Option<wgpu::Buffer>>,
    scratch: Vec<Option<wgpu::Buffer>>,
    bytes: u64,
}

/// Node k's input-gradient scratch: where its kernel would overwrite a gradient that an
/// earlier contribution wrote.
fn needs_scratch(lowered: &Lowered, flow: &Flow, k: usize) -> bool {
    overwrites(&lowered.execs[k]) && flow.contributions[k].contains(&Contribution::Add)
}

/// Takes every value's and gradient's buffer from one pool, requests in order of their first
/// use.
fn pooled_buffers(ctx: &Context, lowered: &Lowered, life: &Flow, train: bool) -> Result<Pooled> {
    let (shapes, n) = (&lowered.shapes, lowered.execs.len());
    let bytes_of = |v: usize| shapes[v].iter().product::<usize>() as u64 * 4;
    let largest = |store: &[usize], s: usize| {
        (0..=n).filter(|&v| v > 0 && store[v] == s).map(bytes_of).max().unwrap_or(4)
    };
    let mut requests: Vec<(usize, Use, u64)> = Vec::new();
    for (s, iv) in life.act.iter().enumerate().skip(1) {
        requests.push((iv.0, Use::Value(s), largest(&life.store, s)));
    }
    if train {
        for (s, iv) in life.grad.iter().enumerate().skip(1).filter(|(_, iv)| iv.0 <= iv.1) {
            requests.push((iv.0, Use::Grad(s), largest(&life.gstore, s)));
        }
        for (i, exec) in lowered.execs.iter().enumerate() {
            if let Exec::ConvReluPool(_, conv_shape) = exec {
                let bytes = conv_shape.iter().product::<usize>() as u64 * 4;
                requests.push((t_bwd(n, i), Use::ConvGrad(i), bytes));
            }
            if needs_scratch(lowered, life, i) {
                let bytes = bytes_of(lowered.inputs[i][0]);
                requests.push((t_bwd(n, i), Use::Scratch(i), bytes));
            }
        }
    }
    requests.sort_by_key(|r| (r.0, r.1));
    let mut pool = Pool { buffers: Vec::new() };
    let mut act = vec![None; life.act.len()];
    let mut grad = vec![None; life.grad.len()];
    let mut conv = vec![None; n];
    let mut scratch = vec![None; n];
    for (start, what, bytes) in requests {
        match what {
            Use::Value(s) => act[s] = Some(pool.take(ctx, bytes, start, life.act[s].1)?),
            Use::Grad(s) => grad[s] = Some(pool.take(ctx, bytes, start, life.grad[s].1)?),
            Use::ConvGrad(i) => conv[i] = Some(pool.take(ctx, bytes, start, start)?),
            Use::Scratch(i) => scratch[i] = Some(pool.take(ctx, bytes, start, start)?),
        }
    }
    let bytes = pool.buffers.iter().map(|(_, size, _)| size).sum();
    Ok(Pooled { act, grad, conv, scratch, bytes })
}

/// Allocates every tensor a plan of `kind` for `batch` samples records against.
pub(super) fn allocate(
    ctx: &Context,
    lowered: &Lowered,
    kind: PlanKind,
    batch: usize,
) -> Result<Tensors> {
    let (execs, shapes) = (&lowered.execs, &lowered.shapes);
    let train = matches!(kind, PlanKind::Train { .. });
    let life = flow::flow(lowered, kind);
    let Pooled { act, grad, conv, scratch, bytes: pooled_bytes } =
        pooled_buffers(ctx, lowered, &life, train)?;
    let view = |buf: &Option<wgpu::Buffer>, shape: &[usize]| -> Result<Tensor> {
        buf.as_ref()
            .map(|b| Tensor::view_of(ctx, b, shape, DType::F32))
            .ok_or_else(|| Error::invalid("plan", "internal error: a value has no buffer"))
    };
    let input = Tensor::zeros(ctx, &shapes[0])?;
    let values = (0..shapes.len())
        .map(|v| match life.store[v] {
            0 => input.reshape(&shapes[v]),
            s => view(&act[s], &shapes[v]),
        })
        .collect::<Result<_>>()?;
    let grads = (0..shapes.len())
        .map(|v| (life.gstore[v] > 0).then(|| view(&grad[life.gstore[v]], &shapes[v])).transpose())
        .collect::<Result<_>>()?;
    let grad_scratch = (0..execs.len())
        .map(|k| {
            let shape = &shapes[lowered.inputs[k][0]];
            scratch[k].is_some().then(|| view(&scratch[k], shape)).transpose()
        })
        .collect::<Result<_>>()?;
    let mut conv_grads = Vec::new();
    let mut indices = Vec::new();
    let mut relu_pool = Vec::new();
    for (i, exec) in execs.iter().enumerate() {
        let (conv_grad, wants_indices, scratch) = match exec {
            Exec::ConvReluPool(f, conv_shape) if train => {
                (Some(view(&conv[i], conv_shape)?), true, f.scratch(ctx)?)
            }
            Exec::Pool(p) => (None, p.has_indices(), None),
            _ => (None, false, None),
        };
        let index = match wants_indices {
            true => {
                let t = Tensor::zeros(ctx, &shapes[i + 1])?;
                Some(Tensor::view_of(ctx, t.buffer(), &shapes[i + 1], DType::I32))
            }
            false => None,
        };
        conv_grads.push(conv_grad);
        indices.push(index);
        relu_pool.push(scratch);
    }
    let col_elems = execs
        .iter()
        .map(|e| match e {
            Exec::Conv(p) | Exec::ConvBn { conv: p, .. } => p.scratch_elems(ctx, false),
            Exec::ConvReluPool(f, _) => f.conv.scratch_elems(ctx, true),
            _ => Ok(0),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensors {
        input,
        target: Tensor::from_slice_i32(ctx, &vec![0; batch], &[batch])?,
        values,
        grads,
        grad_scratch,
        flow: life,
        conv_grads,
        indices,
        relu_pool,
        col: Tensor::zeros(ctx, &[col_elems.into_iter().max().unwrap_or(0).max(1)])?,
        losses: Tensor::zeros(ctx, &[batch])?,
        count: Tensor::zeros(ctx, &[1])?,
        pooled_bytes,
    })
}
