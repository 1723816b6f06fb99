//! The model graph: named nodes, each a layer applied to the previous value, with parameters
//! that a later node may share (weight tying), so their gradients accumulate.

use super::layer::{Layer, ParamSpec};
use crate::{Error, Result};

/// One node: a layer applied to the graph's previous value.
#[derive(Clone, Debug)]
pub struct Node {
    /// The layer's name in the model (`conv1`, `features.0`), prefixing its parameters'.
    pub name: String,
    /// What it computes.
    pub layer: Layer,
    /// Indices into [`Graph::params`] of the parameters it uses, in `Layer::params` order.
    pub params: Vec<usize>,
    /// Indices into [`Graph::buffers`] of its buffers, in `Layer::buffers` order.
    pub buffers: Vec<usize>,
}

/// A parameter of the graph: PyTorch's state-dict name, shape and fan-in.
#[derive(Clone, Debug)]
pub struct GraphParam {
    /// e.g. `conv1.weight`.
    pub name: String,
    /// What the layer declared.
    pub spec: ParamSpec,
}

/// A chain of layers from an input of a fixed per-sample shape to the logits. Value 0 is the
/// input; node i reads value i and writes value i + 1.
#[derive(Clone, Debug)]
pub struct Graph {
    /// Per-sample input shape, e.g. (1, 28, 28).
    pub input_shape: Vec<usize>,
    /// The nodes in execution order.
    pub nodes: Vec<Node>,
    /// Every distinct parameter.
    pub params: Vec<GraphParam>,
    /// Every buffer (saved, not trained: batch norm's running statistics).
    pub buffers: Vec<GraphParam>,
}

impl Graph {
    /// An empty graph for inputs of `input_shape` per sample (without the batch dimension).
    pub fn new(input_shape: &[usize]) -> Graph {
        Graph {
            input_shape: input_shape.to_vec(),
            nodes: Vec::new(),
            params: Vec::new(),
            buffers: Vec::new(),
        }
    }

    /// Appends `layer` under `name`, with parameters of its own.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the name is taken or the layer does not fit the
    /// previous value's shape.
    pub fn push(&mut self, name: &str, layer: Layer) -> Result<&mut Graph> {
        if self.nodes.iter().any(|n| n.name == name) {
            return Err(Error::invalid("graph", format!("a layer named {name:?} already exists")));
        }
        let mut ids = Vec::new();
        for spec in layer.params() {
            ids.push(self.params.len());
            self.params.push(GraphParam { name: format!("{name}.{}", spec.suffix), spec });
        }
        let mut buffer_ids = Vec::new();
        for spec in layer.buffers() {
            buffer_ids.push(self.buffers.len());
            self.buffers.push(GraphParam { name: format!("{name}.{}", spec.suffix), spec });
        }
        self.nodes.push(Node { name: name.to_string(), layer, params: ids, buffers: buffer_ids });
        if let Err(e) = self.shapes(1) {
            self.nodes.pop();
            return Err(e);
        }
        Ok(self)
    }

    /// Appends the layer named `shared` again, with the same parameters: their gradients from
    /// both uses add up.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when no such layer exists or it does not fit here.
    pub fn push_shared(&mut self, name: &str, shared: &str) -> Result<&mut Graph> {
        let node = self.nodes.iter().find(|n| n.name == shared).cloned().ok_or_else(|| {
            Error::invalid("graph", format!("no layer named {shared:?} to share"))
        })?;
        self.nodes.push(Node { name: name.to_string(), ..node });
        if let Err(e) = self.shapes(1) {
            self.nodes.pop();
            return Err(e);
        }
        Ok(self)
    }

    /// The shape of every value (input first, logits last) for a batch of `batch` samples.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a layer does not fit its input.
    pub fn shapes(&self, batch: usize) -> Result<Vec<Vec<usize>>> {
        let mut shape = vec![batch];
        shape.extend(&self.input_shape);
        let mut shapes = vec![shape];
        for node in &self.nodes {
            let next = node.layer.output_shape(&shapes[shapes.len() - 1]).map_err(|e| match e {
                Error::InvalidArgument { op, message } => Error::InvalidArgument {
                    op,
                    message: format!("layer {}: {message}", node.name),
                },
                other => other,
            })?;
            shapes.push(next);
        }
        Ok(shapes)
    }

    /// Trainable parameters (elements), each counted once however often it is used.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|p| p.spec.shape.iter().product::<usize>()).sum()
    }
}
