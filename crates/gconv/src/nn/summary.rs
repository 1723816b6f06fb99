//! A model's summary, as the course's tables show it: per layer the output shape (from the
//! engine's own shape inference), parameters, multiply-accumulates, receptive field and jump;
//! totals of parameters, MACs, activation and weight memory.

use super::graph::Graph;
use super::layer::Layer;
use crate::{Error, Result};

/// One row of a [`Summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSummary {
    /// The node's name (`conv1`, `features.0`).
    pub name: String,
    /// PyTorch's class name (`Conv2d`).
    pub type_name: String,
    /// Output shape, batch first.
    pub output_shape: Vec<usize>,
    /// Parameters this layer adds (a shared layer's second use adds none).
    pub params: usize,
    /// Multiply-accumulates of its forward pass for the whole batch.
    pub macs: u64,
    /// Receptive field per spatial dimension, in input pixels; `None` once the spatial
    /// structure is gone (after Flatten or a Linear over it: every input pixel counts).
    pub receptive_field: Option<Vec<f64>>,
    /// Jump (the product of the strides so far) per spatial dimension: the distance in input
    /// pixels between neighbouring outputs. Fractional after a transposed convolution.
    pub jump: Option<Vec<f64>>,
}

/// A model's summary for one batch size.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Input shape, batch first.
    pub input_shape: Vec<usize>,
    /// One row per node.
    pub layers: Vec<LayerSummary>,
    /// Trainable parameters (each counted once).
    pub trainable_params: usize,
    /// Saved but untrained elements (batch norm's running statistics).
    pub buffer_elements: usize,
    /// Multiply-accumulates of one forward pass over the batch.
    pub macs: u64,
    /// Bytes of the input (f32).
    pub input_bytes: u64,
    /// Bytes of every layer's output (f32) in one forward pass, as if none were freed.
    pub activation_bytes: u64,
    /// Bytes of the parameters and buffers (f32).
    pub weight_bytes: u64,
}

/// Kernel, stride and dilation per spatial dimension of a layer that moves a window.
struct Window {
    kernel: Vec<usize>,
    stride: Vec<f64>,
    dilation: Vec<usize>,
    transposed: bool,
}

fn window(layer: &Layer, input: &[usize], output: &[usize]) -> Result<Option<Window>> {
    let rank = input.len().saturating_sub(2);
    let w = |v: Vec<usize>| v.into_iter().map(|s| s as f64).collect::<Vec<f64>>();
    Ok(match layer {
        Layer::Conv { kernel_size, options, .. } => Some(Window {
            kernel: kernel_size.resolve("summary", "kernel_size", rank)?,
            stride: w(options.stride.resolve("summary", "stride", rank)?),
            dilation: options.dilation.resolve("summary", "dilation", rank)?,
            transposed: false,
        }),
        Layer::ConvTranspose { kernel_size, options, .. } => Some(Window {
            kernel: kernel_size.resolve("summary", "kernel_size", rank)?,
            stride: w(options.stride.resolve("summary", "stride", rank)?),
            dilation: options.dilation.resolve("summary", "dilation", rank)?,
            transposed: true,
        }),
        Layer::MaxPool { options, .. } => {
            let kernel = options.kernel_size.resolve("summary", "kernel_size", rank)?;
            let stride = options
                .stride
                .as_ref()
                .map_or(Ok(kernel.clone()), |s| s.resolve("summary", "stride", rank))?;
            Some(Window {
                kernel,
                stride: w(stride),
                dilation: options.dilation.resolve("summary", "dilation", rank)?,
                transposed: false,
            })
        }
        Layer::AvgPool { options, .. } => {
            let kernel = options.kernel_size.resolve("summary", "kernel_size", rank)?;
            let stride = options
                .stride
                .as_ref()
                .map_or(Ok(kernel.clone()), |s| s.resolve("summary", "stride", rank))?;
            Some(Window { kernel, stride: w(stride), dilation: vec![1; rank], transposed: false })
        }
        // PyTorch's adaptive windows: output j covers [floor(j*i/o), ceil((j+1)*i/o)).
        Layer::AdaptiveAvgPool { .. } => {
            let (mut kernel, mut stride) = (Vec::new(), Vec::new());
            for (&i, &o) in input[2..].iter().zip(&output[2..]) {
                let widest = (0..o).map(|j| ((j + 1) * i).div_ceil(o) - j * i / o).max();
                kernel.push(widest.unwrap_or(1));
                stride.push(i as f64 / o as f64);
            }
            Some(Window { kernel, stride, dilation: vec![1; rank], transposed: false })
        }
        _ => None,
    })
}

/// The field a node sees through all its inputs: per dimension the largest receptive field and
/// jump over every path; None when any input has lost its spatial structure.
fn widest<'a>(
    mut inputs: impl Iterator<Item = &'a Option<(Vec<f64>, Vec<f64>)>>,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let (mut rf, mut jump) = inputs.next()?.clone()?;
    for other in inputs {
        let (orf, ojump) = other.as_ref()?;
        for d in 0..rf.len().min(orf.len()) {
            rf[d] = rf[d].max(orf[d]);
            jump[d] = jump[d].max(ojump[d]);
        }
    }
    Some((rf, jump))
}

/// Summarises `graph` for a batch of `batch` samples: the receptive field of a node that
/// joins branches is the largest over all paths.
///
/// # Errors
/// [`Error::InvalidArgument`] when a layer does not fit its input.
pub fn summarize(graph: &Graph, batch: usize) -> Result<Summary> {
    if batch == 0 {
        return Err(Error::invalid("summary", "the batch needs at least one sample"));
    }
    let shapes = graph.shapes(batch)?;
    let spatial = shapes[0].len().saturating_sub(2);
    // Receptive field and jump per spatial dimension of every value; None once the structure
    // is gone. (The receptive field does not depend on padding.)
    type Field = Option<(Vec<f64>, Vec<f64>)>;
    let mut fields: Vec<Field> =
        vec![(spatial > 0).then(|| (vec![1.0; spatial], vec![1.0; spatial]))];
    let mut seen = vec![false; graph.params.len()];
    let mut layers = Vec::new();
    let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
    for (i, node) in graph.nodes.iter().enumerate() {
        let (input, output) = (&shapes[node.inputs[0]], &shapes[i + 1]);
        let mut params = 0;
        for &p in &node.params {
            if !seen[p] {
                seen[p] = true;
                params += graph.params[p].spec.shape.iter().product::<usize>();
            }
        }
        let field = match (&node.layer, widest(node.inputs.iter().map(|&v| &fields[v]))) {
            (Layer::Flatten | Layer::Linear { .. }, _) | (_, None) => None,
            (layer, Some((mut rf, mut jump))) => {
                if let Some(win) = window(layer, input, output)? {
                    for d in 0..spatial.min(win.kernel.len()) {
                        let extent = (win.dilation[d] * (win.kernel[d] - 1) + 1) as f64;
                        if win.transposed {
                            // An output sees ceil(extent / stride) neighbouring inputs.
                            rf[d] += ((extent / win.stride[d]).ceil() - 1.0) * jump[d];
                            jump[d] /= win.stride[d];
                        } else {
                            rf[d] += (extent - 1.0) * jump[d];
                            jump[d] *= win.stride[d];
                        }
                    }
                }
                Some((rf, jump))
            }
        };
        fields.push(field.clone());
        layers.push(LayerSummary {
            name: node.name.clone(),
            type_name: node.layer.type_name(),
            output_shape: output.clone(),
            params,
            macs: node.layer.macs(input, output),
            receptive_field: field.as_ref().map(|f| f.0.clone()),
            jump: field.map(|f| f.1),
        });
    }
    let trainable_params = graph.parameter_count();
    let buffer_elements: usize =
        graph.buffers.iter().map(|b| b.spec.shape.iter().product::<usize>()).sum();
    Ok(Summary {
        input_shape: shapes[0].clone(),
        macs: layers.iter().map(|l| l.macs).sum(),
        trainable_params,
        buffer_elements,
        input_bytes: numel(&shapes[0]) * 4,
        activation_bytes: shapes[1..].iter().map(|s| numel(s) * 4).sum(),
        weight_bytes: (trainable_params + buffer_elements) as u64 * 4,
        layers,
    })
}
