//! Importing ONNX models: a `.onnx` file (as PyTorch's exporter writes it) into a [`Graph`]
//! with its weights, so the model runs, trains and embeds like any other.
//!
//! The protobuf is decoded by `prost` with ONNX's own `onnx.proto` (crate `onnx-proto`).
//! Each node becomes a gconv layer (`convert.rs`); constants and the shape computations
//! exporters emit around a reshape (`Shape`, `Gather`, `Unsqueeze`, `Concat`, `Constant`) are
//! folded at import (`fold.rs`), the batch dimension kept symbolic. An operator, attribute or
//! value gconv cannot run is an error naming the node, never a wrong result or a CPU fallback.
//!
//! Parameters are named after their layer in the graph (`conv1.weight`); [`Imported::names`]
//! maps them to the file's initializer names, which checkpoints of the imported model use.

mod convert;
mod fold;
mod spatial;
mod tensors;

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use crate::nn::checkpoint::StateDict;
use crate::nn::{Graph, INPUT, Model, Session};
use crate::{Context, Error, Result};
use fold::Value;
use tensors::{Constant, read_tensor};

/// An imported model: its graph, its weights (by the graph's parameter names) and the names
/// the ONNX file gives them.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The model as gconv layers; the graph's input is the ONNX model's input.
    pub graph: Graph,
    /// Every parameter and buffer, by the graph's names, as [`Model::load_state_dict`] takes.
    pub state: StateDict,
    /// (graph name, ONNX initializer name) for every tensor of `state` the file holds.
    pub names: Vec<(String, String)>,
    /// The ONNX name of the graph's input.
    pub input: String,
    /// The ONNX name of the graph's output.
    pub output: String,
}

impl Imported {
    /// A model of the imported graph with the file's weights.
    ///
    /// # Errors
    /// As [`Model::from_graph`] and [`Model::load_state_dict`].
    pub fn model(&self, ctx: &Context, name: &str) -> Result<Model> {
        let mut model = Model::from_graph(ctx, name, self.graph.clone(), 0)?;
        model.load_state_dict(&self.state)?;
        Ok(model)
    }

    /// A [`Session`] of the imported model for batches of `batch` on `ctx` (a host's device
    /// through [`Context::from_wgpu`]): it records the model into the host's encoder.
    ///
    /// ```no_run
    /// # fn demo(device: gconv::wgpu::Device, queue: gconv::wgpu::Queue, frame: &gconv::wgpu::Buffer)
    /// # -> gconv::Result<()> {
    /// use gconv::nn::SessionInput;
    /// let ctx = gconv::Context::from_wgpu(device.clone(), queue.clone())?;
    /// let imported = gconv::onnx::load("resnet18.onnx".as_ref(), None)?;
    /// let mut session = imported.session(&ctx, 1)?;
    /// let mut encoder = device.create_command_encoder(&Default::default());
    /// session.record(&mut encoder, SessionInput::Buffer { buffer: frame, offset: 0 })?;
    /// queue.submit([encoder.finish()]);
    /// let logits = session.logits()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Imported::model`] and [`Session::new`].
    pub fn session(&self, ctx: &Context, batch: usize) -> Result<Session> {
        Session::new(self.model(ctx, "onnx")?, batch)
    }

    /// `state` (a state dict of this graph) with the file's initializer names where it has
    /// them: what a checkpoint of a fine-tuned import holds.
    pub fn onnx_names(&self, state: StateDict) -> StateDict {
        rename(state, self.names.iter().map(|(g, o)| (g.as_str(), o.as_str())))
    }

    /// A state dict under the file's initializer names as this graph's (the inverse of
    /// [`Imported::onnx_names`]).
    pub fn graph_names(&self, state: StateDict) -> StateDict {
        rename(state, self.names.iter().map(|(g, o)| (o.as_str(), g.as_str())))
    }
}

/// `state` with each name found among the pairs' first halves replaced by its second.
fn rename<'a>(state: StateDict, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> StateDict {
    let map: HashMap<&str, &str> = pairs.collect();
    state
        .into_iter()
        .map(|(n, s, v)| (map.get(n.as_str()).map_or(n, |r| r.to_string()), s, v))
        .collect()
}

/// Reads `path`. `input` is the per-sample input shape (C, H, W...) where the file leaves a
/// dimension other than the batch symbolic; the file's own shape otherwise.
///
/// # Errors
/// [`Error::Io`] for a missing file; [`Error::Format`] for one that is not ONNX, is
/// truncated, or whose weights (or external data) cannot be read; [`Error::InvalidArgument`]
/// naming the node, op type and attribute gconv does not support, or a graph with several
/// inputs or outputs.
pub fn load(path: &Path, input: Option<&[usize]>) -> Result<Imported> {
    let bytes = std::fs::read(path)
        .map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    from_bytes(&bytes, path, input)
}

/// [`load`] of a file's bytes; `path` names it in errors and locates external data.
///
/// # Errors
/// As [`load`].
pub fn from_bytes(bytes: &[u8], path: &Path, input: Option<&[usize]>) -> Result<Imported> {
    let format = |message: String| Error::Format { path: path.display().to_string(), message };
    let model = onnx_proto::ModelProto::decode(bytes)
        .map_err(|e| format(format!("not an ONNX model ({e})")))?;
    let graph = model.graph.as_ref().ok_or_else(|| format("the file holds no graph".into()))?;
    if let Some(op) =
        model.opset_import.iter().find(|o| !o.domain().is_empty() && o.domain() != "ai.onnx")
    {
        return Err(format(format!(
            "operator set {:?} is not supported (gconv reads the default ONNX domain)",
            op.domain()
        )));
    }
    let mut initializers = HashMap::new();
    for t in &graph.initializer {
        initializers.insert(t.name().to_string(), read_tensor(t, path)?);
    }
    let inputs: Vec<_> =
        graph.input.iter().filter(|i| !initializers.contains_key(i.name())).collect();
    let [graph_input] = inputs[..] else {
        return Err(Error::invalid(
            "onnx",
            format!("the graph has {} inputs; gconv runs graphs of one input", inputs.len()),
        ));
    };
    let [graph_output] = &graph.output[..] else {
        let names: Vec<&str> = graph.output.iter().map(|o| o.name()).collect();
        return Err(Error::invalid(
            "onnx",
            format!(
                "the graph has {} outputs ({names:?}); gconv runs graphs of one output",
                names.len()
            ),
        ));
    };
    let shape = fold::input_shape(graph_input, input)?;
    let mut ctx = convert::Importer {
        graph: Graph::new(&shape),
        values: HashMap::from([(graph_input.name().to_string(), Value::Tensor(INPUT.to_string()))]),
        initializers,
        state: Vec::new(),
        names: Vec::new(),
        opset: model
            .opset_import
            .iter()
            .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
            .map_or(1, |o| o.version()),
    };
    for node in &graph.node {
        ctx.node(node)?;
    }
    let last = ctx.graph.nodes.last().map(|n| n.name.clone());
    match ctx.values.get(graph_output.name()) {
        Some(Value::Tensor(v)) if Some(v) == last.as_ref() => {}
        _ => {
            return Err(Error::invalid(
                "onnx",
                format!(
                    "the graph's output {:?} is not its last node's output",
                    graph_output.name()
                ),
            ));
        }
    }
    Ok(Imported {
        graph: ctx.graph,
        state: ctx.state,
        names: ctx.names,
        input: graph_input.name().to_string(),
        output: graph_output.name().to_string(),
    })
}

/// A constant's description in errors.
fn describe(c: &Constant) -> String {
    format!("a constant of shape {:?}", c.shape)
}
