//! Which model a command works on: a built-in one (`--model`, adapted by `--input` and
//! `--classes` as torchvision's constructors are), a layer spec (`--layers`), a file holding
//! one (`--model-file`) or an ONNX export (`--onnx`). Every command that builds a model takes
//! these options.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use gconv::nn::checkpoint::StateDict;
use gconv::nn::{Graph, MODELS, Model, ModelConfig, models, parse_layers};

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["model", "layers", "model_file", "onnx"])))]
pub struct ModelSource {
    /// A built-in model: lenet5, simplecnn, convnet, vgg16, resnet18 or mobilenet_v2.
    #[arg(long, value_parser = MODELS)]
    pub model: Option<String>,
    /// A model as a layer spec, e.g. "conv(1,16,k=3,p=1) bn relu res(conv(16,16,k=3,p=1) bn)
    /// relu gap flatten linear(10)". Layers: conv, convt, linear, relu, relu6, leakyrelu,
    /// sigmoid, hardtanh, scale, softmax, pad, maxpool, avgpool, adaptiveavgpool (gap),
    /// batchnorm (bn), dropout, flatten; blocks res(LAYERS), res(LAYERS, shortcut=LAYERS)
    /// and cat(LAYERS | LAYERS ...); arguments as PyTorch's with the short forms k, s, p, d,
    /// g, op, ceil, cip, slope, min, max.
    #[arg(long)]
    pub layers: Option<String>,
    /// A file holding a layer spec (newlines and # comments allowed).
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// A model exported to ONNX (e.g. by torch.onnx.export), with its weights; checkpoints
    /// of it use the file's initializer names. --input gives the sizes the file leaves open.
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// The `--onnx` file once imported.
    #[arg(skip)]
    imported: std::sync::OnceLock<gconv::onnx::Imported>,
    /// Per-sample input shape CxHxW, e.g. 3x64x64. A built-in model takes C as its first
    /// convolution's input channels. Default: the data's shape (digits: 1x28x28; the
    /// ImageNet models vgg16, resnet18 and mobilenet_v2 see them as 3x32x32).
    #[arg(long, conflicts_with = "input_size")]
    pub input: Option<String>,
    /// Input height and width of a built-in model (keeps its channels).
    #[arg(long)]
    pub input_size: Option<usize>,
    /// Classes of a built-in model, as torchvision's num_classes (default: the data's).
    #[arg(long)]
    pub classes: Option<usize>,
}

/// What the command's data say about the model: its per-sample shape and class count.
#[derive(Clone, Copy, Debug)]
pub struct DataShape {
    pub input: [usize; 3],
    pub classes: usize,
}

/// The digits the commands default to: 1x28x28, 10 classes.
pub const DIGITS: DataShape = DataShape { input: [1, 28, 28], classes: 10 };

/// A shape like 3x32x32 (1 to 4 positive sizes).
pub fn parse_shape(text: &str) -> Result<Vec<usize>> {
    let dims: Option<Vec<usize>> =
        text.split(['x', 'X', ',']).map(|d| d.trim().parse().ok().filter(|&v| v > 0)).collect();
    match dims {
        Some(d) if (1..=4).contains(&d.len()) => Ok(d),
        _ => bail!(
            "--input {text:?} is not a shape like 3x32x32 (channels x spatial sizes, positive)"
        ),
    }
}

impl ModelSource {
    /// The model's name: the built-in's, the file's, or "layers".
    pub fn name(&self) -> String {
        match (&self.model, self.model_file.as_ref().or(self.onnx.as_ref())) {
            (Some(m), _) => m.clone(),
            (None, Some(f)) => {
                f.file_stem().map_or("layers".into(), |s| s.to_string_lossy().into())
            }
            (None, None) => "layers".into(),
        }
    }

    /// The `--onnx` file, imported (for `--input`'s shape where given).
    pub fn onnx(&self) -> Result<Option<&gconv::onnx::Imported>> {
        let Some(path) = &self.onnx else { return Ok(None) };
        if let Some(imported) = self.imported.get() {
            return Ok(Some(imported));
        }
        if self.classes.is_some() || self.input_size.is_some() {
            bail!(
                "--classes and --input-size adapt a built-in model; an ONNX model is as exported"
            );
        }
        let input = self.input.as_deref().map(parse_shape).transpose()?;
        let imported = gconv::onnx::load(path, input.as_deref())
            .with_context(|| format!("importing {}", path.display()))?;
        Ok(Some(self.imported.get_or_init(|| imported)))
    }

    /// A state dict of the model under the names its checkpoints use (an ONNX model's
    /// initializer names; the graph's otherwise).
    pub fn checkpoint_names_of(&self, state: StateDict) -> Result<StateDict> {
        Ok(match self.onnx()? {
            Some(imported) => imported.onnx_names(state),
            None => state,
        })
    }

    /// A checkpoint's state dict under the model's graph names.
    pub fn graph_names_of(&self, state: StateDict) -> Result<StateDict> {
        Ok(match self.onnx()? {
            Some(imported) => imported.graph_names(state),
            None => state,
        })
    }

    /// The spec text of `--layers` or `--model-file`.
    pub fn spec(&self) -> Result<Option<String>> {
        match (&self.layers, &self.model_file) {
            (Some(spec), _) => Ok(Some(spec.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the model file {}", path.display()))
                .map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The built-in model's configuration for `data` (None: the model's own defaults).
    fn config(&self, name: &str, data: Option<DataShape>) -> Result<ModelConfig> {
        let mut c = ModelConfig::default_for(name);
        if let Some(data) = data {
            c.input = match name {
                "vgg16" | "resnet18" | "mobilenet_v2" => [3, 32, 32],
                _ => data.input,
            };
            c.num_classes = data.classes;
        }
        if let Some(side) = self.input_size {
            c.input = [c.input[0], side, side];
        }
        if let Some(text) = &self.input {
            let [ch, h, w] = parse_shape(text)?[..] else {
                bail!("--input for a built-in model is channels x height x width, e.g. 3x32x32");
            };
            c.input = [ch, h, w];
        }
        if let Some(classes) = self.classes {
            c.num_classes = classes;
        }
        Ok(c)
    }

    /// The model's graph for `data` (None: a built-in model's own input and classes; a spec
    /// then needs `--input`).
    pub fn graph(&self, data: Option<DataShape>) -> Result<Graph> {
        if let Some(imported) = self.onnx()? {
            return Ok(imported.graph.clone());
        }
        let Some(spec) = self.spec()? else {
            let name = self.model.clone().unwrap_or_default();
            return Ok(models::build(&name, &self.config(&name, data)?)?);
        };
        if self.classes.is_some() || self.input_size.is_some() {
            bail!(
                "--classes and --input-size adapt a built-in model; a spec sets its classes in \
                 its last layer and takes --input CxHxW"
            );
        }
        let input = match (&self.input, data) {
            (Some(text), _) => parse_shape(text)?,
            (None, Some(d)) => d.input.to_vec(),
            (None, None) => bail!("--layers and --model-file need --input, e.g. --input 3x32x32"),
        };
        let graph = parse_layers(&spec, &input)?;
        Ok(graph)
    }

    /// The model, initialised from `seed` (an ONNX model: with the file's weights), for
    /// `data`.
    pub fn build(&self, ctx: &gconv::Context, data: DataShape, seed: u64) -> Result<Model> {
        if let Some(imported) = self.onnx()? {
            return Ok(imported.model(ctx, &self.name())?);
        }
        Ok(Model::from_graph(ctx, &self.name(), self.graph(Some(data))?, seed)?)
    }

    /// What a checkpoint records about the model: its name, and a spec and its input.
    pub fn metadata(&self, model: &Model) -> Result<Vec<(String, String)>> {
        let mut meta = vec![("model".to_string(), self.name()), ("format".into(), "pt".into())];
        if let Some(path) = &self.onnx {
            meta.push(("onnx".into(), path.display().to_string()));
        }
        if let Some(spec) = self.spec()? {
            meta.push(("layers".into(), spec));
        }
        let input = model.input_shape().iter().map(usize::to_string).collect::<Vec<_>>();
        meta.push(("input".into(), input.join("x")));
        Ok(meta)
    }
}
