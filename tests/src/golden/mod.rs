//! The golden runner: loads PyTorch golden cases (safetensors; format in goldens/README.md),
//! runs each on the GPU and on gconv-ref, and compares every expected tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use gconv::{Context, Tensor, ops};
use gconv_ref::Array;
use serde_json::Value;

use crate::compare::{relative_error, widen};

/// The goldens' tolerance on the relative L2 error.
pub const TOLERANCE: f64 = 1e-4;

/// One tensor of a case file.
#[derive(Clone, Debug)]
pub enum Data {
    /// float32 values.
    F32(Vec<f32>),
    /// int64 values (targets, indices).
    I64(Vec<i64>),
}

/// A golden case: operator, attributes and named tensors.
#[derive(Clone, Debug)]
pub struct Case {
    /// File stem.
    pub name: String,
    /// Operator name (`conv2d`, ...).
    pub op: String,
    /// Attributes, PyTorch's names.
    pub attrs: serde_json::Map<String, Value>,
    /// Tensors by name: (shape, data).
    pub tensors: Tensors,
}

/// Named tensors: (shape, data).
pub type Tensors = HashMap<String, (Vec<usize>, Data)>;

/// The tensors of a safetensors file (f32 and i64) and its metadata.
pub fn read_tensors(path: &Path) -> Result<(Tensors, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("{} is not a valid safetensors file: {e}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow!("{}: bad header: {e}", path.display()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data = match view.dtype() {
            safetensors::Dtype::F32 => Data::F32(
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ),
            safetensors::Dtype::I64 => Data::I64(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            other => bail!("tensor {name}: unsupported dtype {other:?}"),
        };
        tensors.insert(name, (view.shape().to_vec(), data));
    }
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

/// Loads one case file.
pub fn load_case(path: &Path) -> Result<Case> {
    let (tensors, meta) = read_tensors(path)?;
    let op = meta.get("op").ok_or_else(|| anyhow!("no `op` in the metadata"))?.clone();
    let attrs = match meta.get("attrs") {
        Some(a) => match serde_json::from_str(a).context("`attrs` is not JSON")? {
            Value::Object(m) => m,
            _ => bail!("`attrs` is not a JSON object"),
        },
        None => serde_json::Map::new(),
    };
    let name = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Ok(Case { name, op, attrs, tensors })
}

/// A computed result: values with a shape, or indices.
#[derive(Clone, Debug)]
pub enum Output {
    /// Floating-point values (compared with the relative L2 rule).
    Values(Vec<usize>, Vec<f64>),
    /// Integer indices (compared exactly).
    Indices(Vec<usize>, Vec<i64>),
}

/// What one case produced.
#[derive(Clone, Debug, Default)]
pub struct CaseReport {
    /// Every failure, one line each.
    pub failures: Vec<String>,
    /// Expected tensors compared (per engine).
    pub checked: usize,
}

impl Case {
    fn f32(&self, name: &str) -> Result<(&[usize], &[f32])> {
        match self.tensors.get(name) {
            Some((shape, Data::F32(v))) => Ok((shape, v)),
            Some(_) => bail!("tensor `{name}` must be float32"),
            None => bail!("missing tensor `{name}`"),
        }
    }

    fn opt_f32(&self, name: &str) -> Result<Option<(&[usize], &[f32])>> {
        if self.tensors.contains_key(name) { self.f32(name).map(Some) } else { Ok(None) }
    }

    fn i64(&self, name: &str) -> Result<(&[usize], &[i64])> {
        match self.tensors.get(name) {
            Some((shape, Data::I64(v))) => Ok((shape, v)),
            Some(_) => bail!("tensor `{name}` must be int64"),
            None => bail!("missing tensor `{name}`"),
        }
    }

    fn array(&self, name: &str) -> Result<Array> {
        let (s, v) = self.f32(name)?;
        Ok(Array::from_f32(s, v))
    }

    fn opt_array(&self, name: &str) -> Result<Option<Array>> {
        Ok(self.opt_f32(name)?.map(|(s, v)| Array::from_f32(s, v)))
    }

    fn gpu(&self, ctx: &Context, name: &str) -> Result<Tensor> {
        let (s, v) = self.f32(name)?;
        Ok(Tensor::from_slice(ctx, v, s)?)
    }

    fn opt_gpu(&self, ctx: &Context, name: &str) -> Result<Option<Tensor>> {
        if self.tensors.contains_key(name) { self.gpu(ctx, name).map(Some) } else { Ok(None) }
    }
}

/// Attribute access that rejects what it does not understand.
struct Attrs<'a> {
    map: &'a serde_json::Map<String, Value>,
    spatial: usize,
}

impl Attrs<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A per-dimension attribute (int or list), resolved to `spatial` values.
    fn dims(&self, key: &str, default: Option<usize>) -> Result<Vec<usize>> {
        let v = match self.get(key) {
            None => match default {
                Some(d) => return Ok(vec![d; self.spatial]),
                None => bail!("missing attribute `{key}`"),
            },
            Some(v) => v,
        };
        let list: Vec<usize> = match v {
            Value::Number(n) => {
                vec![n.as_u64().ok_or_else(|| anyhow!("`{key}` must be a non-negative integer"))?
                    as usize]
            }
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|u| u as usize)
                        .ok_or_else(|| anyhow!("`{key}` must hold non-negative integers"))
                })
                .collect::<Result<_>>()?,
            _ => bail!("attribute `{key}` must be an integer or a list of integers"),
        };
        match list.len() {
            1 => Ok(vec![list[0]; self.spatial]),
            n if n == self.spatial => Ok(list),
            n => bail!("attribute `{key}` has {n} values for {} spatial dimensions", self.spatial),
        }
    }

    fn int(&self, key: &str, default: i64) -> Result<i64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_i64().ok_or_else(|| anyhow!("attribute `{key}` must be an integer")),
        }
    }

    fn float(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| anyhow!("attribute `{key}` must be a number")),
        }
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| anyhow!("attribute `{key}` must be a boolean")),
        }
    }

    fn only(&self, known: &[&str]) -> Result<()> {
        for k in self.map.keys() {
            if !known.contains(&k.as_str()) {
                bail!("unsupported attribute `{k}`");
            }
        }
        Ok(())
    }
}

fn spatial_rank(op: &str) -> usize {
    match op.chars().rev().nth(1) {
        Some('1') => 1,
        Some('3') => 3,
        _ => 2,
    }
}

fn values(t: &Tensor) -> Result<Output> {
    Ok(Output::Values(t.shape().to_vec(), widen(&t.to_vec()?)))
}

fn indices(t: &Tensor) -> Result<Output> {
    Ok(Output::Indices(t.shape().to_vec(), t.to_vec_i32()?.into_iter().map(i64::from).collect()))
}

fn arr(a: Array) -> Output {
    Output::Values(a.shape, a.data)
}

type Outputs = BTreeMap<&'static str, Output>;

/// Runs `case` with gconv's GPU operators: the forward results and, when the case holds
/// `grad_y`, the gradients.
pub fn run_gpu(ctx: &Context, case: &Case) -> Result<Outputs> {
    let op = case.op.as_str();
    let a = Attrs { map: &case.attrs, spatial: spatial_rank(op) };
    let sd = a.spatial - 1;
    let gy = case.opt_gpu(ctx, "grad_y")?;
    let mut out = Outputs::new();
    match op {
        "conv1d" | "conv2d" | "conv3d" => {
            a.only(&["stride", "padding", "dilation", "groups"])?;
            let padding = match a.get("padding") {
                Some(Value::String(s)) if s == "same" => ops::Padding::Same,
                Some(Value::String(s)) if s == "valid" => ops::Padding::Valid,
                Some(Value::String(s)) => bail!("unsupported padding {s:?}"),
                _ => ops::Padding::Explicit(a.dims("padding", Some(0))?.into()),
            };
            let o = ops::ConvOptions {
                stride: a.dims("stride", Some(1))?.into(),
                padding,
                dilation: a.dims("dilation", Some(1))?.into(),
                groups: a.int("groups", 1)? as usize,
            };
            let (x, w, b) =
                (case.gpu(ctx, "x")?, case.gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            out.insert(
                "y",
                values(&[ops::conv1d, ops::conv2d, ops::conv3d][sd](&x, &w, b.as_ref(), &o)?)?,
            );
            if let Some(gy) = &gy {
                let f = [ops::conv1d_backward, ops::conv2d_backward, ops::conv3d_backward][sd];
                insert_conv_grads(&mut out, f(gy, &x, &w, b.is_some(), &o)?)?;
            }
        }
        "conv_transpose1d" | "conv_transpose2d" | "conv_transpose3d" => {
            a.only(&["stride", "padding", "output_padding", "dilation", "groups"])?;
            let o = ops::ConvTransposeOptions {
                stride: a.dims("stride", Some(1))?.into(),
                padding: a.dims("padding", Some(0))?.into(),
                output_padding: a.dims("output_padding", Some(0))?.into(),
                dilation: a.dims("dilation", Some(1))?.into(),
                groups: a.int("groups", 1)? as usize,
            };
            let (x, w, b) =
                (case.gpu(ctx, "x")?, case.gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            let f = [ops::conv_transpose1d, ops::conv_transpose2d, ops::conv_transpose3d][sd];
            out.insert("y", values(&f(&x, &w, b.as_ref(), &o)?)?);
            if let Some(gy) = &gy {
                let f = [
                    ops::conv_transpose1d_backward,
                    ops::conv_transpose2d_backward,
                    ops::conv_transpose3d_backward,
                ][sd];
                insert_conv_grads(&mut out, f(gy, &x, &w, b.is_some(), &o)?)?;
            }
        }
        "max_pool1d" | "max_pool2d" | "max_pool3d" => {
            a.only(&[
                "kernel_size",
                "stride",
                "padding",
                "dilation",
                "ceil_mode",
                "return_indices",
            ])?;
            let k = a.dims("kernel_size", None)?;
            let o = ops::MaxPoolOptions {
                stride: Some(a.dims("stride", None).unwrap_or_else(|_| k.clone()).into()),
                kernel_size: k.into(),
                padding: a.dims("padding", Some(0))?.into(),
                dilation: a.dims("dilation", Some(1))?.into(),
                ceil_mode: a.boolean("ceil_mode", false)?,
            };
            let x = case.gpu(ctx, "x")?;
            let f = [
                ops::max_pool1d_with_indices,
                ops::max_pool2d_with_indices,
                ops::max_pool3d_with_indices,
            ][sd];
            let (y, i) = f(&x, &o)?;
            out.insert("y", values(&y)?);
            out.insert("indices", indices(&i)?);
            if let Some(gy) = &gy {
                let f =
                    [ops::max_pool1d_backward, ops::max_pool2d_backward, ops::max_pool3d_backward]
                        [sd];
                out.insert("grad_x", values(&f(gy, &x, &i, &o)?)?);
            }
        }
        "avg_pool1d" | "avg_pool2d" | "avg_pool3d" => {
            a.only(&[
                "kernel_size",
                "stride",
                "padding",
                "ceil_mode",
                "count_include_pad",
                "divisor_override",
            ])?;
            let k = a.dims("kernel_size", None)?;
            let o = ops::AvgPoolOptions {
                stride: Some(a.dims("stride", None).unwrap_or_else(|_| k.clone()).into()),
                kernel_size: k.into(),
                padding: a.dims("padding", Some(0))?.into(),
                ceil_mode: a.boolean("ceil_mode", false)?,
                count_include_pad: a.boolean("count_include_pad", true)?,
                divisor_override: divisor_override(&a)?,
            };
            let x = case.gpu(ctx, "x")?;
            out.insert(
                "y",
                values(&[ops::avg_pool1d, ops::avg_pool2d, ops::avg_pool3d][sd](&x, &o)?)?,
            );
            if let Some(gy) = &gy {
                let f =
                    [ops::avg_pool1d_backward, ops::avg_pool2d_backward, ops::avg_pool3d_backward]
                        [sd];
                out.insert("grad_x", values(&f(gy, &x, &o)?)?);
            }
        }
        "adaptive_avg_pool1d" | "adaptive_avg_pool2d" | "adaptive_avg_pool3d" => {
            a.only(&["output_size"])?;
            let x = case.gpu(ctx, "x")?;
            let size = adaptive_size(&a, x.shape())?;
            let f =
                [ops::adaptive_avg_pool1d, ops::adaptive_avg_pool2d, ops::adaptive_avg_pool3d][sd];
            out.insert("y", values(&f(&x, size)?)?);
            if let Some(gy) = &gy {
                let f = [
                    ops::adaptive_avg_pool1d_backward,
                    ops::adaptive_avg_pool2d_backward,
                    ops::adaptive_avg_pool3d_backward,
                ][sd];
                out.insert("grad_x", values(&f(gy, &x)?)?);
            }
        }
        "adaptive_max_pool1d" | "adaptive_max_pool2d" | "adaptive_max_pool3d" => {
            a.only(&["output_size", "return_indices"])?;
            let x = case.gpu(ctx, "x")?;
            let size = adaptive_size(&a, x.shape())?;
            let f = [
                ops::adaptive_max_pool1d_with_indices,
                ops::adaptive_max_pool2d_with_indices,
                ops::adaptive_max_pool3d_with_indices,
            ][sd];
            let (y, i) = f(&x, size)?;
            out.insert("y", values(&y)?);
            out.insert("indices", indices(&i)?);
            if let Some(gy) = &gy {
                let f = [
                    ops::adaptive_max_pool1d_backward,
                    ops::adaptive_max_pool2d_backward,
                    ops::adaptive_max_pool3d_backward,
                ][sd];
                out.insert("grad_x", values(&f(gy, &x, &i)?)?);
            }
        }
        "linear" => {
            a.only(&[])?;
            let (x, w, b) =
                (case.gpu(ctx, "x")?, case.gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            out.insert("y", values(&ops::linear(&x, &w, b.as_ref())?)?);
            if let Some(gy) = &gy {
                let g = ops::linear_backward(gy, &x, &w, b.is_some())?;
                insert_conv_grads(
                    &mut out,
                    ops::ConvGrads {
                        grad_input: g.grad_input,
                        grad_weight: g.grad_weight,
                        grad_bias: g.grad_bias,
                    },
                )?;
            }
        }
        "matmul" => {
            a.only(&[])?;
            let (ma, mb) = (case.gpu(ctx, "a")?, case.gpu(ctx, "b")?);
            out.insert("y", values(&ops::matmul(&ma, &mb)?)?);
            if let Some(gy) = &gy {
                let (ga, gb) = ops::matmul_backward(gy, &ma, &mb)?;
                out.insert("grad_a", values(&ga)?);
                out.insert("grad_b", values(&gb)?);
            }
        }
        "relu" => {
            a.only(&[])?;
            let x = case.gpu(ctx, "x")?;
            out.insert("y", values(&ops::relu(&x)?)?);
            if let Some(gy) = &gy {
                out.insert("grad_x", values(&ops::relu_backward(gy, &x)?)?);
            }
        }
        "softmax" | "log_softmax" => {
            a.only(&["dim"])?;
            let dim = a.int("dim", -1)? as isize;
            let x = case.gpu(ctx, "x")?;
            let soft = op == "softmax";
            let y = if soft { ops::softmax(&x, dim)? } else { ops::log_softmax(&x, dim)? };
            out.insert("y", values(&y)?);
            if let Some(gy) = &gy {
                let gx = if soft {
                    ops::softmax_backward(gy, &y, dim)?
                } else {
                    ops::log_softmax_backward(gy, &y, dim)?
                };
                out.insert("grad_x", values(&gx)?);
            }
        }
        "cross_entropy" => {
            let (reduction, ignore_index) = cross_entropy_attrs(&a)?;
            let (ts, t) = case.i64("target")?;
            let t32: Vec<i32> = t.iter().map(|&v| i32::try_from(v)).collect::<Result<_, _>>()?;
            let target = Tensor::from_slice_i32(ctx, &t32, ts)?;
            let o = ops::CrossEntropyOptions { reduction, ignore_index: ignore_index as i32 };
            let x = case.gpu(ctx, "x")?;
            out.insert("y", values(&ops::cross_entropy(&x, &target, &o)?)?);
            if let Some(gy) = &gy {
                out.insert("grad_x", values(&ops::cross_entropy_backward(gy, &x, &target, &o)?)?);
            }
        }
        "batch_norm" => {
            a.only(&["training", "eps", "momentum"])?;
            let o = ops::BatchNormOptions {
                training: a.boolean("training", false)?,
                momentum: a.float("momentum", 0.1)?,
                eps: a.float("eps", 1e-5)?,
            };
            let x = case.gpu(ctx, "x")?;
            let rm = case.opt_gpu(ctx, "running_mean")?;
            let rv = case.opt_gpu(ctx, "running_var")?;
            let (w, b) = (case.opt_gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            let (y, stats) = ops::batch_norm_with_stats(
                &x,
                rm.as_ref(),
                rv.as_ref(),
                w.as_ref(),
                b.as_ref(),
                &o,
            )?;
            out.insert("y", values(&y)?);
            if o.training
                && let (Some(rm), Some(rv)) = (rm, rv)
            {
                out.insert("new_running_mean", values(&rm)?);
                out.insert("new_running_var", values(&rv)?);
            }
            if let Some(gy) = &gy {
                let g = ops::batch_norm_backward(gy, &x, &stats, w.as_ref(), b.is_some(), &o)?;
                out.insert("grad_x", values(&g.grad_input)?);
                if let Some(gw) = &g.grad_weight {
                    out.insert("grad_weight", values(gw)?);
                }
                if let Some(gb) = &g.grad_bias {
                    out.insert("grad_bias", values(gb)?);
                }
            }
        }
        other => bail!("unsupported op `{other}`"),
    }
    Ok(out)
}

fn insert_conv_grads(out: &mut Outputs, g: ops::ConvGrads) -> Result<()> {
    out.insert("grad_x", values(&g.grad_input)?);
    out.insert("grad_weight", values(&g.grad_weight)?);
    if let Some(gb) = &g.grad_bias {
        out.insert("grad_bias", values(gb)?);
    }
    Ok(())
}

fn divisor_override(a: &Attrs<'_>) -> Result<Option<usize>> {
    Ok(a.get("divisor_override")
        .map(|_| a.int("divisor_override", 0))
        .transpose()?
        .map(|v| v as usize))
}

fn adaptive_size(a: &Attrs<'_>, input_shape: &[usize]) -> Result<Vec<usize>> {
    // `None` entries keep the input's size, as PyTorch.
    let sd = a.spatial;
    let v = a.get("output_size").ok_or_else(|| anyhow!("missing attribute `output_size`"))?;
    let spatial_in = &input_shape[input_shape.len().saturating_sub(sd)..];
    match v {
        Value::Array(list) if list.len() == sd => list
            .iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::Null => Ok(spatial_in[i]),
                x => x.as_u64().map(|u| u as usize).ok_or_else(|| anyhow!("bad `output_size`")),
            })
            .collect(),
        _ => a.dims("output_size", None),
    }
}

fn cross_entropy_attrs(a: &Attrs<'_>) -> Result<(ops::Reduction, i64)> {
    a.only(&["reduction", "ignore_index", "label_smoothing"])?;
    if a.float("label_smoothing", 0.0)? != 0.0 {
        bail!("unsupported attribute `label_smoothing` != 0");
    }
    let reduction = match a.get("reduction").and_then(Value::as_str).unwrap_or("mean") {
        "mean" => ops::Reduction::Mean,
        "sum" => ops::Reduction::Sum,
        "none" => ops::Reduction::None,
        other => bail!("unsupported reduction {other:?}"),
    };
    Ok((reduction, a.int("ignore_index", -100)?))
}

/// Runs `case` with the CPU reference: forward results and, with `grad_y`, gradients.
pub fn run_ref(case: &Case) -> Result<Outputs> {
    let op = case.op.as_str();
    let a = Attrs { map: &case.attrs, spatial: spatial_rank(op) };
    let gy = case.opt_array("grad_y")?;
    let mut out = Outputs::new();
    match op {
        "conv1d" | "conv2d" | "conv3d" => {
            let (x, w, b) = (case.array("x")?, case.array("weight")?, case.opt_array("bias")?);
            let dilation = a.dims("dilation", Some(1))?;
            let spec = match a.get("padding") {
                Some(Value::String(s)) if s == "same" => gconv_ref::PaddingSpec::Same,
                Some(Value::String(s)) if s == "valid" => gconv_ref::PaddingSpec::Valid,
                _ => gconv_ref::PaddingSpec::Explicit(a.dims("padding", Some(0))?),
            };
            let attrs = gconv_ref::ConvAttrs {
                stride: a.dims("stride", Some(1))?,
                padding: gconv_ref::resolve_padding(&spec, &w.shape[2..], &dilation),
                dilation,
                groups: a.int("groups", 1)? as usize,
            };
            out.insert("y", arr(gconv_ref::conv_forward(&x, &w, b.as_ref(), &attrs)));
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::conv_backward(&x, &w, gy, &attrs);
                insert_ref_grads(&mut out, gx, gw, b.is_some().then_some(gb));
            }
        }
        "conv_transpose1d" | "conv_transpose2d" | "conv_transpose3d" => {
            let (x, w, b) = (case.array("x")?, case.array("weight")?, case.opt_array("bias")?);
            let attrs = gconv_ref::ConvTransposeAttrs {
                stride: a.dims("stride", Some(1))?,
                padding: a.dims("padding", Some(0))?,
                output_padding: a.dims("output_padding", Some(0))?,
                dilation: a.dims("dilation", Some(1))?,
                groups: a.int("groups", 1)? as usize,
            };
            out.insert("y", arr(gconv_ref::conv_transpose_forward(&x, &w, b.as_ref(), &attrs)));
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::conv_transpose_backward(&x, &w, gy, &attrs);
                insert_ref_grads(&mut out, gx, gw, b.is_some().then_some(gb));
            }
        }
        "max_pool1d" | "max_pool2d" | "max_pool3d" | "avg_pool1d" | "avg_pool2d" | "avg_pool3d" => {
            let k = a.dims("kernel_size", None)?;
            let attrs = gconv_ref::PoolAttrs {
                stride: a.dims("stride", None).unwrap_or_else(|_| k.clone()),
                kernel_size: k,
                padding: a.dims("padding", Some(0))?,
                dilation: a.dims("dilation", Some(1))?,
                ceil_mode: a.boolean("ceil_mode", false)?,
                count_include_pad: a.boolean("count_include_pad", true)?,
                divisor_override: divisor_override(&a)?,
            };
            let x = case.array("x")?;
            if op.starts_with("max") {
                let (y, i) = gconv_ref::max_pool_forward(&x, &attrs);
                if let Some(gy) = &gy {
                    out.insert("grad_x", arr(gconv_ref::max_pool_backward(&x, gy, &i, &attrs)));
                }
                out.insert("indices", Output::Indices(y.shape.clone(), i));
                out.insert("y", arr(y));
            } else {
                out.insert("y", arr(gconv_ref::avg_pool_forward(&x, &attrs)));
                if let Some(gy) = &gy {
                    out.insert("grad_x", arr(gconv_ref::avg_pool_backward(&x, gy, &attrs)));
                }
            }
        }
        "adaptive_avg_pool1d" | "adaptive_avg_pool2d" | "adaptive_avg_pool3d" => {
            let x = case.array("x")?;
            let size = adaptive_size(&a, &x.shape)?;
            out.insert("y", arr(gconv_ref::adaptive_avg_pool_forward(&x, &size)));
            if let Some(gy) = &gy {
                out.insert("grad_x", arr(gconv_ref::adaptive_avg_pool_backward(&x, gy)));
            }
        }
        "adaptive_max_pool1d" | "adaptive_max_pool2d" | "adaptive_max_pool3d" => {
            let x = case.array("x")?;
            let size = adaptive_size(&a, &x.shape)?;
            let (y, i) = gconv_ref::adaptive_max_pool_forward(&x, &size);
            if let Some(gy) = &gy {
                out.insert("grad_x", arr(gconv_ref::adaptive_max_pool_backward(&x, gy, &i)));
            }
            out.insert("indices", Output::Indices(y.shape.clone(), i));
            out.insert("y", arr(y));
        }
        "linear" => {
            let (x, w, b) = (case.array("x")?, case.array("weight")?, case.opt_array("bias")?);
            out.insert("y", arr(gconv_ref::linear(&x, &w, b.as_ref())));
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::linear_backward(&x, &w, gy);
                insert_ref_grads(&mut out, gx, gw, b.is_some().then_some(gb));
            }
        }
        "matmul" => {
            let (ma, mb) = (case.array("a")?, case.array("b")?);
            out.insert("y", arr(gconv_ref::matmul(&ma, &mb)));
            if let Some(gy) = &gy {
                let (ga, gb) = gconv_ref::matmul_backward(&ma, &mb, gy);
                out.insert("grad_a", arr(ga));
                out.insert("grad_b", arr(gb));
            }
        }
        "relu" => {
            let x = case.array("x")?;
            out.insert("y", arr(gconv_ref::relu(&x)));
            if let Some(gy) = &gy {
                out.insert("grad_x", arr(gconv_ref::relu_backward(&x, gy)));
            }
        }
        "softmax" | "log_softmax" => {
            let x = case.array("x")?;
            let dim = a.int("dim", -1)?;
            let dim = if dim < 0 { dim + x.shape.len() as i64 } else { dim } as usize;
            let soft = op == "softmax";
            let y =
                if soft { gconv_ref::softmax(&x, dim) } else { gconv_ref::log_softmax(&x, dim) };
            if let Some(gy) = &gy {
                let gx = if soft {
                    gconv_ref::softmax_backward(&y, gy, dim)
                } else {
                    gconv_ref::log_softmax_backward(&y, gy, dim)
                };
                out.insert("grad_x", arr(gx));
            }
            out.insert("y", arr(y));
        }
        "cross_entropy" => {
            let (reduction, ignore_index) = cross_entropy_attrs(&a)?;
            let (_, t) = case.i64("target")?;
            let x = case.array("x")?;
            let (losses, mean) = gconv_ref::cross_entropy(&x, t, ignore_index);
            let (y, name) = match reduction {
                ops::Reduction::Mean => (vec![mean], "mean"),
                ops::Reduction::Sum => (vec![losses.iter().sum()], "sum"),
                ops::Reduction::None => (losses, "none"),
            };
            out.insert("y", Output::Values(vec![y.len()], y));
            if let Some(gy) = &gy {
                out.insert(
                    "grad_x",
                    arr(gconv_ref::cross_entropy_backward(&x, t, ignore_index, &gy.data, name)),
                );
            }
        }
        "batch_norm" => {
            let training = a.boolean("training", false)?;
            let eps = a.float("eps", 1e-5)?;
            let vec_of =
                |n: &str| -> Result<Option<Vec<f64>>> { Ok(case.opt_array(n)?.map(|a| a.data)) };
            let (rm, rv) = (vec_of("running_mean")?, vec_of("running_var")?);
            let (w, b) = (vec_of("weight")?, vec_of("bias")?);
            let x = case.array("x")?;
            let r = gconv_ref::batch_norm_forward(
                &x,
                rm.as_deref(),
                rv.as_deref(),
                w.as_deref(),
                b.as_deref(),
                training,
                a.float("momentum", 0.1)?,
                eps,
            );
            out.insert("y", arr(r.y));
            if training && let (Some(m), Some(v)) = (r.running_mean, r.running_var) {
                out.insert("new_running_mean", Output::Values(vec![m.len()], m));
                out.insert("new_running_var", Output::Values(vec![v.len()], v));
            }
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::batch_norm_backward(
                    &x,
                    gy,
                    rm.as_deref(),
                    rv.as_deref(),
                    w.as_deref(),
                    training,
                    eps,
                );
                out.insert("grad_x", arr(gx));
                if w.is_some() {
                    out.insert("grad_weight", Output::Values(vec![gw.len()], gw));
                }
                if b.is_some() {
                    out.insert("grad_bias", Output::Values(vec![gb.len()], gb));
                }
            }
        }
        other => bail!("unsupported op `{other}`"),
    }
    Ok(out)
}

fn insert_ref_grads(out: &mut Outputs, gx: Array, gw: Array, gb: Option<Vec<f64>>) {
    out.insert("grad_x", arr(gx));
    out.insert("grad_weight", arr(gw));
    if let Some(gb) = gb {
        out.insert("grad_bias", Output::Values(vec![gb.len()], gb));
    }
}

/// Shapes agree when equal, or when both hold one element (PyTorch's scalar loss is stored as (1,)).
fn same_shape(a: &[usize], b: &[usize]) -> bool {
    a == b || (a.iter().product::<usize>() == 1 && b.iter().product::<usize>() == 1)
}

fn compare(
    engine: &str,
    name: &str,
    got: Option<&Output>,
    expected: &(Vec<usize>, Data),
) -> Option<String> {
    let (shape, data) = expected;
    match (got, data) {
        (None, _) => Some(format!("{engine}: produced no `{name}`")),
        (Some(Output::Values(s, v)), Data::F32(e)) => {
            if !same_shape(s, shape) {
                return Some(format!("{engine}: `{name}` has shape {s:?}, expected {shape:?}"));
            }
            let err = relative_error(v, &widen(e));
            (err > TOLERANCE || err.is_nan())
                .then(|| format!("{engine}: `{name}` relative error {err:.3e} > {TOLERANCE:e}"))
        }
        (Some(Output::Indices(s, v)), Data::I64(e)) => {
            if !same_shape(s, shape) {
                return Some(format!("{engine}: `{name}` has shape {s:?}, expected {shape:?}"));
            }
            let wrong = v.iter().zip(e).filter(|(a, b)| a != b).count();
            (wrong > 0)
                .then(|| format!("{engine}: `{name}`: {wrong} of {} indices differ", e.len()))
        }
        _ => Some(format!("{engine}: `{name}` has the wrong type")),
    }
}

/// The tensors a case may hold that the runner compares: forward results and gradients.
const EXPECTED: [&str; 9] = [
    "y",
    "indices",
    "new_running_mean",
    "new_running_var",
    "grad_x",
    "grad_weight",
    "grad_bias",
    "grad_a",
    "grad_b",
];

/// Runs one case on both engines and compares every expected tensor.
pub fn check_case(ctx: &Context, case: &Case) -> CaseReport {
    let mut report = CaseReport::default();
    for engine in ["gpu", "ref"] {
        let run = || if engine == "gpu" { run_gpu(ctx, case) } else { run_ref(case) };
        // A malformed case must not take the runner down with it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
            .unwrap_or_else(|_| Err(anyhow!("panicked")));
        match result {
            Err(e) => report.failures.push(format!("{engine}: {e:#}")),
            Ok(outputs) => {
                for name in EXPECTED {
                    if let Some(expected) = case.tensors.get(name) {
                        report.checked += 1;
                        report.failures.extend(compare(engine, name, outputs.get(name), expected));
                    }
                }
            }
        }
    }
    // A gradient this runner does not know fails the case: nothing expected goes unchecked.
    let mut unknown: Vec<&String> = case
        .tensors
        .keys()
        .filter(|k| k.starts_with("grad_") && *k != "grad_y" && !EXPECTED.contains(&k.as_str()))
        .collect();
    unknown.sort();
    for k in unknown {
        report.failures.push(format!("unsupported expected tensor `{k}`"));
    }
    report
}

/// The case files of a directory, sorted.
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read golden directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.safetensors cases in {}", dir.display());
    }
    Ok(files)
}

/// Totals of a run over a directory.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Cases whose every tensor matched on both engines.
    pub passed: usize,
    /// Each failing case with its failures.
    pub failed: Vec<(String, Vec<String>)>,
    /// Expected tensors compared, over both engines.
    pub tensors_checked: usize,
}

/// Runs every case of `dir`.
pub fn run_dir(ctx: &Context, dir: &Path) -> Result<Summary> {
    let mut s = Summary::default();
    for path in case_files(dir)? {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        match load_case(&path) {
            Err(e) => s.failed.push((name, vec![format!("{e:#}")])),
            Ok(case) => {
                let r = check_case(ctx, &case);
                s.tensors_checked += r.checked;
                if r.failures.is_empty() {
                    s.passed += 1;
                } else {
                    s.failed.push((format!("{} ({})", case.name, case.op), r.failures));
                }
            }
        }
    }
    Ok(s)
}

/// The project's own copy of the PyTorch goldens.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens")
}
