//! A textual description of a model, for trying architectures without writing Rust:
//! `conv(3,64,k=3,p=1) relu maxpool(2) conv(64,128,k=3,s=2,p=1) flatten linear(10)`.
//!
//! Layers are separated by spaces, newlines, commas or `->`; `#` starts a comment that runs to
//! the end of the line. Each layer is a name with optional arguments in parentheses,
//! positional first, then `key=value`. A per-dimension value is one number for every dimension
//! or one per dimension joined by `x` (`k=3x5`). The names and their arguments, as PyTorch's
//! (short forms in brackets):
//!
//! | layer | arguments |
//! |---|---|
//! | `conv`, `conv1d`, `conv2d`, `conv3d` | in, out, kernel_size [k], stride [s], padding [p] (a size, `same` or `valid`), dilation [d], groups [g], bias |
//! | `convt`, `convtranspose1d/2d/3d` | in, out, kernel_size [k], stride [s], padding [p], output_padding [op], dilation [d], groups [g], bias |
//! | `linear` [`fc`] | in, out, bias (one number: out, with `in` from the input) |
//! | `maxpool`, `maxpool1d/2d/3d` | kernel_size [k], stride [s], padding [p], dilation [d], ceil_mode [ceil] |
//! | `avgpool`, `avgpool1d/2d/3d` | kernel_size [k], stride [s], padding [p], ceil_mode [ceil], count_include_pad [cip] |
//! | `adaptiveavgpool` [`gap`] | output_size (default 1) |
//! | `batchnorm` [`bn`] | num_features (default: the input's channels), eps, momentum |
//! | `relu`, `relu6`, `sigmoid`, `flatten`, `dropout` | dropout: p (default 0.5) |
//! | `leakyrelu` | negative_slope [slope] (default 0.01) |
//!
//! Blocks make branches, and nest:
//! - `res(LAYERS)`: the layers' output plus the block's input (a residual connection);
//!   `res(LAYERS, shortcut=LAYERS)` passes the input through the shortcut's layers first.
//! - `cat(LAYERS | LAYERS | ...)`: every branch on the block's input, the outputs concatenated
//!   along the channels; an empty branch passes the input itself.
//!
//! Without a 1d/2d/3d suffix a layer takes its dimensionality from the input (`--input
//! 3x32x32` is 2-d). Errors point at the offending token.
//!
//! Nodes are named by position, as in `nn.Sequential` (`0`, `1`, ...), and inside blocks as
//! the modules a PyTorch user would write for them: `3.body.0` and `3.shortcut.0` in a res
//! block at position 3 (the sum is node `3.add`), `5.branches.1.0` in a cat block (the
//! concatenation is `5.cat`). A parameter is named after its node (`3.body.0.weight`), so
//! checkpoint names follow the spec's structure and do not change when layers are appended.

mod layer;
mod syntax;

use std::collections::HashMap;

use super::graph::{Graph, INPUT};
use super::layer::Layer;
use crate::{Error, Result};
use syntax::{Element, Span, error_at};

/// Builds the graph a spec describes for inputs of `input_shape` per sample (no batch
/// dimension).
///
/// # Errors
/// [`Error::InvalidArgument`] with the spec's line and a caret under the offending token: an
/// unknown layer or argument, a value that is not a number, unbalanced blocks, a layer that
/// does not fit the shape it receives, or branches whose shapes disagree (naming the node and
/// both shapes).
pub fn parse_layers(spec: &str, input_shape: &[usize]) -> Result<Graph> {
    let elements = syntax::parse(spec)?;
    if elements.is_empty() {
        return Err(Error::invalid("layer spec", "the spec names no layers"));
    }
    let mut input = vec![1];
    input.extend(input_shape);
    let mut builder = Builder {
        spec,
        graph: Graph::new(input_shape),
        shapes: HashMap::from([(INPUT.to_string(), input)]),
    };
    builder.sequence(&elements, INPUT, "")?;
    Ok(builder.graph)
}

/// A graph being built from a spec, with the shape (batch 1) of every value by name.
struct Builder<'s> {
    spec: &'s str,
    graph: Graph,
    shapes: HashMap<String, Vec<usize>>,
}

impl Builder<'_> {
    /// Adds `elements` reading value `input`, naming nodes `{prefix}{position}`; returns the
    /// name of the value the last one writes (`input` when there are none).
    fn sequence(&mut self, elements: &[Element<'_>], input: &str, prefix: &str) -> Result<String> {
        let mut value = input.to_string();
        for (j, element) in elements.iter().enumerate() {
            let name = format!("{prefix}{j}");
            value = match element {
                Element::Layer(item) => {
                    let shape = self.shape(&value)?;
                    let layer = layer::layer(self.spec, item, &shape)?;
                    self.push(&name, layer, &[&value], &item.whole)?
                }
                Element::Res { whole, body, shortcut } => {
                    let main = self.sequence(body, &value, &format!("{name}.body."))?;
                    let skip = match shortcut {
                        Some(layers) => {
                            self.sequence(layers, &value, &format!("{name}.shortcut."))?
                        }
                        None => value.clone(),
                    };
                    self.push(&format!("{name}.add"), Layer::Add, &[&main, &skip], whole)?
                }
                Element::Cat { whole, branches } => {
                    let mut outs = Vec::new();
                    for (b, branch) in branches.iter().enumerate() {
                        let prefix = format!("{name}.branches.{b}.");
                        outs.push(self.sequence(branch, &value, &prefix)?);
                    }
                    let from: Vec<&str> = outs.iter().map(String::as_str).collect();
                    self.push(&format!("{name}.cat"), Layer::Concat, &from, whole)?
                }
            };
        }
        Ok(value)
    }

    fn shape(&self, value: &str) -> Result<Vec<usize>> {
        self.shapes.get(value).cloned().ok_or_else(|| {
            Error::invalid("layer spec", format!("internal error: no value named {value:?}"))
        })
    }

    /// Adds node `name` reading `from`, an error pointing at `span` when it does not fit.
    fn push(&mut self, name: &str, layer: Layer, from: &[&str], span: &Span<'_>) -> Result<String> {
        self.graph.push_from(name, layer, from).map_err(|e| {
            let message = match e {
                Error::InvalidArgument { message, .. } => message,
                other => other.to_string(),
            };
            error_at(self.spec, span.start, span.text.len(), message)
        })?;
        let shapes = self.graph.shapes(1)?;
        self.shapes.insert(name.to_string(), shapes[shapes.len() - 1].clone());
        Ok(name.to_string())
    }
}
