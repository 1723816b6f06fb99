//! A plan's memory: the lifetime of every value and gradient over the plan's steps, buffers
//! taken from a pool that shares those whose lifetimes do not overlap, and the other tensors
//! the recorded kernels read and write ([`Tensors`]), all allocated once.

use super::PlanKind;
use super::lower::{Exec, Lowered};
use crate::ops::conv::{ConvPlan, ReluPoolScratch};
use crate::{Context, DType, Error, Result, Tensor};

/// Everything the plan's kernels are recorded against.
pub(super) struct Tensors {
    /// The input batch (value 0), written by the host.
    pub input: Tensor,
    /// The class targets (i32), written by the host.
    pub target: Tensor,
    /// Value v's tensor (value 0 the input, value n the logits).
    pub values: Vec<Tensor>,
    /// Value v's gradient (training, v > 0).
    pub grads: Vec<Option<Tensor>>,
    /// A fused node's convolution-output gradient, for a backward pass that unpools first.
    pub conv_grads: Vec<Option<Tensor>>,
    /// The argmax of a max-pooling node (a fused one's in training).
    pub indices: Vec<Option<Tensor>>,
    /// What a fused node's forward pass keeps for its backward pass.
    pub relu_pool: Vec<Option<ReluPoolScratch>>,
    /// One im2col scratch for every convolution of the plan (they run one after another).
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

/// Where values and gradients live: storage classes (aliases share one) and the step interval
/// each class is live in. Forward node i runs at step i, the loss at n, backward node i at
/// 2n - i.
struct Lifetimes {
    store: Vec<usize>,
    act: Vec<(usize, usize)>,
    gstore: Vec<usize>,
    grad: Vec<(usize, usize)>,
}

fn t_bwd(n: usize, i: usize) -> usize {
    2 * n - i
}

fn lifetimes(execs: &[Exec], kind: PlanKind) -> Lifetimes {
    let n = execs.len();
    let (train, t_loss) = (matches!(kind, PlanKind::Train { .. }), n);
    // Activations: value 0 is the host-written input (not pooled); aliases share storage.
    let mut store = vec![0usize; n + 1];
    let mut next = 1;
    for v in 1..=n {
        store[v] = if matches!(execs[v - 1], Exec::Alias) { store[v - 1] } else { next };
        if store[v] == next {
            next += 1;
        }
    }
    let uses: Vec<(usize, usize)> = (0..=n)
        .map(|v| {
            let def = v.saturating_sub(1);
            let mut last = if v < n { v } else { t_loss };
            if kind == PlanKind::Capture {
                last = 2 * n + 1;
            }
            if train && v < n && execs[v].backward_reads_input() {
                last = t_bwd(n, v);
            }
            (def, last)
        })
        .collect();
    // Gradients (training): grad[v] is written by node v's backward (the loss for v = n) and
    // read by node v-1's; Flatten shares its output's gradient with its input.
    let mut gstore = vec![0usize; n + 1];
    let mut gnext = 1;
    for v in (1..=n).rev() {
        gstore[v] = if v < n && matches!(execs[v], Exec::Alias) { gstore[v + 1] } else { gnext };
        if gstore[v] == gnext {
            gnext += 1;
        }
    }
    let guses: Vec<(usize, usize)> = (0..=n)
        .map(|v| match v {
            0 => (0, 0),
            _ if v == n => (t_loss, t_bwd(n, v - 1)),
            _ => (t_bwd(n, v), t_bwd(n, v - 1)),
        })
        .collect();
    let act = intervals(&store, &uses);
    let grad = intervals(&gstore, &guses);
    Lifetimes { store, act, gstore, grad }
}

/// The live interval of each storage class: value v lives in `store[v]`.
fn intervals(store: &[usize], uses: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let count = store.iter().copied().max().map_or(0, |m| m + 1);
    let mut iv = vec![(usize::MAX, 0usize); count];
    for (v, &s) in store.iter().enumerate() {
        iv[s].0 = iv[s].0.min(uses[v].0);
        iv[s].1 = iv[s].1.max(uses[v].1);
    }
    iv
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
}

/// Takes every value's and gradient's buffer from one pool, requests in order of their first
/// use; returns (values' buffers, gradients' buffers, fused nodes' buffers, pooled bytes).
#[allow(clippy::type_complexity)]
fn pooled_buffers(
    ctx: &Context,
    lowered: &Lowered,
    life: &Lifetimes,
    train: bool,
) -> Result<(Vec<Option<wgpu::Buffer>>, Vec<Option<wgpu::Buffer>>, Vec<Option<wgpu::Buffer>>, u64)>
{
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
        for (s, iv) in life.grad.iter().enumerate().skip(1) {
            requests.push((iv.0, Use::Grad(s), largest(&life.gstore, s)));
        }
        for (i, exec) in lowered.execs.iter().enumerate() {
            if let Exec::ConvReluPool(_, conv_shape) = exec {
                let bytes = conv_shape.iter().product::<usize>() as u64 * 4;
                requests.push((t_bwd(n, i), Use::ConvGrad(i), bytes));
            }
        }
    }
    requests.sort_by_key(|r| (r.0, r.1));
    let mut pool = Pool { buffers: Vec::new() };
    let mut act = vec![None; life.act.len()];
    let mut grad = vec![None; life.grad.len()];
    let mut conv = vec![None; n];
    for (start, what, bytes) in requests {
        match what {
            Use::Value(s) => act[s] = Some(pool.take(ctx, bytes, start, life.act[s].1)?),
            Use::Grad(s) => grad[s] = Some(pool.take(ctx, bytes, start, life.grad[s].1)?),
            Use::ConvGrad(i) => conv[i] = Some(pool.take(ctx, bytes, start, start)?),
        }
    }
    let bytes = pool.buffers.iter().map(|(_, size, _)| size).sum();
    Ok((act, grad, conv, bytes))
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
    let life = lifetimes(execs, kind);
    let (act, grad, conv, pooled_bytes) = pooled_buffers(ctx, lowered, &life, train)?;
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
        .map(|v| (train && v > 0).then(|| view(&grad[life.gstore[v]], &shapes[v])).transpose())
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
        .map(|e| if let Exec::Conv(p) = e { ConvPlan::col_scratch_elems(p, ctx) } else { Ok(0) })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensors {
        input,
        target: Tensor::from_slice_i32(ctx, &vec![0; batch], &[batch])?,
        values,
        grads,
        conv_grads,
        indices,
        relu_pool,
        col: Tensor::zeros(ctx, &[col_elems.into_iter().max().unwrap_or(0).max(1)])?,
        losses: Tensor::zeros(ctx, &[batch])?,
        count: Tensor::zeros(ctx, &[1])?,
        pooled_bytes,
    })
}
