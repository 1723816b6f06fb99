//! What the importer knows of each ONNX value: a tensor of the graph, a constant, or a vector
//! of dimensions that may hold the (symbolic) batch size; and the folding of the shape
//! computations exporters emit around a reshape (`Shape`, `Gather`, `Unsqueeze`, `Concat`,
//! `Constant`) and around a pad (`ConstantOfShape`, `Reshape`, `Slice`, `Transpose`, `Cast`
//! of constants).

use onnx_proto::{NodeProto, ValueInfoProto, tensor_shape_proto, type_proto};

use super::tensors::{Attributes, Constant, Values};
use crate::{Error, Result};

/// An ONNX value during import.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// A tensor the graph computes: the gconv value (node name, or the input).
    Tensor(String),
    /// A constant (an initializer, a `Constant` node's value, or a folded computation).
    Const(Constant),
    /// An integer vector (or, with `scalar`, one integer) computed from shapes.
    Dims { dims: Vec<Dim>, scalar: bool },
}

/// One integer of a shape computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dim {
    /// The batch size, whatever it will be.
    Batch,
    Fixed(i64),
}

/// The per-sample input shape: the file's (its first dimension the batch, symbolic or not),
/// with `given` in place of what the file leaves symbolic.
pub(super) fn input_shape(input: &ValueInfoProto, given: Option<&[usize]>) -> Result<Vec<usize>> {
    let dims: Vec<Option<usize>> = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(tensor_shape_proto::dimension::Value::DimValue(v)) => {
                            usize::try_from(v).ok().filter(|&v| v > 0)
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let per_sample = dims.get(1..).unwrap_or(&[]);
    match given {
        Some(g) => {
            let agrees = per_sample.is_empty()
                || (per_sample.len() == g.len()
                    && per_sample.iter().zip(g).all(|(f, g)| f.is_none_or(|f| f == *g)));
            if !agrees {
                return Err(Error::invalid(
                    "onnx",
                    format!(
                        "input {:?} has shape {} per sample in the file, not {g:?}",
                        input.name(),
                        show(per_sample)
                    ),
                ));
            }
            Ok(g.to_vec())
        }
        None => per_sample.iter().copied().collect::<Option<Vec<_>>>().filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::invalid(
                "onnx",
                format!(
                    "input {:?} has shape {} per sample in the file: give the sizes it leaves open \
                     (--input CxHxW)",
                    input.name(),
                    show(per_sample)
                ),
            )
        }),
    }
}

fn show(dims: &[Option<usize>]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |v| v.to_string())).collect();
    format!("[{}]", d.join(", "))
}

/// An error naming the node.
pub(super) fn node_error(node: &NodeProto, message: impl std::fmt::Display) -> Error {
    Error::invalid("onnx", format!("node {:?} ({}): {message}", node.name(), node.op_type()))
}

/// The integers of a value used as a shape computation's operand.
fn dims_of(node: &NodeProto, v: &Value) -> Result<(Vec<Dim>, bool)> {
    match v {
        Value::Dims { dims, scalar } => Ok((dims.clone(), *scalar)),
        Value::Const(c) => match c.ints() {
            Some(ints) if c.shape.len() <= 1 => {
                Ok((ints.iter().map(|&i| Dim::Fixed(i)).collect(), c.shape.is_empty()))
            }
            _ => Err(node_error(
                node,
                format!("expects integers, got a constant of shape {:?}", c.shape),
            )),
        },
        Value::Tensor(_) => Err(node_error(
            node,
            "computes on a tensor of the graph; gconv folds shape computations only",
        )),
    }
}

/// Folds a shape-computation node over known values: `Shape` of a graph tensor of shape
/// `shape` (batch first), `Gather`, `Unsqueeze`, `Concat` along axis 0, `Constant`; and on
/// constants `ConstantOfShape`, `Reshape`, `Transpose`, `Slice` and `Cast` (what PyTorch
/// emits to turn `F.pad`'s list into ONNX's pads).
pub(super) fn fold(
    node: &NodeProto,
    inputs: &[Value],
    shape_of: impl Fn(&str) -> Result<Vec<usize>>,
) -> Result<Value> {
    let op = node.op_type();
    match op {
        "Constant" => {
            let a = Attributes::new(
                node,
                &["value", "value_float", "value_floats", "value_int", "value_ints"],
            )?;
            if let Some(t) = a.tensor("value")? {
                return Ok(Value::Const(super::tensors::read_tensor(
                    t,
                    std::path::Path::new(node.name()),
                )?));
            }
            if let Some(v) = a.int("value_int")? {
                return Ok(Value::Const(Constant { shape: vec![], values: Values::Ints(vec![v]) }));
            }
            if let Some(v) = a.ints("value_ints")? {
                return Ok(Value::Const(Constant {
                    shape: vec![v.len()],
                    values: Values::Ints(v),
                }));
            }
            if let Some(v) = a.float("value_float")? {
                return Ok(Value::Const(Constant {
                    shape: vec![],
                    values: Values::Floats(vec![v]),
                }));
            }
            Err(a.unsupported("value", "is missing (gconv reads value, value_int(s), value_float)"))
        }
        "Shape" => {
            Attributes::new(node, &[])?;
            let Some(Value::Tensor(v)) = inputs.first() else {
                return Err(node_error(node, "expects a tensor of the graph"));
            };
            let shape = shape_of(v)?;
            let mut dims = vec![Dim::Batch];
            dims.extend(shape.iter().skip(1).map(|&d| Dim::Fixed(d as i64)));
            Ok(Value::Dims { dims, scalar: false })
        }
        "Gather" => {
            let a = Attributes::new(node, &["axis"])?;
            if a.int("axis")?.unwrap_or(0) != 0 {
                return Err(a.unsupported("axis", "is not 0 (gconv folds gathers of shapes only)"));
            }
            let [data, indices] = inputs else { return Err(node_error(node, "expects 2 inputs")) };
            let (data, _) = dims_of(node, data)?;
            let (indices, scalar) = dims_of(node, indices)?;
            let picked = indices
                .iter()
                .map(|i| match i {
                    Dim::Fixed(i) => {
                        let at = if *i < 0 { *i + data.len() as i64 } else { *i };
                        usize::try_from(at).ok().and_then(|at| data.get(at).copied()).ok_or_else(
                            || {
                                node_error(
                                    node,
                                    format!("index {i} is outside {} values", data.len()),
                                )
                            },
                        )
                    }
                    Dim::Batch => Err(node_error(node, "gathers at the batch size")),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Value::Dims { dims: picked, scalar })
        }
        "Unsqueeze" => {
            let a = Attributes::new(node, &["axes"])?;
            let axes = match (a.ints("axes")?, inputs.get(1)) {
                (Some(axes), _) => axes,
                (None, Some(v)) => dims_of(node, v)?
                    .0
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(i) => Ok(*i),
                        Dim::Batch => Err(node_error(node, "axes depend on the batch size")),
                    })
                    .collect::<Result<_>>()?,
                (None, None) => return Err(node_error(node, "has no axes")),
            };
            let (dims, scalar) =
                dims_of(node, inputs.first().ok_or_else(|| node_error(node, "has no input"))?)?;
            if !(scalar && axes == [0] || !scalar && axes.is_empty()) {
                return Err(a.unsupported(
                    "axes",
                    &format!("{axes:?} on a vector (gconv folds scalars into vectors)"),
                ));
            }
            Ok(Value::Dims { dims, scalar: false })
        }
        "Concat" => {
            let a = Attributes::new(node, &["axis"])?;
            if a.int("axis")?.unwrap_or(0) != 0 {
                return Err(a.unsupported("axis", "is not 0 for integer vectors"));
            }
            let mut dims = Vec::new();
            for v in inputs {
                let (d, scalar) = dims_of(node, v)?;
                if scalar {
                    return Err(node_error(node, "concatenates a scalar"));
                }
                dims.extend(d);
            }
            Ok(Value::Dims { dims, scalar: false })
        }
        "ConstantOfShape" => {
            let a = Attributes::new(node, &["value"])?;
            let shape = constant_of(node, inputs.first().ok_or_else(|| no_input(node))?)?;
            let shape = sizes(node, &shape)?;
            let n = shape.iter().product();
            let values = match a.tensor("value")? {
                None => Values::Floats(vec![0.0; n]),
                Some(t) => {
                    let c = super::tensors::read_tensor(t, std::path::Path::new(node.name()))?;
                    match c.values {
                        Values::Ints(v) if v.len() == 1 => Values::Ints(vec![v[0]; n]),
                        Values::Floats(v) if v.len() == 1 => Values::Floats(vec![v[0]; n]),
                        _ => return Err(a.unsupported("value", "does not hold one value")),
                    }
                }
            };
            Ok(Value::Const(Constant { shape, values }))
        }
        "Reshape" => {
            let a = Attributes::new(node, &["allowzero"])?;
            let [data, target] = inputs else { return Err(node_error(node, "expects 2 inputs")) };
            let data = constant_of(node, data)?;
            let target = constant_of(node, target)?;
            let target =
                target.ints().ok_or_else(|| node_error(node, "its shape is not integers"))?;
            let allow_zero = a.int("allowzero")?.unwrap_or(0) != 0;
            let mut shape = Vec::with_capacity(target.len());
            let mut unknown = None;
            for (i, &t) in target.iter().enumerate() {
                shape.push(match t {
                    -1 if unknown.is_none() => {
                        unknown = Some(i);
                        1
                    }
                    0 if !allow_zero => data.shape.get(i).copied().unwrap_or(0),
                    t => usize::try_from(t)
                        .map_err(|_| node_error(node, format!("shape {target:?}")))?,
                });
            }
            let known: usize = shape.iter().product();
            if let Some(i) = unknown {
                shape[i] = data.len().checked_div(known).unwrap_or(0);
            }
            if shape.iter().product::<usize>() != data.len() {
                return Err(node_error(
                    node,
                    format!("cannot reshape {} values to {target:?}", data.len()),
                ));
            }
            Ok(Value::Const(Constant { shape, values: data.values }))
        }
        "Transpose" => {
            let a = Attributes::new(node, &["perm"])?;
            let c = constant_of(node, inputs.first().ok_or_else(|| no_input(node))?)?;
            let rank = c.shape.len();
            let perm: Vec<usize> = match a.sizes("perm")? {
                Some(p) => p,
                None => (0..rank).rev().collect(),
            };
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..rank).collect::<Vec<_>>() {
                return Err(a.unsupported(
                    "perm",
                    &format!("{perm:?} is not a permutation of {rank} axes"),
                ));
            }
            let shape: Vec<usize> = perm.iter().map(|&p| c.shape[p]).collect();
            let from = strides(&c.shape);
            let order: Vec<usize> = (0..c.len())
                .map(|i| {
                    let mut rest = i;
                    let mut at = 0;
                    for d in (0..rank).rev() {
                        at += (rest % shape[d]) * from[perm[d]];
                        rest /= shape[d];
                    }
                    at
                })
                .collect();
            Ok(Value::Const(Constant { shape, values: pick(&c.values, &order) }))
        }
        "Slice" => slice(node, inputs),
        "Cast" => {
            let a = Attributes::new(node, &["saturate", "to"])?;
            let input = inputs.first().ok_or_else(|| no_input(node))?;
            let to = a.int("to")?.unwrap_or(0);
            let float = to == onnx_proto::tensor_proto::DataType::Float as i32 as i64
                || to == onnx_proto::tensor_proto::DataType::Double as i32 as i64;
            let int = to == onnx_proto::tensor_proto::DataType::Int64 as i32 as i64
                || to == onnx_proto::tensor_proto::DataType::Int32 as i32 as i64;
            match (input, float, int) {
                (Value::Dims { .. }, _, true) => Ok(input.clone()),
                (_, false, false) => Err(a.unsupported("to", &format!("is data type {to}"))),
                _ => {
                    let c = constant_of(node, input)?;
                    let values = if float {
                        Values::Floats(c.floats())
                    } else {
                        match c.values {
                            Values::Floats(v) => {
                                Values::Ints(v.iter().map(|&f| f as i64).collect())
                            }
                            ints => ints,
                        }
                    };
                    Ok(Value::Const(Constant { shape: c.shape, values }))
                }
            }
        }
        _ => Err(node_error(node, "is not a shape computation (internal)")),
    }
}

fn no_input(node: &NodeProto) -> Error {
    node_error(node, "has no input")
}

/// A folded value as a constant: a vector of dimensions must not hold the batch size.
fn constant_of(node: &NodeProto, v: &Value) -> Result<Constant> {
    match v {
        Value::Const(c) => Ok(c.clone()),
        Value::Dims { dims, scalar } => {
            let ints = dims
                .iter()
                .map(|d| match d {
                    Dim::Fixed(i) => Ok(*i),
                    Dim::Batch => Err(node_error(node, "computes on the batch size")),
                })
                .collect::<Result<Vec<_>>>()?;
            let shape = if *scalar { vec![] } else { vec![ints.len()] };
            Ok(Constant { shape, values: Values::Ints(ints) })
        }
        Value::Tensor(_) => Err(node_error(
            node,
            "computes on a tensor of the graph; gconv folds computations on constants only",
        )),
    }
}

/// A constant's integers as sizes.
fn sizes(node: &NodeProto, c: &Constant) -> Result<Vec<usize>> {
    let ints = c.ints().ok_or_else(|| node_error(node, "expects integers"))?;
    ints.iter()
        .map(|&i| usize::try_from(i).map_err(|_| node_error(node, format!("size {i} is negative"))))
        .collect()
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The values at `order`.
fn pick(values: &Values, order: &[usize]) -> Values {
    match values {
        Values::Ints(v) => Values::Ints(order.iter().map(|&i| v[i]).collect()),
        Values::Floats(v) => Values::Floats(order.iter().map(|&i| v[i]).collect()),
    }
}

/// Slice of a constant: starts, ends, axes and steps as inputs (opset 10 on) or attributes,
/// clamped as ONNX defines, negative steps walking backwards.
fn slice(node: &NodeProto, inputs: &[Value]) -> Result<Value> {
    let a = Attributes::new(node, &["axes", "ends", "starts"])?;
    let c = constant_of(node, inputs.first().ok_or_else(|| no_input(node))?)?;
    let rank = c.shape.len() as i64;
    let list = |i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
        if let Some(v) = a.ints(attr)? {
            return Ok(Some(v));
        }
        match inputs.get(i) {
            // An omitted optional input.
            None => Ok(None),
            Some(Value::Dims { dims, scalar: false }) if dims.is_empty() => Ok(None),
            Some(v) => {
                let k = constant_of(node, v)?;
                Ok(Some(k.ints().ok_or_else(|| node_error(node, "expects integers"))?.to_vec()))
            }
        }
    };
    let starts = list(1, "starts")?.ok_or_else(|| node_error(node, "has no starts"))?;
    let ends = list(2, "ends")?.ok_or_else(|| node_error(node, "has no ends"))?;
    let axes = list(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = list(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(node_error(node, "starts, ends, axes and steps differ in length"));
    }
    // Per axis: the indices kept.
    let mut kept: Vec<Vec<usize>> = c.shape.iter().map(|&n| (0..n).collect()).collect();
    for k in 0..starts.len() {
        let axis = if axes[k] < 0 { axes[k] + rank } else { axes[k] };
        let Some(n) = usize::try_from(axis).ok().and_then(|ax| c.shape.get(ax)) else {
            return Err(node_error(node, format!("axis {} is out of range", axes[k])));
        };
        let (n, step) = (*n as i64, steps[k]);
        if step == 0 {
            return Err(node_error(node, "has a step of 0"));
        }
        let at = |v: i64| if v < 0 { v + n } else { v };
        let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
        let (start, end) = (at(starts[k]).clamp(lo, hi), at(ends[k]).clamp(lo, hi));
        let mut idx = Vec::new();
        let mut i = start;
        while (step > 0 && i < end) || (step < 0 && i > end) {
            idx.push(i as usize);
            i += step;
        }
        kept[axis as usize] = idx;
    }
    let shape: Vec<usize> = kept.iter().map(Vec::len).collect();
    let from = strides(&c.shape);
    let total: usize = shape.iter().product();
    let order: Vec<usize> = (0..total)
        .map(|i| {
            let (mut rest, mut at) = (i, 0);
            for d in (0..shape.len()).rev() {
                at += kept[d][rest % shape[d]] * from[d];
                rest /= shape[d];
            }
            at
        })
        .collect();
    Ok(Value::Const(Constant { shape, values: pick(&c.values, &order) }))
}
