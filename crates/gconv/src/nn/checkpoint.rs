//! Checkpoints: safetensors files keyed by PyTorch's state-dict names, so a PyTorch model's
//! `state_dict()` saved with `safetensors.torch.save_file` loads here and the other way round.
//! Writes are atomic: a temporary file in the same directory, flushed, then renamed over the
//! target, so an interrupted save never destroys the previous checkpoint.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::{Error, Result};

/// A state dict: (name, shape, values), f32.
pub type StateDict = Vec<(String, Vec<usize>, Vec<f32>)>;

fn format_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Format { path: path.display().to_string(), message: message.into() }
}

/// Writes `tensors` to `path` atomically.
///
/// # Errors
/// [`Error::Io`] when the directory is not writable.
pub fn save(path: &Path, tensors: &StateDict, metadata: &[(&str, &str)]) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            Ok((
                n.as_str(),
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map_err(|e| format_error(path, e.to_string()))?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let info = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let data =
        safetensors::serialize(views, Some(info)).map_err(|e| format_error(path, e.to_string()))?;
    write_atomically(path, &data)
}

/// Writes `data` to a temporary file beside `path`, syncs it, and renames it over `path`.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name =
        path.file_name().map_or_else(|| "checkpoint".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads every tensor of a safetensors file as f32: f32 tensors, and int64 ones (batch norm's
/// counts) converted; f64 and f16 are refused (gconv computes in f32).
///
/// # Errors
/// [`Error::Io`] for a missing file, [`Error::Format`] for anything that is not a valid
/// safetensors file of f32 tensors.
pub fn load(path: &Path) -> Result<StateDict> {
    Ok(load_with_metadata(path)?.0)
}

/// [`load`], and the file's metadata (the string pairs of its header's `__metadata__`).
///
/// # Errors
/// As [`load`].
pub fn load_with_metadata(path: &Path) -> Result<(StateDict, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    from_bytes(&bytes, path)
}

/// [`load_with_metadata`] of a file's bytes; `path` names it in errors.
///
/// # Errors
/// [`Error::Format`] for anything that is not a valid safetensors file of f32 tensors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(StateDict, BTreeMap<String, String>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format_error(path, format!("not a valid safetensors file ({e})")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format_error(path, format!("not a valid safetensors file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let values = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            // Batch norm's num_batches_tracked is int64 in PyTorch's state dicts.
            Dtype::I64 => view
                .data()
                .chunks_exact(8)
                .map(|c| {
                    i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            other => {
                return Err(format_error(
                    path,
                    format!("tensor {name} is {other:?}; gconv reads f32 and int64 tensors"),
                ));
            }
        };
        out.push((name, view.shape().to_vec(), values));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, metadata))
}
