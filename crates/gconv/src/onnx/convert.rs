//! ONNX nodes as gconv layers, with every attribute ONNX defines for them checked: a value
//! gconv supports becomes the layer's option, anything else an error naming the node, its op
//! type and the attribute.

use std::collections::HashMap;

use onnx_proto::NodeProto;

use super::describe;
use super::fold::{self, Dim, Value, node_error};
use super::tensors::{Attributes, Constant};
use crate::nn::{Graph, Layer};
use crate::{Error, Result};

/// The operators the importer converts (shape computations, and Slice, Transpose and Cast,
/// folded where their inputs are constants).
pub(crate) const SUPPORTED: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Identity",
    "LeakyRelu",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pad",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Transpose",
    "Unsqueeze",
];

/// The import in progress: the graph so far, what each ONNX value is, the weights.
pub(super) struct Importer {
    pub graph: Graph,
    pub values: HashMap<String, Value>,
    pub initializers: HashMap<String, Constant>,
    pub state: Vec<(String, Vec<usize>, Vec<f32>)>,
    pub names: Vec<(String, String)>,
    /// The default domain's operator set version (attributes' defaults change with it).
    pub opset: i64,
}

impl Importer {
    /// The value an input names (an initializer where the graph has none); `None` for an
    /// omitted optional input.
    pub(super) fn input(&self, node: &NodeProto, i: usize) -> Result<Option<Value>> {
        let Some(name) = node.input.get(i).filter(|n| !n.is_empty()) else { return Ok(None) };
        if let Some(v) = self.values.get(name) {
            return Ok(Some(v.clone()));
        }
        if let Some(c) = self.initializers.get(name) {
            return Ok(Some(Value::Const(c.clone())));
        }
        Err(node_error(node, format!("reads {name:?}, which no earlier node or initializer gives")))
    }

    /// The graph tensor input `i` names.
    pub(super) fn tensor(&self, node: &NodeProto, i: usize) -> Result<String> {
        match self.input(node, i)? {
            Some(Value::Tensor(v)) => Ok(v),
            Some(Value::Const(c)) => Err(node_error(
                node,
                format!("input {i} is {}: gconv takes graph tensors there", describe(&c)),
            )),
            _ => Err(node_error(node, format!("input {i} is missing or not a tensor"))),
        }
    }

    /// Input `i` as a constant (a weight), with its initializer name.
    pub(super) fn constant(
        &self,
        node: &NodeProto,
        i: usize,
    ) -> Result<Option<(Constant, String)>> {
        match self.input(node, i)? {
            None => Ok(None),
            Some(Value::Const(c)) => Ok(Some((c, node.input[i].clone()))),
            Some(_) => Err(node_error(
                node,
                format!(
                    "input {i} ({:?}) is computed by the graph; gconv needs a constant (an initializer) there",
                    node.input[i]
                ),
            )),
        }
    }

    pub(super) fn shape(&self, value: &str) -> Result<Vec<usize>> {
        let shapes = self.graph.shapes(1)?;
        let index =
            if value == crate::nn::INPUT {
                0
            } else {
                1 + self.graph.nodes.iter().position(|n| n.name == value).ok_or_else(|| {
                    Error::invalid("onnx", format!("internal: no value {value:?}"))
                })?
            };
        Ok(shapes[index].clone())
    }

    /// A name for the layer node `node` becomes: its weight's stem where the weight is named
    /// like PyTorch's (`conv1.weight` -> `conv1`), else the ONNX node's name or op type.
    pub(super) fn layer_name(&self, node: &NodeProto, weight: Option<&str>) -> String {
        let base = weight
            .and_then(|w| w.strip_suffix(".weight"))
            .map(str::to_string)
            .unwrap_or_else(|| {
                let n = node.name().trim_start_matches('/');
                if n.is_empty() { node.op_type().to_lowercase() } else { n.replace('/', ".") }
            });
        self.unique(&base)
    }

    /// `base`, or `base_1`, `base_2`... where the graph has a node of that name.
    pub(super) fn unique(&self, base: &str) -> String {
        let taken = |n: &str| n == crate::nn::INPUT || self.graph.nodes.iter().any(|x| x.name == n);
        let mut name = base.to_string();
        let mut k = 1;
        while taken(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    /// Adds a layer reading `from`, and records its weights (graph name, ONNX name, values).
    pub(super) fn push(
        &mut self,
        node: &NodeProto,
        name: String,
        layer: Layer,
        from: &[&str],
        weights: Vec<(&str, Option<String>, Vec<f32>)>,
    ) -> Result<()> {
        self.graph.push_from(&name, layer, from).map_err(|e| node_error(node, e))?;
        let added = self.graph.nodes.last().map(|n| (n.params.clone(), n.buffers.clone()));
        let (params, buffers) = added.unwrap_or_default();
        let all: Vec<_> = params
            .iter()
            .map(|&p| self.graph.params[p].clone())
            .chain(buffers.iter().map(|&b| self.graph.buffers[b].clone()))
            .collect();
        for p in all {
            let suffix = p.name.rsplit('.').next().unwrap_or("");
            let need: usize = p.spec.shape.iter().product();
            let (onnx_name, values) = match weights.iter().find(|w| w.0 == suffix) {
                Some((_, onnx, v)) if v.len() != need => {
                    return Err(node_error(
                        node,
                        format!(
                            "{} holds {} values; its {suffix} of shape {:?} needs {need}",
                            onnx.as_deref().unwrap_or(suffix),
                            v.len(),
                            p.spec.shape
                        ),
                    ));
                }
                Some((_, onnx, v)) => (onnx.clone(), v.clone()),
                // num_batches_tracked, which ONNX does not keep.
                None => (None, vec![0.0; p.spec.shape.iter().product::<usize>().max(1)]),
            };
            if let Some(o) = onnx_name {
                self.names.push((p.name.clone(), o));
            }
            self.state.push((p.name.clone(), p.spec.shape.clone(), values));
        }
        let output = node.output.first().cloned().unwrap_or_default();
        self.values.insert(output, Value::Tensor(name));
        Ok(())
    }

    /// Converts one node.
    pub fn node(&mut self, node: &NodeProto) -> Result<()> {
        if !node.domain().is_empty() && node.domain() != "ai.onnx" {
            return Err(node_error(node, format!("is in domain {:?}, not ONNX's", node.domain())));
        }
        if node.output.first().is_none_or(String::is_empty) {
            return Err(node_error(node, "has no output"));
        }
        let used_outputs = node.output.iter().filter(|o| !o.is_empty()).count();
        let op = node.op_type();
        if used_outputs > 1 && op != "Dropout" {
            return Err(node_error(node, "has several outputs; gconv reads the first only"));
        }
        match op {
            "Constant" | "Shape" | "Gather" | "Unsqueeze" | "ConstantOfShape" => self.fold(node),
            "Concat" | "Reshape" | "Slice" | "Transpose" | "Cast" if self.all_folded(node)? => {
                self.fold(node)
            }
            "Slice" | "Transpose" | "Cast" => Err(node_error(
                node,
                format!("{op} of a graph tensor is not supported; gconv folds {op} of constants"),
            )),
            "Conv" => self.conv(node),
            "ConvTranspose" => self.conv_transpose(node),
            "BatchNormalization" => self.batch_norm(node),
            "Relu" => self.unary(node, Layer::Relu, &[]),
            "Sigmoid" => self.unary(node, Layer::Sigmoid, &[]),
            "LeakyRelu" => {
                let a = Attributes::new(node, &["alpha"])?;
                let negative_slope = a.float("alpha")?.unwrap_or(0.01);
                self.unary(node, Layer::LeakyRelu { negative_slope }, &["alpha"])
            }
            "Clip" => self.clip(node),
            "Add" => self.join(node, Layer::Add, &[]),
            "Concat" => self.join(node, Layer::Concat, &["axis"]),
            "MaxPool" | "AveragePool" => self.pool(node),
            "GlobalAveragePool" | "GlobalMaxPool" => self.global_pool(node),
            "Pad" => self.pad(node),
            "Mul" | "Div" => self.scale(node),
            "MatMul" => self.matmul(node),
            "Softmax" => self.softmax(node),
            "Flatten" => {
                let a = Attributes::new(node, &["axis"])?;
                if a.int("axis")?.unwrap_or(1) != 1 {
                    return Err(
                        a.unsupported("axis", "is not 1 (gconv flattens all but the batch)")
                    );
                }
                self.unary(node, Layer::Flatten, &["axis"])
            }
            "Reshape" => self.reshape(node),
            "Gemm" => self.gemm(node),
            "Identity" => {
                Attributes::new(node, &[])?;
                let v = self.input(node, 0)?.ok_or_else(|| node_error(node, "has no input"))?;
                self.values.insert(node.output[0].clone(), v);
                Ok(())
            }
            "Dropout" => self.dropout(node),
            other => Err(node_error(
                node,
                format!(
                    "operator {other} is not supported; gconv imports {}",
                    SUPPORTED.join(", ")
                ),
            )),
        }
    }

    fn all_folded(&self, node: &NodeProto) -> Result<bool> {
        for i in 0..node.input.len() {
            if let Some(Value::Tensor(_)) = self.input(node, i)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn fold(&mut self, node: &NodeProto) -> Result<()> {
        let inputs = (0..node.input.len())
            .map(|i| {
                self.input(node, i)
                    .map(|v| v.unwrap_or(Value::Dims { dims: vec![], scalar: false }))
            })
            .collect::<Result<Vec<_>>>()?;
        let value = fold::fold(node, &inputs, |v| self.shape(v))?;
        self.values.insert(node.output[0].clone(), value);
        Ok(())
    }

    fn unary(
        &mut self,
        node: &NodeProto,
        layer: Layer,
        known: &'static [&'static str],
    ) -> Result<()> {
        Attributes::new(node, known)?;
        let x = self.tensor(node, 0)?;
        let name = self.layer_name(node, None);
        self.push(node, name, layer, &[&x], vec![])
    }

    fn join(
        &mut self,
        node: &NodeProto,
        layer: Layer,
        known: &'static [&'static str],
    ) -> Result<()> {
        let a = Attributes::new(node, known)?;
        let inputs =
            (0..node.input.len()).map(|i| self.tensor(node, i)).collect::<Result<Vec<_>>>()?;
        if inputs.len() < 2 {
            let n = inputs.len();
            return Err(node_error(node, format!("joins {n} inputs; gconv joins two or more")));
        }
        if layer == Layer::Concat {
            let rank = self.shape(&inputs[0])?.len() as i64;
            let axis = a.int("axis")?.unwrap_or(1);
            if axis != 1 && axis != 1 - rank {
                return Err(a.unsupported(
                    "axis",
                    &format!("is {axis}; gconv concatenates channels (axis 1)"),
                ));
            }
        }
        let from: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let name = self.layer_name(node, None);
        self.push(node, name, layer, &from, vec![])
    }

    fn clip(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(node, &["min", "max"])?;
        let bound = |i: usize, attr: &str| -> Result<Option<f32>> {
            if let Some(v) = a.float(attr)? {
                return Ok(Some(v));
            }
            match self.constant(node, i)? {
                Some((c, _)) if c.len() == 1 => Ok(Some(c.floats()[0])),
                Some((c, _)) => {
                    Err(node_error(node, format!("{attr} is {}, not a scalar", describe(&c))))
                }
                None => Ok(None),
            }
        };
        let (min, max) = (bound(1, "min")?, bound(2, "max")?);
        let (lo, hi) = (min.unwrap_or(f32::NEG_INFINITY), max.unwrap_or(f32::INFINITY));
        // ReLU and ReLU6 where the bounds are theirs: the executor fuses ReLU.
        let layer = match (lo, hi) {
            (0.0, f32::INFINITY) => Layer::Relu,
            (0.0, 6.0) => Layer::Relu6,
            _ if lo.is_nan() || hi.is_nan() || lo > hi => {
                return Err(node_error(node, format!("clips to [{lo}, {hi}], which is empty")));
            }
            _ => Layer::Hardtanh { min_val: lo, max_val: hi },
        };
        let x = self.tensor(node, 0)?;
        let name = self.layer_name(node, None);
        self.push(node, name, layer, &[&x], vec![])
    }

    /// Mul or Div of a graph tensor by a constant that holds one value (a scalar, or any
    /// shape of equal values) as a scale layer.
    fn scale(&mut self, node: &NodeProto) -> Result<()> {
        Attributes::new(node, &[])?;
        let div = node.op_type() == "Div";
        let (a, b) = (self.input(node, 0)?, self.input(node, 1)?);
        let (x, c) = match (a, b) {
            (Some(Value::Tensor(x)), Some(Value::Const(c))) => (x, c),
            (Some(Value::Const(c)), Some(Value::Tensor(x))) if !div => (x, c),
            _ => {
                return Err(node_error(
                    node,
                    format!(
                        "{} of these inputs is not supported; gconv {} a graph tensor by a \
                         constant",
                        node.op_type(),
                        if div { "divides" } else { "multiplies" }
                    ),
                ));
            }
        };
        let values = c.floats();
        let shape = self.shape(&x)?;
        let Some(&first) = values.first().filter(|&&f| values.iter().all(|&v| v == f)) else {
            return Err(node_error(
                node,
                format!(
                    "multiplies by {} of different values; gconv multiplies by a scalar",
                    describe(&c)
                ),
            ));
        };
        if c.shape.len() > shape.len()
            || c.shape.iter().rev().zip(shape.iter().rev()).any(|(&d, &s)| d != 1 && d != s)
        {
            return Err(node_error(
                node,
                format!("{} does not broadcast to {shape:?}", describe(&c)),
            ));
        }
        let factor = if div { 1.0 / first } else { first };
        if !factor.is_finite() {
            return Err(node_error(node, format!("its factor {factor} is not finite")));
        }
        let name = self.layer_name(node, None);
        self.push(node, name, Layer::Scale { factor }, &[&x], vec![])
    }

    /// Softmax along `axis`: from opset 13 over that one axis (default -1); before, over
    /// the input flattened from `axis` on (default 1), which is the same where the axis is
    /// the last.
    fn softmax(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(node, &["axis"])?;
        let x = self.tensor(node, 0)?;
        let rank = self.shape(&x)?.len() as i64;
        let axis = a.int("axis")?.unwrap_or(if self.opset >= 13 { -1 } else { 1 });
        let d = if axis < 0 { axis + rank } else { axis };
        if d < 0 || d >= rank {
            return Err(a.unsupported("axis", &format!("is {axis} for a rank-{rank} input")));
        }
        if d == 0 {
            return Err(a.unsupported("axis", "is the batch"));
        }
        if self.opset < 13 && d != rank - 1 {
            return Err(a.unsupported(
                "axis",
                &format!(
                    "is {axis}: before opset 13 Softmax spans every axis from it on, and gconv \
                     takes one axis (opset {})",
                    self.opset
                ),
            ));
        }
        let name = self.layer_name(node, None);
        self.push(node, name, Layer::Softmax { dim: d as isize }, &[&x], vec![])
    }

    /// MatMul of a batch of rows by a constant matrix B (K, N): a linear layer without bias.
    fn matmul(&mut self, node: &NodeProto) -> Result<()> {
        Attributes::new(node, &[])?;
        let x = self.tensor(node, 0)?;
        let (b, b_name) = match self.input(node, 1)? {
            Some(Value::Const(_)) => {
                self.constant(node, 1)?.ok_or_else(|| node_error(node, "has no B"))?
            }
            _ => {
                return Err(node_error(
                    node,
                    "multiplies two graph tensors; gconv's MatMul takes a constant B",
                ));
            }
        };
        let shape = self.shape(&x)?;
        let [k, n] = b.shape[..] else {
            return Err(node_error(node, format!("B is {}; gconv takes a matrix", describe(&b))));
        };
        if shape.len() != 2 || shape[1] != k {
            return Err(node_error(
                node,
                format!(
                    "A of shape {shape:?} (batch first) does not multiply B of shape [{k}, {n}]"
                ),
            ));
        }
        let v = b.floats();
        let weight: Vec<f32> = (0..n * k).map(|i| v[(i % k) * n + i / k]).collect();
        let layer = Layer::Linear { in_features: k, out_features: n, bias: false };
        let name = self.layer_name(node, Some(&b_name));
        self.push(node, name, layer, &[&x], vec![("weight", Some(b_name), weight)])
    }

    fn dropout(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(node, &["ratio", "seed"])?;
        if node.output.get(1).is_some_and(|o| !o.is_empty()) {
            return Err(node_error(node, "its mask output is used; gconv keeps no mask"));
        }
        let ratio = match (a.float("ratio")?, self.constant(node, 1)?) {
            (Some(r), _) => r,
            (None, Some((c, _))) if c.len() == 1 => c.floats()[0],
            _ => 0.5,
        };
        let x = self.tensor(node, 0)?;
        let name = self.layer_name(node, None);
        self.push(node, name, Layer::Dropout { p: ratio }, &[&x], vec![])
    }

    fn reshape(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(node, &["allowzero"])?;
        let x = self.tensor(node, 0)?;
        let shape = self.shape(&x)?;
        let target = self.input(node, 1)?.ok_or_else(|| node_error(node, "has no shape"))?;
        let dims: Vec<Dim> = match target {
            Value::Dims { dims, .. } => dims,
            Value::Const(c) => c
                .ints()
                .ok_or_else(|| node_error(node, "its shape is not integers"))?
                .iter()
                .map(|&i| Dim::Fixed(i))
                .collect(),
            Value::Tensor(_) => return Err(node_error(node, "its shape is computed from data")),
        };
        let allow_zero = a.int("allowzero")?.unwrap_or(0) != 0;
        let features: usize = shape[1..].iter().product();
        let flattens = match dims[..] {
            [Dim::Batch, Dim::Fixed(f)] => f == -1 || f as usize == features,
            [Dim::Fixed(0), Dim::Fixed(f)] if !allow_zero => f == -1 || f as usize == features,
            [Dim::Fixed(-1), Dim::Fixed(f)] => f as usize == features,
            _ => false,
        };
        if !flattens {
            return Err(node_error(
                node,
                format!(
                    "reshapes {shape:?} (batch first) to {dims:?}; gconv reshapes only to \
                     (batch, features)"
                ),
            ));
        }
        let name = self.layer_name(node, None);
        self.push(node, name, Layer::Flatten, &[&x], vec![])
    }

    fn batch_norm(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(node, &["epsilon", "momentum", "training_mode", "spatial"])?;
        if a.int("training_mode")?.unwrap_or(0) != 0 {
            return Err(a.unsupported("training_mode", "is 1 (gconv imports inference graphs)"));
        }
        if a.int("spatial")?.unwrap_or(1) != 1 {
            return Err(a.unsupported("spatial", "is 0"));
        }
        let x = self.tensor(node, 0)?;
        let mut weights = Vec::new();
        for (i, suffix) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
            let (c, n) = self
                .constant(node, i)?
                .ok_or_else(|| node_error(node, format!("has no input {i}")))?;
            weights.push((suffix, Some(n), c.floats()));
        }
        let shape = self.shape(&x)?;
        let layer = Layer::BatchNorm {
            dims: shape.len().saturating_sub(2),
            num_features: shape.get(1).copied().unwrap_or(0),
            eps: f64::from(a.float("epsilon")?.unwrap_or(1e-5)),
            // ONNX's momentum weighs the running value, PyTorch's the batch's.
            momentum: 1.0 - f64::from(a.float("momentum")?.unwrap_or(0.9)),
        };
        let scale = node.input[1].clone();
        let name = self.layer_name(node, Some(&scale));
        self.push(node, name, layer, &[&x], weights)
    }

    fn gemm(&mut self, node: &NodeProto) -> Result<()> {
        let a = Attributes::new(node, &["alpha", "beta", "transA", "transB"])?;
        if a.int("transA")?.unwrap_or(0) != 0 {
            return Err(a.unsupported("transA", "is 1 (gconv multiplies the batch's rows)"));
        }
        let x = self.tensor(node, 0)?;
        let (w, w_name) = self.constant(node, 1)?.ok_or_else(|| node_error(node, "has no B"))?;
        let [rows, cols] = w.shape[..] else {
            return Err(node_error(node, format!("B has shape {:?}", w.shape)));
        };
        let (alpha, beta) = (a.float("alpha")?.unwrap_or(1.0), a.float("beta")?.unwrap_or(1.0));
        let trans_b = a.int("transB")?.unwrap_or(0) != 0;
        // gconv's weight is (out, in): B as it is with transB, transposed without.
        let (out_f, in_f) = if trans_b { (rows, cols) } else { (cols, rows) };
        let b = w.floats();
        let mut weight: Vec<f32> = if trans_b {
            b
        } else {
            (0..out_f * in_f).map(|i| b[(i % in_f) * out_f + i / in_f]).collect()
        };
        weight.iter_mut().for_each(|v| *v *= alpha);
        let mut weights = vec![("weight", Some(w_name.clone()), weight)];
        let bias = self.constant(node, 2)?;
        if let Some((c, c_name)) = &bias {
            let values = c.floats();
            let values: Vec<f32> = match values.len() {
                n if n == out_f => values.iter().map(|v| v * beta).collect(),
                1 => vec![values[0] * beta; out_f],
                _ => {
                    return Err(node_error(
                        node,
                        format!("C of shape {:?} does not broadcast to ({out_f})", c.shape),
                    ));
                }
            };
            weights.push(("bias", Some(c_name.clone()), values));
        }
        let layer = Layer::Linear { in_features: in_f, out_features: out_f, bias: bias.is_some() };
        let name = self.layer_name(node, Some(&w_name));
        self.push(node, name, layer, &[&x], weights)
    }
}
