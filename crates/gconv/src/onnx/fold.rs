//! What the importer knows of each ONNX value: a tensor of the graph, a constant, or a vector
//! of dimensions that may hold the (symbolic) batch size; and the folding of the shape
//! computations exporters emit around a reshape (`Shape`, `Gather`, `Unsqueeze`, `Concat`,
//! `Constant`).

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
/// `shape` (batch first), `Gather`, `Unsqueeze`, `Concat` along axis 0, `Constant`.
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
        _ => Err(node_error(node, "is not a shape computation (internal)")),
    }
}
