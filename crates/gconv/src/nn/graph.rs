//! The model graph: named nodes, each a layer applied to one or more values (the graph's
//! input, or other nodes' outputs), with parameters that a later node may share (weight
//! tying), so their gradients accumulate. A value may feed several nodes: residual and
//! concatenation branches.

use super::layer::{Layer, ParamSpec};
use crate::{Error, Result};

/// One node: a layer applied to the values it names.
#[derive(Clone, Debug)]
pub struct Node {
    /// The layer's name in the model (`conv1`, `layer1.0.conv1`), prefixing its parameters'.
    pub name: String,
    /// What it computes.
    pub layer: Layer,
    /// The values it reads: 0 is the graph's input, k + 1 the output of node k. A node
    /// pushed without naming its inputs reads the previous node's output.
    pub inputs: Vec<usize>,
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

/// A directed acyclic graph of layers from an input of a fixed per-sample shape to the
/// logits, in execution order. Value 0 is the input; node k writes value k + 1 and reads
/// values before it; the last node's output is the model's.
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

/// The name [`Graph::push_from`] gives the graph's input.
pub const INPUT: &str = "input";

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

    /// Appends `layer` under `name`, reading the previous node's output (the input for the
    /// first node), with parameters of its own.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the name is taken or the layer does not fit the
    /// previous value's shape.
    pub fn push(&mut self, name: &str, layer: Layer) -> Result<&mut Graph> {
        let previous = self.nodes.len();
        self.insert(name, layer, vec![previous], None)
    }

    /// Appends `layer` under `name`, reading the outputs of the nodes named in `from` (or the
    /// graph's input, [`INPUT`]), in that order: `Add` and `Concat` take several.
    ///
    /// ```
    /// # use gconv::nn::{Graph, Layer};
    /// # use gconv::ops::ConvOptions;
    /// # fn main() -> gconv::Result<()> {
    /// // A residual block: relu(bn(conv(x)) + x).
    /// let mut g = Graph::new(&[16, 8, 8]);
    /// let o = ConvOptions::default().padding(1);
    /// g.push("conv", Layer::conv2d(16, 16, 3, o).with_bias(false))?;
    /// g.push("bn", Layer::batch_norm2d(16))?;
    /// g.push_from("add", Layer::Add, &["bn", "input"])?;
    /// g.push("relu", Layer::Relu)?;
    /// assert_eq!(g.shapes(4)?.last().unwrap(), &[4, 16, 8, 8]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the name is taken, an input names no earlier node, or
    /// the layer does not fit its inputs' shapes.
    pub fn push_from(&mut self, name: &str, layer: Layer, from: &[&str]) -> Result<&mut Graph> {
        let inputs = from.iter().map(|f| self.value(f)).collect::<Result<Vec<_>>>()?;
        self.insert(name, layer, inputs, None)
    }

    /// Appends the layer named `shared` again, reading the previous node's output, with the
    /// same parameters: their gradients from both uses add up.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when no such layer exists or it does not fit here.
    pub fn push_shared(&mut self, name: &str, shared: &str) -> Result<&mut Graph> {
        let node = self.nodes.iter().find(|n| n.name == shared).cloned().ok_or_else(|| {
            Error::invalid("graph", format!("no layer named {shared:?} to share"))
        })?;
        let previous = self.nodes.len();
        self.insert(name, node.layer.clone(), vec![previous], Some(&node))
    }

    /// The value a node's name stands for: its output, or the input for [`INPUT`].
    fn value(&self, name: &str) -> Result<usize> {
        if name == INPUT {
            return Ok(0);
        }
        match self.nodes.iter().position(|n| n.name == name) {
            Some(k) => Ok(k + 1),
            None => Err(Error::invalid(
                "graph",
                format!("no earlier node named {name:?} to read (the input is {INPUT:?})"),
            )),
        }
    }

    fn insert(
        &mut self,
        name: &str,
        layer: Layer,
        inputs: Vec<usize>,
        shared: Option<&Node>,
    ) -> Result<&mut Graph> {
        if name == INPUT || self.nodes.iter().any(|n| n.name == name) {
            return Err(Error::invalid("graph", format!("a layer named {name:?} already exists")));
        }
        let (param_count, buffer_count) = (self.params.len(), self.buffers.len());
        let (params, buffers) = match shared {
            Some(node) => (node.params.clone(), node.buffers.clone()),
            None => (self.add_params(name, &layer.params()), self.add_buffers(name, &layer)),
        };
        self.nodes.push(Node { name: name.to_string(), layer, inputs, params, buffers });
        if let Err(e) = self.shapes(1) {
            self.nodes.pop();
            self.params.truncate(param_count);
            self.buffers.truncate(buffer_count);
            return Err(e);
        }
        Ok(self)
    }

    fn add_params(&mut self, name: &str, specs: &[ParamSpec]) -> Vec<usize> {
        let mut ids = Vec::new();
        for spec in specs {
            ids.push(self.params.len());
            let spec = spec.clone();
            self.params.push(GraphParam { name: format!("{name}.{}", spec.suffix), spec });
        }
        ids
    }

    fn add_buffers(&mut self, name: &str, layer: &Layer) -> Vec<usize> {
        let mut ids = Vec::new();
        for spec in layer.buffers() {
            ids.push(self.buffers.len());
            self.buffers.push(GraphParam { name: format!("{name}.{}", spec.suffix), spec });
        }
        ids
    }

    /// The shape of every value (input first, the model's output last) for a batch of
    /// `batch` samples.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the node when a layer does not fit its inputs.
    pub fn shapes(&self, batch: usize) -> Result<Vec<Vec<usize>>> {
        let mut shape = vec![batch];
        shape.extend(&self.input_shape);
        let mut shapes = vec![shape];
        for (k, node) in self.nodes.iter().enumerate() {
            if node.inputs.is_empty() || node.inputs.iter().any(|&v| v > k) {
                return Err(Error::invalid(
                    "graph",
                    format!("layer {}: reads a value that is not computed before it", node.name),
                ));
            }
            let inputs: Vec<&[usize]> = node.inputs.iter().map(|&v| &shapes[v][..]).collect();
            let next = node.layer.infer_shape(&inputs).map_err(|e| match e {
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

    /// The nodes that read value `v`, in execution order (a node reading it twice appears
    /// twice).
    pub fn consumers(&self, v: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for (k, node) in self.nodes.iter().enumerate() {
            out.extend(node.inputs.iter().filter(|&&i| i == v).map(|_| k));
        }
        out
    }

    /// Trainable parameters (elements), each counted once however often it is used.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|p| p.spec.shape.iter().product::<usize>()).sum()
    }
}
