//! Layers: the operators a model is built from, with PyTorch's names, parameters and shapes.

use crate::ops::{self, AvgPoolOptions, ConvOptions, ConvTransposeOptions, Dims, MaxPoolOptions};
use crate::{Error, Result};

/// One layer of a model, as in `torch.nn`.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `Conv1d/2d/3d` (`dims` spatial dimensions); weight (out, in/groups, *kernel).
    Conv {
        /// 1, 2 or 3.
        dims: usize,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel size per dimension.
        kernel_size: Dims,
        /// Stride, padding, dilation, groups.
        options: ConvOptions,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `ConvTranspose1d/2d/3d`; weight (in, out/groups, *kernel).
    ConvTranspose {
        /// 1, 2 or 3.
        dims: usize,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel size per dimension.
        kernel_size: Dims,
        /// Stride, padding, output_padding, dilation, groups.
        options: ConvTransposeOptions,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `Linear`: y = x W^T + b; weight (out, in).
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `ReLU`.
    Relu,
    /// `ReLU6`: min(max(x, 0), 6) (MobileNetV2).
    Relu6,
    /// `LeakyReLU`: x where x > 0, else negative_slope * x.
    LeakyRelu {
        /// The slope below zero (PyTorch: 0.01).
        negative_slope: f32,
    },
    /// `Sigmoid`: 1 / (1 + exp(-x)).
    Sigmoid,
    /// `Hardtanh(min_val, max_val)`: min(max(x, min_val), max_val) (ONNX's Clip).
    Hardtanh {
        /// The lower bound (may be -inf).
        min_val: f32,
        /// The upper bound (may be inf).
        max_val: f32,
    },
    /// x * factor for a constant factor (ONNX's Mul by a scalar).
    Scale {
        /// The factor.
        factor: f32,
    },
    /// `Softmax(dim)`: exp(x) / sum(exp(x)) along `dim` (negative counts from the end).
    Softmax {
        /// The dimension, the batch being dimension 0.
        dim: isize,
    },
    /// `ConstantPad1d/2d/3d`: pads (or, where negative, crops) the last `padding.len() / 2`
    /// dimensions with `value`; `padding` lists (before, after) pairs from the last dimension
    /// backwards, as `torch.nn.functional.pad`.
    Pad {
        /// (before, after) per dimension, last dimension first.
        padding: Vec<i64>,
        /// The value padded in (-inf before a max-pooling).
        value: f32,
    },
    /// Element-wise sum of its inputs, which have equal shapes (a residual connection).
    Add,
    /// Its inputs concatenated along the channels (dimension 1), as `torch.cat(xs, 1)`: equal
    /// batch and spatial sizes.
    Concat,
    /// `MaxPool1d/2d/3d`.
    MaxPool {
        /// 1, 2 or 3.
        dims: usize,
        /// Kernel, stride, padding, dilation, ceil_mode.
        options: MaxPoolOptions,
    },
    /// `AvgPool1d/2d/3d`.
    AvgPool {
        /// 1, 2 or 3.
        dims: usize,
        /// Kernel, stride, padding, ceil_mode, count_include_pad.
        options: AvgPoolOptions,
    },
    /// `AdaptiveAvgPool1d/2d/3d`.
    AdaptiveAvgPool {
        /// 1, 2 or 3.
        dims: usize,
        /// Output size per dimension.
        output_size: Dims,
    },
    /// `Dropout(p)`: zeroes elements with probability p in training, the identity in evaluation.
    Dropout {
        /// Probability of zeroing an element.
        p: f32,
    },
    /// `Flatten`: (N, *) to (N, prod(*)).
    Flatten,
    /// `BatchNorm1d/2d/3d` over (N, C, *): learnable weight (1) and bias (0), running mean (0)
    /// and variance (1) as buffers.
    BatchNorm {
        /// 1, 2 or 3 (for the name only: any (N, C, *) input works).
        dims: usize,
        /// Channels.
        num_features: usize,
        /// Added to the variance (PyTorch: 1e-5).
        eps: f64,
        /// Weight of each batch in the running statistics (PyTorch: 0.1).
        momentum: f64,
    },
}

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for convolutions and linear layers.
    Uniform,
    /// Every element this value (batch norm: weight 1, bias 0, running variance 1).
    Constant(f32),
    /// N(0, 2 / fan_out), fan_out = out_channels x kernel taps: torchvision's
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")` for ResNet's and MobileNetV2's
    /// convolutions.
    KaimingNormalFanOut,
    /// N(0, std^2) (MobileNetV2's classifier: 0.01).
    Normal(f32),
}

/// A parameter a layer owns: its name suffix (`weight`, `bias`), shape, and the fan-in that
/// PyTorch's default initialisation scales by.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// `weight` or `bias`.
    pub suffix: &'static str,
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// Fan-in: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) is PyTorch's default (Kaiming-uniform with
    /// a = sqrt(5) for weights, and the same bound for biases).
    pub fan_in: usize,
    /// How it starts.
    pub init: Init,
}

impl Layer {
    /// `Conv2d(in, out, kernel_size)` with `options`.
    pub fn conv2d(
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        options: ConvOptions,
    ) -> Layer {
        Layer::Conv {
            dims: 2,
            in_channels,
            out_channels,
            kernel_size: kernel_size.into(),
            options,
            bias: true,
        }
    }

    /// The same layer with or without its bias (convolutions and linear layers; `bias=False`
    /// in PyTorch, as before a batch norm).
    pub fn with_bias(mut self, with: bool) -> Layer {
        if let Layer::Conv { bias, .. }
        | Layer::ConvTranspose { bias, .. }
        | Layer::Linear { bias, .. } = &mut self
        {
            *bias = with;
        }
        self
    }

    /// `Linear(in, out)` with a bias.
    pub fn linear(in_features: usize, out_features: usize) -> Layer {
        Layer::Linear { in_features, out_features, bias: true }
    }

    /// `BatchNorm2d(num_features)` with PyTorch's eps (1e-5) and momentum (0.1).
    pub fn batch_norm2d(num_features: usize) -> Layer {
        Layer::BatchNorm { dims: 2, num_features, eps: 1e-5, momentum: 0.1 }
    }

    /// `MaxPool2d(kernel_size)` (stride = kernel_size).
    pub fn max_pool2d(kernel_size: usize) -> Layer {
        Layer::MaxPool { dims: 2, options: MaxPoolOptions::new(kernel_size) }
    }

    /// PyTorch's class name, e.g. `Conv2d`, `MaxPool2d`.
    pub fn type_name(&self) -> String {
        match self {
            Layer::Conv { dims, .. } => format!("Conv{dims}d"),
            Layer::ConvTranspose { dims, .. } => format!("ConvTranspose{dims}d"),
            Layer::Linear { .. } => "Linear".into(),
            Layer::Relu => "ReLU".into(),
            Layer::Relu6 => "ReLU6".into(),
            Layer::LeakyRelu { .. } => "LeakyReLU".into(),
            Layer::Sigmoid => "Sigmoid".into(),
            Layer::Hardtanh { .. } => "Hardtanh".into(),
            Layer::Scale { .. } => "Scale".into(),
            Layer::Softmax { .. } => "Softmax".into(),
            Layer::Pad { padding, .. } => format!("ConstantPad{}d", padding.len() / 2),
            Layer::Add => "Add".into(),
            Layer::Concat => "Concat".into(),
            Layer::MaxPool { dims, .. } => format!("MaxPool{dims}d"),
            Layer::AvgPool { dims, .. } => format!("AvgPool{dims}d"),
            Layer::AdaptiveAvgPool { dims, .. } => format!("AdaptiveAvgPool{dims}d"),
            Layer::Dropout { .. } => "Dropout".into(),
            Layer::Flatten => "Flatten".into(),
            Layer::BatchNorm { dims, .. } => format!("BatchNorm{dims}d"),
        }
    }

    /// The parameters the layer owns, in PyTorch's order.
    pub fn params(&self) -> Vec<ParamSpec> {
        let with_bias = |w: ParamSpec, bias: bool, channels: usize| {
            let fan_in = w.fan_in;
            let mut v = vec![w];
            if bias {
                v.push(ParamSpec {
                    suffix: "bias",
                    shape: vec![channels],
                    fan_in,
                    init: Init::Uniform,
                });
            }
            v
        };
        match self {
            Layer::Conv { dims, in_channels, out_channels, kernel_size, options, bias } => {
                let k = kernel_size.0.iter().copied().cycle().take(*dims).collect::<Vec<_>>();
                let mut shape = vec![*out_channels, in_channels / options.groups.max(1)];
                shape.extend(&k);
                let fan_in = shape[1] * k.iter().product::<usize>();
                with_bias(
                    ParamSpec { suffix: "weight", shape, fan_in, init: Init::Uniform },
                    *bias,
                    *out_channels,
                )
            }
            Layer::ConvTranspose {
                dims,
                in_channels,
                out_channels,
                kernel_size,
                options,
                bias,
            } => {
                let k = kernel_size.0.iter().copied().cycle().take(*dims).collect::<Vec<_>>();
                let mut shape = vec![*in_channels, out_channels / options.groups.max(1)];
                shape.extend(&k);
                // PyTorch computes fan-in from the weight's dimension 1 for every layer.
                let fan_in = shape[1] * k.iter().product::<usize>();
                with_bias(
                    ParamSpec { suffix: "weight", shape, fan_in, init: Init::Uniform },
                    *bias,
                    *out_channels,
                )
            }
            Layer::Linear { in_features, out_features, bias } => with_bias(
                ParamSpec {
                    suffix: "weight",
                    shape: vec![*out_features, *in_features],
                    fan_in: *in_features,
                    init: Init::Uniform,
                },
                *bias,
                *out_features,
            ),
            Layer::BatchNorm { num_features, .. } => vec![
                ParamSpec {
                    suffix: "weight",
                    shape: vec![*num_features],
                    fan_in: 1,
                    init: Init::Constant(1.0),
                },
                ParamSpec {
                    suffix: "bias",
                    shape: vec![*num_features],
                    fan_in: 1,
                    init: Init::Constant(0.0),
                },
            ],
            _ => Vec::new(),
        }
    }

    /// State that is not trained but saved (PyTorch's buffers): batch norm's running mean and
    /// variance and its count of batches.
    pub fn buffers(&self) -> Vec<ParamSpec> {
        match self {
            Layer::BatchNorm { num_features, .. } => vec![
                ParamSpec {
                    suffix: "running_mean",
                    shape: vec![*num_features],
                    fan_in: 1,
                    init: Init::Constant(0.0),
                },
                ParamSpec {
                    suffix: "running_var",
                    shape: vec![*num_features],
                    fan_in: 1,
                    init: Init::Constant(1.0),
                },
                ParamSpec {
                    suffix: "num_batches_tracked",
                    shape: vec![],
                    fan_in: 1,
                    init: Init::Constant(0.0),
                },
            ],
            _ => Vec::new(),
        }
    }

    /// The output shape for an input shape (batch dimension first), from the operators' own
    /// shape inference, for layers that take one input.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the input does not fit the layer.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.infer_shape(&[input])
    }

    /// The output shape for the shapes of its inputs (batch dimension first): one input,
    /// except for `Add` (equal shapes) and `Concat` (equal but for the channels).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the shapes when the inputs do not fit the layer.
    pub fn infer_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        match (self, inputs) {
            (Layer::Add, [first, rest @ ..]) => {
                if let Some(other) = rest.iter().find(|s| *s != first) {
                    return Err(Error::invalid(
                        "add",
                        format!("inputs of different shapes: {first:?} and {other:?}"),
                    ));
                }
                Ok(first.to_vec())
            }
            (Layer::Concat, [first, ..]) => {
                let same = |s: &&[usize]| {
                    s.len() == first.len()
                        && s.len() >= 2
                        && s[0] == first[0]
                        && s[2..] == first[2..]
                };
                if let Some(other) = inputs.iter().find(|s| !same(s)) {
                    return Err(Error::invalid(
                        "concat",
                        format!(
                            "inputs must agree in all but the channels (dimension 1): {first:?} \
                             and {other:?}"
                        ),
                    ));
                }
                let mut out = first.to_vec();
                out[1] = inputs.iter().map(|s| s[1]).sum();
                Ok(out)
            }
            (Layer::Add | Layer::Concat, []) => {
                Err(Error::invalid("graph", format!("{} needs inputs", self.type_name())))
            }
            (layer, [input]) => layer.single_output_shape(input),
            (layer, _) => Err(Error::invalid(
                "graph",
                format!("{} takes one input, got {}", layer.type_name(), inputs.len()),
            )),
        }
    }

    fn single_output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        match self {
            Layer::Conv { options, .. } => {
                let w = &self.params()[0].shape;
                ops::conv_output_shape(input, w, options)
            }
            Layer::ConvTranspose { options, .. } => {
                let w = &self.params()[0].shape;
                ops::conv_transpose_output_shape(input, w, options)
            }
            Layer::Linear { in_features, out_features, .. } => {
                if input.last() != Some(in_features) {
                    return Err(Error::invalid(
                        "linear",
                        format!("input of shape {input:?} does not end in {in_features} features"),
                    ));
                }
                let mut out = input.to_vec();
                if let Some(last) = out.last_mut() {
                    *last = *out_features;
                }
                Ok(out)
            }
            Layer::Relu
            | Layer::Relu6
            | Layer::LeakyRelu { .. }
            | Layer::Sigmoid
            | Layer::Dropout { .. } => Ok(input.to_vec()),
            Layer::Hardtanh { min_val, max_val } => {
                crate::ops::activation::check_bounds(*min_val, *max_val)?;
                Ok(input.to_vec())
            }
            Layer::Scale { factor } => {
                if !factor.is_finite() {
                    return Err(Error::invalid("scale", format!("factor {factor} is not finite")));
                }
                Ok(input.to_vec())
            }
            Layer::Softmax { dim } => {
                crate::ops::activation::resolve_dim("softmax", *dim, input.len())?;
                Ok(input.to_vec())
            }
            Layer::Pad { padding, .. } => {
                if padding.len() / 2 >= input.len() {
                    return Err(Error::invalid(
                        "pad",
                        format!("{padding:?} would pad the batch dimension of {input:?}"),
                    ));
                }
                ops::pad_output_shape(input, padding)
            }
            Layer::Add | Layer::Concat => Ok(input.to_vec()),
            Layer::BatchNorm { num_features, .. } => {
                if input.len() < 2 || input[1] != *num_features {
                    return Err(Error::invalid(
                        "batch_norm",
                        format!("expected an (N, {num_features}, *) input, got {input:?}"),
                    ));
                }
                Ok(input.to_vec())
            }
            Layer::MaxPool { dims, options } => ops::max_pool_output_shape(input, *dims, options),
            Layer::AvgPool { dims, options } => ops::avg_pool_output_shape(input, *dims, options),
            Layer::AdaptiveAvgPool { dims, output_size } => {
                let size =
                    output_size.resolve_positive("adaptive_avg_pool", "output_size", *dims)?;
                if input.len() != dims + 2 {
                    return Err(Error::invalid(
                        "adaptive_avg_pool",
                        format!("expected a {}-D input, got {input:?}", dims + 2),
                    ));
                }
                let mut out = input[..2].to_vec();
                out.extend(size);
                Ok(out)
            }
            Layer::Flatten => {
                if input.is_empty() {
                    return Err(Error::invalid("flatten", "cannot flatten a scalar"));
                }
                Ok(vec![input[0], input[1..].iter().product()])
            }
        }
    }

    /// Multiply-accumulates of one forward pass for these input and output shapes (0 for
    /// layers without arithmetic worth counting).
    pub fn macs(&self, input: &[usize], output: &[usize]) -> u64 {
        let numel = |s: &[usize]| s.iter().product::<usize>() as u64;
        match self {
            // Each output element sums (in/groups) x kernel products.
            Layer::Conv { .. } => numel(output) * numel(&self.params()[0].shape[1..]),
            // Each input element scatters into (out/groups) x kernel outputs.
            Layer::ConvTranspose { .. } => numel(input) * numel(&self.params()[0].shape[1..]),
            Layer::Linear { in_features, .. } => numel(output) * *in_features as u64,
            _ => 0,
        }
    }
}
