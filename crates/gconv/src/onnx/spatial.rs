//! ONNX's spatial operators as gconv layers: Conv, ConvTranspose, MaxPool, AveragePool, the
//! global pools and Pad. Padding is resolved at import, where the input's spatial size is
//! known: `auto_pad` becomes explicit pads, and pads that differ before and after a
//! dimension become a padding layer in front (or, for ConvTranspose, a crop behind) with the
//! symmetric part left to the operator.

use onnx_proto::NodeProto;

use super::convert::Importer;
use super::describe;
use super::fold::node_error;
use super::tensors::{Attributes, Constant};
use crate::Result;
use crate::nn::Layer;
use crate::ops::{
    AvgPoolOptions, ConvOptions, ConvTransposeOptions, Dims, MaxPoolOptions, Padding,
};

/// Explicit pads before and after each spatial dimension.
struct Pads {
    begin: Vec<usize>,
    end: Vec<usize>,
}

impl Pads {
    /// Each dimension's `total` padding split as ONNX splits it: the odd pixel after with
    /// `upper` (SAME_UPPER), before otherwise.
    fn split(totals: impl IntoIterator<Item = usize>, upper: bool) -> Pads {
        let (mut begin, mut end) = (Vec::new(), Vec::new());
        for total in totals {
            let (small, large) = (total / 2, total - total / 2);
            begin.push(if upper { small } else { large });
            end.push(if upper { large } else { small });
        }
        Pads { begin, end }
    }

    fn symmetric(&self) -> bool {
        self.begin == self.end
    }

    /// The part both sides share, which the operator pads itself.
    fn common(&self) -> Vec<usize> {
        self.begin.iter().zip(&self.end).map(|(&b, &e)| b.min(e)).collect()
    }

    /// The rest, as a padding layer's list.
    fn rest(&self) -> Vec<i64> {
        let common = self.common();
        let less = |v: &[usize]| v.iter().zip(&common).map(|(a, c)| a - c).collect::<Vec<_>>();
        torch_order(&less(&self.begin), &less(&self.end), 1)
    }
}

/// Pads before and after each dimension as PyTorch's `pad` list (last dimension first),
/// times `sign` (-1 to crop).
fn torch_order(begin: &[usize], end: &[usize], sign: i64) -> Vec<i64> {
    (0..begin.len()).rev().flat_map(|d| [sign * begin[d] as i64, sign * end[d] as i64]).collect()
}

/// The window of a convolution or pooling: per spatial dimension, the input size, kernel
/// extent ((k - 1) x dilation + 1) and stride.
struct Window {
    input: Vec<usize>,
    extent: Vec<usize>,
    stride: Vec<usize>,
}

/// Pads from `auto_pad` and `pads`: `SAME_UPPER` / `SAME_LOWER` pad so that the output is
/// ceil(input / stride), the odd pixel after (upper) or before (lower); `VALID` none.
fn pads(a: &Attributes<'_>, w: &Window) -> Result<Pads> {
    let dims = w.input.len();
    let auto = a.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" => {
            let pads = a.sizes("pads")?.unwrap_or(vec![0; 2 * dims]);
            if pads.len() != 2 * dims {
                return Err(a.unsupported(
                    "pads",
                    &format!("has {} values for {dims} spatial dimensions", pads.len()),
                ));
            }
            Ok(Pads { begin: pads[..dims].to_vec(), end: pads[dims..].to_vec() })
        }
        "VALID" => Ok(Pads { begin: vec![0; dims], end: vec![0; dims] }),
        "SAME_UPPER" | "SAME_LOWER" => {
            let totals = (0..dims).map(|d| {
                let out = w.input[d].div_ceil(w.stride[d].max(1));
                ((out.max(1) - 1) * w.stride[d] + w.extent[d]).saturating_sub(w.input[d])
            });
            Ok(Pads::split(totals, auto == "SAME_UPPER"))
        }
        other => Err(a.unsupported(
            "auto_pad",
            &format!("is {other:?} (ONNX defines NOTSET, VALID, SAME_UPPER and SAME_LOWER)"),
        )),
    }
}

/// Per-dimension attribute `name` (strides, dilations), 1 where absent, checked for length.
fn per_dim(a: &Attributes<'_>, name: &str, dims: usize) -> Result<Vec<usize>> {
    let v = a.sizes(name)?.unwrap_or(vec![1; dims]);
    if v.len() != dims {
        return Err(a.unsupported(name, &format!("has {} values for {dims} dimensions", v.len())));
    }
    if v.contains(&0) {
        return Err(a.unsupported(name, "has a zero"));
    }
    Ok(v)
}

fn extent(kernel: &[usize], dilation: &[usize]) -> Vec<usize> {
    kernel.iter().zip(dilation).map(|(&k, &d)| (k.max(1) - 1) * d + 1).collect()
}

/// What Conv and ConvTranspose read alike: the input, the weight and bias with their names,
/// and the attributes checked against them.
struct ConvNode {
    x: String,
    w: Constant,
    w_name: String,
    bias: Option<(Constant, String)>,
    dims: usize,
    kernel: Vec<usize>,
    groups: usize,
    in_channels: usize,
    input: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
}

impl ConvNode {
    /// The weight and bias as a layer's weights, under their ONNX names.
    fn weights(self) -> Vec<(&'static str, Option<String>, Vec<f32>)> {
        let mut weights = vec![("weight", Some(self.w_name), self.w.floats())];
        if let Some((b, b_name)) = self.bias {
            weights.push(("bias", Some(b_name), b.floats()));
        }
        weights
    }
}

impl Importer {
    /// The spatial sizes of `x` and its channel count.
    fn spatial(&self, node: &NodeProto, x: &str, dims: usize) -> Result<(usize, Vec<usize>)> {
        let shape = self.shape(x)?;
        if shape.len() != dims + 2 {
            return Err(node_error(
                node,
                format!("input of shape {shape:?} (batch first) for a {dims}-D operator"),
            ));
        }
        Ok((shape[1], shape[2..].to_vec()))
    }

    /// A padding layer in front of `x` for the asymmetric part of `pads`, named after the
    /// layer it feeds; returns the value the operator reads.
    fn pad_in_front(
        &mut self,
        node: &NodeProto,
        x: String,
        pads: &Pads,
        value: f32,
        name: &str,
    ) -> Result<String> {
        if pads.symmetric() {
            return Ok(x);
        }
        let pad_name = self.unique(&format!("{name}.pad"));
        let layer = Layer::Pad { padding: pads.rest(), value };
        self.push(node, pad_name.clone(), layer, &[&x], vec![])?;
        Ok(pad_name)
    }

    fn conv_node(&self, node: &NodeProto, a: &Attributes<'_>) -> Result<ConvNode> {
        let x = self.tensor(node, 0)?;
        let (w, w_name) =
            self.constant(node, 1)?.ok_or_else(|| node_error(node, "has no weight"))?;
        let bias = self.constant(node, 2)?;
        if !(3..=5).contains(&w.shape.len()) {
            return Err(node_error(node, format!("weight is {}", describe(&w))));
        }
        let dims = w.shape.len() - 2;
        let kernel = w.shape[2..].to_vec();
        if let Some(k) = a.sizes("kernel_shape")?
            && k != kernel
        {
            return Err(a.unsupported(
                "kernel_shape",
                &format!("{k:?} disagrees with the weight's {kernel:?}"),
            ));
        }
        let groups = usize::try_from(a.int("group")?.unwrap_or(1))
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| a.unsupported("group", "is not positive"))?;
        let (in_channels, input) = self.spatial(node, &x, dims)?;
        let (stride, dilation) = (per_dim(a, "strides", dims)?, per_dim(a, "dilations", dims)?);
        Ok(ConvNode {
            x,
            w,
            w_name,
            bias,
            dims,
            kernel,
            groups,
            in_channels,
            input,
            stride,
            dilation,
        })
    }

    pub(super) fn conv(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(
            node,
            &["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
        )?;
        let c = self.conv_node(node, &a)?;
        let extent = extent(&c.kernel, &c.dilation);
        let window = Window { input: c.input.clone(), extent, stride: c.stride.clone() };
        let pads = pads(&a, &window)?;
        let name = self.layer_name(node, Some(&c.w_name));
        let x = self.pad_in_front(node, c.x.clone(), &pads, 0.0, &name)?;
        let options = ConvOptions {
            stride: Dims(c.stride.clone()),
            padding: Padding::Explicit(Dims(pads.common())),
            dilation: Dims(c.dilation.clone()),
            groups: c.groups,
        };
        let layer = Layer::Conv {
            dims: c.dims,
            in_channels: c.in_channels,
            out_channels: c.w.shape[0],
            kernel_size: Dims(c.kernel.clone()),
            options,
            bias: c.bias.is_some(),
        };
        self.push(node, name, layer, &[&x], c.weights())
    }

    /// ConvTranspose: `output_shape` (or `auto_pad`) sets the pads as ONNX defines;
    /// asymmetric pads become output_padding where PyTorch allows it, else a crop behind.
    pub(super) fn conv_transpose(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(
            node,
            &[
                "auto_pad",
                "dilations",
                "group",
                "kernel_shape",
                "output_padding",
                "output_shape",
                "pads",
                "strides",
            ],
        )?;
        let c = self.conv_node(node, &a)?;
        let (dims, stride, dilation, input) = (c.dims, &c.stride, &c.dilation, &c.input);
        let mut output_padding = a.sizes("output_padding")?.unwrap_or(vec![0; dims]);
        if output_padding.len() != dims {
            return Err(a.unsupported("output_padding", &format!("needs {dims} values")));
        }
        let ext = extent(&c.kernel, dilation);
        // The output before any padding is removed.
        let full: Vec<usize> =
            (0..dims).map(|d| stride[d] * (input[d] - 1) + output_padding[d] + ext[d]).collect();
        let auto = a.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        let wanted = match a.sizes("output_shape")? {
            Some(s) if s.len() == dims => Some(s),
            Some(s) if s.len() == dims + 2 => Some(s[2..].to_vec()),
            Some(s) => {
                return Err(a.unsupported("output_shape", &format!("has {} values", s.len())));
            }
            None if auto.starts_with("SAME") => {
                Some(input.iter().zip(stride).map(|(i, s)| i * s).collect())
            }
            None => None,
        };
        let pads = match wanted {
            Some(out) => {
                let totals = (0..dims)
                    .map(|d| {
                        full[d].checked_sub(out[d]).ok_or_else(|| {
                            a.unsupported(
                                "output_shape",
                                &format!("{out:?} is larger than the full output {full:?}"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Pads::split(totals, auto == "SAME_UPPER")
            }
            None if auto == "VALID" || auto == "NOTSET" => {
                pads(&a, &Window { input: input.clone(), extent: ext, stride: stride.clone() })?
            }
            None => return Err(a.unsupported("auto_pad", &format!("is {auto:?}"))),
        };
        // Padding p removes p before and p - output_padding after: a smaller end goes into
        // output_padding while PyTorch's rule (output_padding < max(stride, dilation)) holds;
        // what remains is cropped behind.
        let (mut padding, mut crop) = (Vec::new(), Pads { begin: vec![], end: vec![] });
        for d in 0..dims {
            let (b, e) = (pads.begin[d], pads.end[d]);
            let extra = b.saturating_sub(e);
            if extra > 0 && output_padding[d] + extra < stride[d].max(dilation[d]) {
                output_padding[d] += extra;
                padding.push(b);
                crop.begin.push(0);
                crop.end.push(0);
            } else {
                let p = b.min(e);
                padding.push(p);
                crop.begin.push(b - p);
                crop.end.push(e - p);
            }
        }
        let options = ConvTransposeOptions {
            stride: Dims(stride.clone()),
            padding: Dims(padding),
            output_padding: Dims(output_padding),
            dilation: Dims(dilation.clone()),
            groups: c.groups,
        };
        let layer = Layer::ConvTranspose {
            dims,
            in_channels: c.in_channels,
            out_channels: c.w.shape[1] * c.groups,
            kernel_size: Dims(c.kernel.clone()),
            options,
            bias: c.bias.is_some(),
        };
        let name = self.layer_name(node, Some(&c.w_name));
        let x = c.x.clone();
        self.push(node, name.clone(), layer, &[&x], c.weights())?;
        if crop.begin.iter().chain(&crop.end).any(|&c| c > 0) {
            let crop_name = self.unique(&format!("{name}.crop"));
            let layer = Layer::Pad { padding: torch_order(&crop.begin, &crop.end, -1), value: 0.0 };
            self.push(node, crop_name, layer, &[&name], vec![])?;
        }
        Ok(())
    }

    pub(super) fn pool(&mut self, node: &NodeProto) -> Result<()> {
        let max = node.op_type() == "MaxPool";
        let known: &'static [&'static str] = if max {
            &[
                "auto_pad",
                "ceil_mode",
                "dilations",
                "kernel_shape",
                "pads",
                "storage_order",
                "strides",
            ]
        } else {
            &[
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
            ]
        };
        let a = Attributes::new(node, known)?;
        let x = self.tensor(node, 0)?;
        let kernel =
            a.sizes("kernel_shape")?.ok_or_else(|| a.unsupported("kernel_shape", "is missing"))?;
        let dims = kernel.len();
        let (_, input) = self.spatial(node, &x, dims)?;
        let (stride, dilation) = (per_dim(&a, "strides", dims)?, per_dim(&a, "dilations", dims)?);
        let window = Window { input, extent: extent(&kernel, &dilation), stride: stride.clone() };
        let pads = pads(&a, &window)?;
        let ceil_mode = a.int("ceil_mode")?.unwrap_or(0) != 0;
        let count_include_pad = a.int("count_include_pad")?.unwrap_or(0) != 0;
        if !pads.symmetric() && (ceil_mode || !(max || count_include_pad)) {
            return Err(a.unsupported(
                "pads",
                &format!(
                    "differ before ({:?}) and after ({:?}) with {}; gconv pads asymmetrically \
                     only where padding in front gives the same windows",
                    pads.begin,
                    pads.end,
                    if ceil_mode { "ceil_mode" } else { "count_include_pad = 0" }
                ),
            ));
        }
        let name = self.layer_name(node, None);
        let fill = if max { f32::NEG_INFINITY } else { 0.0 };
        let x = self.pad_in_front(node, x, &pads, fill, &name)?;
        let (stride, padding) = (Some(Dims(stride)), Dims(pads.common()));
        let layer = if max {
            if a.int("storage_order")?.unwrap_or(0) != 0 {
                return Err(a.unsupported("storage_order", "is 1 (column-major indices)"));
            }
            let mut o = MaxPoolOptions::new(Dims(kernel));
            (o.stride, o.padding, o.dilation, o.ceil_mode) =
                (stride, padding, Dims(dilation), ceil_mode);
            Layer::MaxPool { dims, options: o }
        } else {
            if dilation.iter().any(|&d| d != 1) {
                return Err(
                    a.unsupported("dilations", "are not 1 (PyTorch's average pooling has none)")
                );
            }
            let mut o = AvgPoolOptions::new(Dims(kernel));
            (o.stride, o.padding, o.ceil_mode, o.count_include_pad) =
                (stride, padding, ceil_mode, count_include_pad);
            Layer::AvgPool { dims, options: o }
        };
        self.push(node, name, layer, &[&x], vec![])
    }

    /// GlobalAveragePool as an adaptive average pool to 1, GlobalMaxPool as a max pool whose
    /// window is the whole input.
    pub(super) fn global_pool(&mut self, node: &NodeProto) -> Result<()> {
        Attributes::new(node, &[])?;
        let x = self.tensor(node, 0)?;
        let shape = self.shape(&x)?;
        if !(3..=5).contains(&shape.len()) {
            return Err(node_error(node, format!("input of shape {shape:?}: expected (N, C, *)")));
        }
        let dims = shape.len() - 2;
        let layer = if node.op_type() == "GlobalMaxPool" {
            Layer::MaxPool { dims, options: MaxPoolOptions::new(Dims(shape[2..].to_vec())) }
        } else {
            Layer::AdaptiveAvgPool { dims, output_size: Dims::from(1) }
        };
        let name = self.layer_name(node, None);
        self.push(node, name, layer, &[&x], vec![])
    }

    /// Pad in mode "constant": pads as an input (opset 11 on) or attribute, the value as an
    /// input or attribute, `axes` (opset 18); the batch is never padded.
    pub(super) fn pad(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(node, &["mode", "pads", "value"])?;
        let mode = a.string("mode")?.unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(a.unsupported("mode", &format!("is {mode:?}; gconv pads with a constant")));
        }
        let x = self.tensor(node, 0)?;
        let rank = self.shape(&x)?.len();
        let ints = |i: usize, what: &str| -> Result<Option<Vec<i64>>> {
            match self.constant(node, i)? {
                None => Ok(None),
                Some((c, _)) => c
                    .ints()
                    .map(|v| Some(v.to_vec()))
                    .ok_or_else(|| node_error(node, format!("its {what} are not integers"))),
            }
        };
        let pads = match a.ints("pads")? {
            Some(p) => p,
            None => ints(1, "pads")?.ok_or_else(|| node_error(node, "has no pads"))?,
        };
        let value = match (a.float("value")?, self.constant(node, 2)?) {
            (Some(v), _) => v,
            (None, Some((c, _))) if c.len() == 1 => c.floats()[0],
            (None, Some((c, _))) => {
                return Err(node_error(node, format!("constant_value is {}", describe(&c))));
            }
            (None, None) => 0.0,
        };
        let axes: Vec<usize> = match ints(3, "axes")? {
            None => (0..rank).collect(),
            Some(axes) => axes
                .iter()
                .map(|&ax| {
                    let r = rank as i64;
                    let d = if ax < 0 { ax + r } else { ax };
                    usize::try_from(d).ok().filter(|&d| d < rank).ok_or_else(|| {
                        node_error(node, format!("axis {ax} is out of range for rank {rank}"))
                    })
                })
                .collect::<Result<_>>()?,
        };
        if pads.len() != 2 * axes.len() {
            return Err(node_error(
                node,
                format!("has {} pads for {} axes", pads.len(), axes.len()),
            ));
        }
        let mut full = vec![(0i64, 0i64); rank];
        for (k, &ax) in axes.iter().enumerate() {
            full[ax] = (pads[k], pads[k + axes.len()]);
        }
        if full[0] != (0, 0) {
            return Err(node_error(node, "pads the batch dimension; gconv pads samples"));
        }
        let first = full.iter().position(|&p| p != (0, 0)).unwrap_or(rank);
        let padding: Vec<i64> = full[first..].iter().rev().flat_map(|&(b, e)| [b, e]).collect();
        if padding.is_empty() {
            self.values.insert(node.output[0].clone(), super::fold::Value::Tensor(x));
            return Ok(());
        }
        let name = self.layer_name(node, None);
        self.push(node, name, Layer::Pad { padding, value }, &[&x], vec![])
    }
}
