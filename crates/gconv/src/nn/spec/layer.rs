//! One layer of a spec: its name and arguments read as PyTorch's (the table in `mod.rs`).

use super::syntax::{Item, Span, error_at};
use crate::nn::layer::Layer;
use crate::ops::{
    AvgPoolOptions, ConvOptions, ConvTransposeOptions, Dims, MaxPoolOptions, Padding,
};
use crate::{Error, Result};

/// Reads one item's arguments by name, with positional ones in a fixed order.
struct Args<'s, 'a> {
    spec: &'s str,
    item: &'s Item<'a>,
    /// (canonical name, short name, value), filled from positional and named arguments.
    values: Vec<(&'static str, Option<Span<'a>>)>,
}

impl<'s, 'a> Args<'s, 'a> {
    /// `params`: (name, short name) in positional order.
    fn new(
        spec: &'s str,
        item: &'s Item<'a>,
        params: &[(&'static str, &'static str)],
    ) -> Result<Self> {
        if item.positional.len() > params.len() {
            let extra = &item.positional[params.len()];
            return Err(error_at(
                spec,
                extra.start,
                extra.text.len(),
                match params.len() {
                    0 => format!("{} takes no arguments", item.name.text),
                    n => format!("{} takes at most {n} positional arguments", item.name.text),
                },
            ));
        }
        let mut values: Vec<(&'static str, Option<Span<'a>>)> =
            params.iter().map(|p| (p.0, None)).collect();
        for (slot, arg) in values.iter_mut().zip(&item.positional) {
            slot.1 = Some(arg.clone());
        }
        for (key, value) in &item.named {
            let k = key.text.to_ascii_lowercase();
            let Some(index) = params.iter().position(|p| p.0 == k || p.1 == k) else {
                let names: Vec<_> = params.iter().map(|p| p.0).collect();
                return Err(error_at(
                    spec,
                    key.start,
                    key.text.len(),
                    format!(
                        "{} has no argument {:?}; it takes {}",
                        item.name.text,
                        key.text,
                        names.join(", ")
                    ),
                ));
            };
            if values[index].1.is_some() {
                return Err(error_at(
                    spec,
                    key.start,
                    key.text.len(),
                    format!("{} is given twice", params[index].0),
                ));
            }
            values[index].1 = Some(value.clone());
        }
        Ok(Args { spec, item, values })
    }

    fn get(&self, name: &str) -> Option<&Span<'a>> {
        self.values.iter().find(|v| v.0 == name).and_then(|v| v.1.as_ref())
    }

    fn bad(&self, span: &Span<'_>, what: &str) -> Error {
        error_at(self.spec, span.start, span.text.len(), format!("{:?} is not {what}", span.text))
    }

    fn missing(&self, name: &str) -> Error {
        error_at(
            self.spec,
            self.item.whole.start,
            self.item.whole.text.len(),
            format!("{} needs {name}", self.item.name.text),
        )
    }

    fn required(&self, name: &str) -> Result<&Span<'a>> {
        self.get(name).ok_or_else(|| self.missing(name))
    }

    fn usize_of(&self, span: &Span<'_>) -> Result<usize> {
        span.text.parse().map_err(|_| self.bad(span, "a whole number"))
    }

    fn count(&self, name: &str) -> Result<Option<usize>> {
        self.get(name).map(|s| self.usize_of(s)).transpose()
    }

    fn dims_of(&self, span: &Span<'_>) -> Result<Dims> {
        let parts = span.text.split('x').map(|part| part.trim().parse::<usize>());
        parts
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Dims)
            .map_err(|_| self.bad(span, "a size like 3 or 3x5"))
    }

    fn dims(&self, name: &str) -> Result<Option<Dims>> {
        self.get(name).map(|s| self.dims_of(s)).transpose()
    }

    fn dims_required(&self, name: &str) -> Result<Dims> {
        self.dims_of(self.required(name)?)
    }

    fn float(&self, name: &str) -> Result<Option<f64>> {
        let Some(span) = self.get(name) else { return Ok(None) };
        span.text.parse().map(Some).map_err(|_| self.bad(span, "a number"))
    }

    fn flag(&self, name: &str) -> Result<Option<bool>> {
        let Some(span) = self.get(name) else { return Ok(None) };
        match span.text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(self.bad(span, "true or false")),
        }
    }
}

/// The dimensionality a layer name states (`conv2d`: 2), or the input's.
fn dims_of(name: &str, base: &str, input_rank: usize) -> Option<usize> {
    let rest = name.strip_prefix(base)?;
    match rest {
        "" => Some(input_rank.saturating_sub(2).clamp(1, 3)),
        "1d" => Some(1),
        "2d" => Some(2),
        "3d" => Some(3),
        _ => None,
    }
}

/// The layer an item describes, given the shape it receives (batch first).
pub(super) fn layer(spec: &str, item: &Item<'_>, input: &[usize]) -> Result<Layer> {
    let name = item.name.text.to_ascii_lowercase();
    let rank = input.len();
    let conv_dims = dims_of(&name, "conv", rank);
    let convt_dims = dims_of(&name, "convtranspose", rank)
        .or_else(|| dims_of(&name, "convt", rank))
        .or_else(|| dims_of(&name, "deconv", rank));
    let max_dims = dims_of(&name, "maxpool", rank);
    let avg_dims = dims_of(&name, "avgpool", rank);
    let adaptive_dims = dims_of(&name, "adaptiveavgpool", rank);
    let bn_dims = dims_of(&name, "batchnorm", rank);
    if let Some(dims) = conv_dims {
        let a = Args::new(
            spec,
            item,
            &[
                ("in_channels", "in"),
                ("out_channels", "out"),
                ("kernel_size", "k"),
                ("stride", "s"),
                ("padding", "p"),
                ("dilation", "d"),
                ("groups", "g"),
                ("bias", "bias"),
            ],
        )?;
        let padding = match a.get("padding").map(|p| p.text.to_ascii_lowercase()) {
            Some(p) if p == "same" => Padding::Same,
            Some(p) if p == "valid" => Padding::Valid,
            _ => Padding::Explicit(a.dims("padding")?.unwrap_or(Dims::from(0))),
        };
        let options = ConvOptions {
            stride: a.dims("stride")?.unwrap_or(Dims::from(1)),
            padding,
            dilation: a.dims("dilation")?.unwrap_or(Dims::from(1)),
            groups: a.count("groups")?.unwrap_or(1),
        };
        return Ok(Layer::Conv {
            dims,
            in_channels: a.usize_of(a.required("in_channels")?)?,
            out_channels: a.usize_of(a.required("out_channels")?)?,
            kernel_size: a.dims_required("kernel_size")?,
            options,
            bias: a.flag("bias")?.unwrap_or(true),
        });
    }
    if let Some(dims) = convt_dims {
        let a = Args::new(
            spec,
            item,
            &[
                ("in_channels", "in"),
                ("out_channels", "out"),
                ("kernel_size", "k"),
                ("stride", "s"),
                ("padding", "p"),
                ("output_padding", "op"),
                ("groups", "g"),
                ("bias", "bias"),
                ("dilation", "d"),
            ],
        )?;
        let options = ConvTransposeOptions {
            stride: a.dims("stride")?.unwrap_or(Dims::from(1)),
            padding: a.dims("padding")?.unwrap_or(Dims::from(0)),
            output_padding: a.dims("output_padding")?.unwrap_or(Dims::from(0)),
            dilation: a.dims("dilation")?.unwrap_or(Dims::from(1)),
            groups: a.count("groups")?.unwrap_or(1),
        };
        return Ok(Layer::ConvTranspose {
            dims,
            in_channels: a.usize_of(a.required("in_channels")?)?,
            out_channels: a.usize_of(a.required("out_channels")?)?,
            kernel_size: a.dims_required("kernel_size")?,
            options,
            bias: a.flag("bias")?.unwrap_or(true),
        });
    }
    if let Some(dims) = max_dims {
        let a = Args::new(
            spec,
            item,
            &[
                ("kernel_size", "k"),
                ("stride", "s"),
                ("padding", "p"),
                ("dilation", "d"),
                ("ceil_mode", "ceil"),
            ],
        )?;
        let mut o = MaxPoolOptions::new(a.dims_required("kernel_size")?);
        o.stride = a.dims("stride")?;
        o.padding = a.dims("padding")?.unwrap_or(Dims::from(0));
        o.dilation = a.dims("dilation")?.unwrap_or(Dims::from(1));
        o.ceil_mode = a.flag("ceil_mode")?.unwrap_or(false);
        return Ok(Layer::MaxPool { dims, options: o });
    }
    if let Some(dims) = avg_dims {
        let a = Args::new(
            spec,
            item,
            &[
                ("kernel_size", "k"),
                ("stride", "s"),
                ("padding", "p"),
                ("ceil_mode", "ceil"),
                ("count_include_pad", "cip"),
            ],
        )?;
        let mut o = AvgPoolOptions::new(a.dims_required("kernel_size")?);
        o.stride = a.dims("stride")?;
        o.padding = a.dims("padding")?.unwrap_or(Dims::from(0));
        o.ceil_mode = a.flag("ceil_mode")?.unwrap_or(false);
        o.count_include_pad = a.flag("count_include_pad")?.unwrap_or(true);
        return Ok(Layer::AvgPool { dims, options: o });
    }
    if let Some(dims) =
        adaptive_dims.or_else(|| (name == "gap").then_some(rank.saturating_sub(2).clamp(1, 3)))
    {
        let a = Args::new(spec, item, &[("output_size", "size")])?;
        return Ok(Layer::AdaptiveAvgPool {
            dims,
            output_size: a.dims("output_size")?.unwrap_or(Dims::from(1)),
        });
    }
    if let Some(dims) =
        bn_dims.or_else(|| (name == "bn").then_some(rank.saturating_sub(2).clamp(1, 3)))
    {
        let a = Args::new(
            spec,
            item,
            &[("num_features", "c"), ("eps", "eps"), ("momentum", "momentum")],
        )?;
        return Ok(Layer::BatchNorm {
            dims,
            num_features: a.count("num_features")?.unwrap_or(input.get(1).copied().unwrap_or(0)),
            eps: a.float("eps")?.unwrap_or(1e-5),
            momentum: a.float("momentum")?.unwrap_or(0.1),
        });
    }
    match name.as_str() {
        "linear" | "fc" => {
            let a = Args::new(
                spec,
                item,
                &[("in_features", "in"), ("out_features", "out"), ("bias", "bias")],
            )?;
            // linear(10): the output size alone, the input's from the shape (LazyLinear).
            let (mut in_features, mut out_features) =
                (a.count("in_features")?, a.count("out_features")?);
            if out_features.is_none() && item.positional.len() == 1 {
                out_features = in_features.take();
            }
            let out_features = out_features.ok_or_else(|| a.missing("out_features"))?;
            let in_features = in_features.unwrap_or(input.last().copied().unwrap_or(0));
            Ok(Layer::Linear { in_features, out_features, bias: a.flag("bias")?.unwrap_or(true) })
        }
        "relu" | "relu6" | "sigmoid" | "flatten" => {
            Args::new(spec, item, &[])?;
            Ok(match name.as_str() {
                "relu" => Layer::Relu,
                "relu6" => Layer::Relu6,
                "sigmoid" => Layer::Sigmoid,
                _ => Layer::Flatten,
            })
        }
        "leakyrelu" => {
            let a = Args::new(spec, item, &[("negative_slope", "slope")])?;
            let negative_slope = a.float("negative_slope")?.unwrap_or(0.01) as f32;
            Ok(Layer::LeakyRelu { negative_slope })
        }
        "hardtanh" => {
            let a = Args::new(spec, item, &[("min_val", "min"), ("max_val", "max")])?;
            let min_val = a.float("min_val")?.unwrap_or(-1.0) as f32;
            let max_val = a.float("max_val")?.unwrap_or(1.0) as f32;
            Ok(Layer::Hardtanh { min_val, max_val })
        }
        "scale" => {
            let a = Args::new(spec, item, &[("factor", "factor")])?;
            let span = a.required("factor")?;
            let factor = a.float("factor")?.unwrap_or(1.0) as f32;
            if !factor.is_finite() {
                return Err(a.bad(span, "a finite number"));
            }
            Ok(Layer::Scale { factor })
        }
        "softmax" => {
            let a = Args::new(spec, item, &[("dim", "dim")])?;
            let dim = match a.get("dim") {
                Some(span) => span.text.parse().map_err(|_| a.bad(span, "a whole number"))?,
                None => 1,
            };
            Ok(Layer::Softmax { dim })
        }
        "pad" => {
            // pad(1): every spatial side; pad(p=1x1x2x2): (left, right, top, bottom), as
            // ZeroPad2d's padding.
            let a = Args::new(spec, item, &[("padding", "p"), ("value", "value")])?;
            let given = a.dims_required("padding")?.0;
            let spatial = rank.saturating_sub(2).max(1);
            let padding: Vec<i64> = match given[..] {
                [one] => vec![one as i64; 2 * spatial],
                _ => given.iter().map(|&v| v as i64).collect(),
            };
            let value = a.float("value")?.unwrap_or(0.0) as f32;
            Ok(Layer::Pad { padding, value })
        }
        "dropout" => {
            let a = Args::new(spec, item, &[("p", "p")])?;
            let p = a.float("p")?.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&p) {
                return Err(a.bad(a.required("p")?, "a probability between 0 and 1"));
            }
            Ok(Layer::Dropout { p: p as f32 })
        }
        _ => Err(error_at(
            spec,
            item.name.start,
            item.name.text.len(),
            format!(
                "unknown layer {:?}; known: conv, convt, linear, relu, relu6, leakyrelu, \
                 sigmoid, hardtanh, scale, softmax, pad, maxpool, avgpool, adaptiveavgpool, \
                 batchnorm, dropout, flatten, and the blocks res(...) and cat(... | ...)",
                item.name.text
            ),
        )),
    }
}
