//! The golden runner: loads PyTorch golden cases (safetensors; format in goldens/README.md),
//! runs each on the GPU and on gconv-ref, and compares every expected tensor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use gconv::{Context, Tensor, ops};
use gconv_ref::Array;
use serde_json::Value;

use crate::compare::{relative_error, widen};

mod gpu;
mod reference;

pub use gpu::run_gpu;
pub use reference::run_ref;

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
