//! ONNX tensors and attributes as the importer reads them: initializers and constants as f32
//! or i64 values (raw little-endian data, typed fields or an external data file), and a node's
//! attributes by name with the checks every converter needs.

use std::collections::HashMap;
use std::path::Path;

use onnx_proto::{AttributeProto, NodeProto, TensorProto, attribute_proto, tensor_proto};

use crate::{Error, Result};

/// A constant: its shape and values (integers kept exact for shape computations).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Constant {
    pub shape: Vec<usize>,
    pub values: Values,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Values {
    Floats(Vec<f32>),
    Ints(Vec<i64>),
}

impl Constant {
    /// The values as f32 (integers converted).
    pub fn floats(&self) -> Vec<f32> {
        match &self.values {
            Values::Floats(v) => v.clone(),
            Values::Ints(v) => v.iter().map(|&i| i as f32).collect(),
        }
    }

    /// The values as integers, or `None` for a float tensor.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            Values::Ints(v) => Some(v),
            Values::Floats(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        match &self.values {
            Values::Floats(v) => v.len(),
            Values::Ints(v) => v.len(),
        }
    }
}

/// Reads tensor `t` of the model file `path` (external data relative to its directory).
pub(super) fn read_tensor(t: &TensorProto, path: &Path) -> Result<Constant> {
    let name = t.name();
    let bad = |message: String| Error::Format {
        path: path.display().to_string(),
        message: format!("tensor {name:?}: {message}"),
    };
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(usize::try_from(d).map_err(|_| bad(format!("dimension {d} is negative")))?);
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    let external;
    let raw: &[u8] = if t.data_location() == tensor_proto::DataLocation::External {
        external = read_external(t, path).map_err(bad)?;
        &external
    } else {
        t.raw_data()
    };
    let data_type = tensor_proto::DataType::try_from(t.data_type())
        .map_err(|_| bad(format!("unknown data type {}", t.data_type())))?;
    let values = match data_type {
        tensor_proto::DataType::Float if !raw.is_empty() || t.float_data.is_empty() => {
            Values::Floats(
                le_words(raw, count, 4, &bad)?
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
                    .collect(),
            )
        }
        tensor_proto::DataType::Float => Values::Floats(t.float_data.clone()),
        tensor_proto::DataType::Int64 if !raw.is_empty() || t.int64_data.is_empty() => {
            Values::Ints(
                le_words(raw, count, 8, &bad)?
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect(),
            )
        }
        tensor_proto::DataType::Int64 => Values::Ints(t.int64_data.clone()),
        tensor_proto::DataType::Int32 if raw.is_empty() => {
            Values::Ints(t.int32_data.iter().map(|&v| i64::from(v)).collect())
        }
        tensor_proto::DataType::Int32 => Values::Ints(
            le_words(raw, count, 4, &bad)?
                .map(|b| i64::from(i32::from_le_bytes(b.try_into().unwrap_or([0; 4]))))
                .collect(),
        ),
        other => {
            return Err(bad(format!(
                "data type {other:?} is not supported (gconv reads float, int64 and int32)"
            )));
        }
    };
    let c = Constant { shape, values };
    if c.len() != count {
        return Err(bad(format!("{} values for shape {:?}", c.len(), c.shape)));
    }
    Ok(c)
}

/// `count` little-endian words of `size` bytes from `raw`, which must hold exactly that many.
fn le_words<'a>(
    raw: &'a [u8],
    count: usize,
    size: usize,
    bad: &dyn Fn(String) -> Error,
) -> Result<std::slice::ChunksExact<'a, u8>> {
    if raw.len() != count * size {
        return Err(bad(format!("{} bytes of data for {count} values of {size} bytes", raw.len())));
    }
    Ok(raw.chunks_exact(size))
}

/// The bytes of an initializer stored in an external file (`location`, `offset`, `length`,
/// relative to the model's directory).
fn read_external(t: &TensorProto, path: &Path) -> std::result::Result<Vec<u8>, String> {
    let entry = |key: &str| t.external_data.iter().find(|e| e.key() == key).map(|e| e.value());
    let location = entry("location").ok_or("external data without a location")?;
    let number = |key: &str| -> std::result::Result<Option<u64>, String> {
        entry(key)
            .map(|v| v.parse().map_err(|_| format!("external data {key} {v:?} is not a number")))
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let file = path.parent().unwrap_or(Path::new(".")).join(location);
    let bytes = std::fs::read(&file).map_err(|e| {
        format!(
            "its weights are in the external data file {}, which cannot be read ({e})",
            file.display()
        )
    })?;
    let start = usize::try_from(offset).map_err(|_| "external data offset too large")?;
    let end = match length {
        Some(n) => {
            start.checked_add(usize::try_from(n).map_err(|_| "external data length too large")?)
        }
        None => Some(bytes.len()),
    };
    match end {
        Some(end) if start <= end && end <= bytes.len() => Ok(bytes[start..end].to_vec()),
        _ => Err(format!(
            "external data {}..{:?} lies outside {} ({} bytes)",
            offset,
            length,
            file.display(),
            bytes.len()
        )),
    }
}

/// A node's attributes by name.
pub(super) struct Attributes<'a> {
    node: &'a NodeProto,
    by_name: HashMap<&'a str, &'a AttributeProto>,
    /// The attributes the converter read (the others must be absent or at their defaults).
    known: &'static [&'static str],
}

impl<'a> Attributes<'a> {
    /// The node's attributes, refusing any not in `known` (the ones the converter handles).
    pub fn new(node: &'a NodeProto, known: &'static [&'static str]) -> Result<Attributes<'a>> {
        let by_name: HashMap<&str, &AttributeProto> =
            node.attribute.iter().map(|a| (a.name(), a)).collect();
        let a = Attributes { node, by_name, known };
        if let Some(name) = node.attribute.iter().map(|a| a.name()).find(|n| !known.contains(n)) {
            return Err(a.unsupported(name, "is not supported"));
        }
        Ok(a)
    }

    /// An error naming the node, its op type and the attribute.
    pub fn unsupported(&self, attribute: &str, why: &str) -> Error {
        Error::invalid(
            "onnx",
            format!(
                "node {:?} ({}): attribute {attribute} {why} (gconv reads {} for {})",
                self.node.name(),
                self.node.op_type(),
                if self.known.is_empty() { "none".to_string() } else { self.known.join(", ") },
                self.node.op_type()
            ),
        )
    }

    fn get(
        &self,
        name: &str,
        kind: attribute_proto::AttributeType,
    ) -> Result<Option<&'a AttributeProto>> {
        match self.by_name.get(name) {
            None => Ok(None),
            Some(a) if a.r#type() == kind => Ok(Some(a)),
            Some(a) => {
                Err(self.unsupported(name, &format!("is {:?}, expected {kind:?}", a.r#type())))
            }
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get(name, attribute_proto::AttributeType::Int)?.map(|a| a.i()))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>> {
        Ok(self.get(name, attribute_proto::AttributeType::Float)?.map(|a| a.f()))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.get(name, attribute_proto::AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .get(name, attribute_proto::AttributeType::String)?
            .map(|a| String::from_utf8_lossy(a.s()).into_owned()))
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self.get(name, attribute_proto::AttributeType::Tensor)?.and_then(|a| a.t.as_ref()))
    }

    /// Non-negative integers (sizes, strides, pads).
    pub fn sizes(&self, name: &str) -> Result<Option<Vec<usize>>> {
        match self.ints(name)? {
            None => Ok(None),
            Some(v) => v
                .iter()
                .map(|&i| {
                    usize::try_from(i)
                        .map_err(|_| self.unsupported(name, &format!("has a negative value {i}")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
        }
    }
}
