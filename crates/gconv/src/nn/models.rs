//! The built-in models, layer for layer as their PyTorch definitions (parameter names are the
//! PyTorch state-dict keys, so checkpoints move between the two).

use super::graph::Graph;
use super::layer::Layer;
use crate::ops::{ConvOptions, Dims};
use crate::{Error, Result};

/// The names `gconv train --model` takes.
pub const MODELS: [&str; 4] = ["lenet5", "simplecnn", "convnet", "vgg16"];

/// What a built-in model is built for: per-sample input shape and class count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Channels, height, width of one input.
    pub input: [usize; 3],
    /// Number of classes (logits).
    pub num_classes: usize,
}

impl ModelConfig {
    /// The input each model expects by default: MNIST digits (1x28x28, 10 classes), or for
    /// VGG16 ImageNet's 3x224x224 with 1000 classes.
    pub fn default_for(name: &str) -> ModelConfig {
        match name {
            "vgg16" => ModelConfig { input: [3, 224, 224], num_classes: 1000 },
            _ => ModelConfig { input: [1, 28, 28], num_classes: 10 },
        }
    }
}

fn conv(in_c: usize, out_c: usize, k: usize, padding: usize) -> Layer {
    Layer::conv2d(in_c, out_c, k, ConvOptions::default().padding(padding))
}

/// The built-in model `name` for `config`.
///
/// # Errors
/// [`Error::InvalidArgument`] for an unknown name or an input the model cannot take.
pub fn build(name: &str, config: &ModelConfig) -> Result<Graph> {
    let mut g = Graph::new(&config.input);
    let classes = config.num_classes;
    let flat = |g: &Graph| -> Result<usize> {
        let shapes = g.shapes(1)?;
        Ok(shapes[shapes.len() - 1][1..].iter().product())
    };
    match name {
        // conv 1->6 k5 p2, pool 2, conv 6->16 k5, pool 2, fc 400->120->84->10.
        "lenet5" => {
            g.push("conv1", conv(config.input[0], 6, 5, 2))?.push("relu1", Layer::Relu)?;
            g.push("pool1", Layer::max_pool2d(2))?;
            g.push("conv2", conv(6, 16, 5, 0))?.push("relu2", Layer::Relu)?;
            g.push("pool2", Layer::max_pool2d(2))?.push("flatten", Layer::Flatten)?;
            let n = flat(&g)?;
            g.push("fc1", Layer::linear(n, 120))?.push("relu3", Layer::Relu)?;
            g.push("fc2", Layer::linear(120, 84))?.push("relu4", Layer::Relu)?;
            g.push("fc3", Layer::linear(84, classes))?;
        }
        // conv 1->32, 32->64, 64->64 (k3 p1), each ReLU + max-pool 2, fc 576->64, ReLU,
        // dropout 0.5, fc 64->10.
        "simplecnn" => {
            let chans = [config.input[0], 32, 64, 64];
            for i in 0..3 {
                g.push(&format!("conv{}", i + 1), conv(chans[i], chans[i + 1], 3, 1))?;
                g.push(&format!("relu{}", i + 1), Layer::Relu)?;
                g.push(&format!("pool{}", i + 1), Layer::max_pool2d(2))?;
            }
            g.push("flatten", Layer::Flatten)?;
            let n = flat(&g)?;
            g.push("fc1", Layer::linear(n, 64))?.push("relu4", Layer::Relu)?;
            g.push("dropout", Layer::Dropout { p: 0.5 })?;
            g.push("fc2", Layer::linear(64, classes))?;
        }
        // conv 1->16, 16->32 (k3 p1), each ReLU + max-pool 2, fc 1568->128->10.
        "convnet" => {
            g.push("conv1", conv(config.input[0], 16, 3, 1))?.push("relu1", Layer::Relu)?;
            g.push("pool1", Layer::max_pool2d(2))?;
            g.push("conv2", conv(16, 32, 3, 1))?.push("relu2", Layer::Relu)?;
            g.push("pool2", Layer::max_pool2d(2))?.push("flatten", Layer::Flatten)?;
            let n = flat(&g)?;
            g.push("fc1", Layer::linear(n, 128))?.push("relu3", Layer::Relu)?;
            g.push("fc2", Layer::linear(128, classes))?;
        }
        // torchvision's vgg16: features (13 conv3x3 + ReLU, 5 max-pools), avgpool to 7x7,
        // classifier 25088->4096->4096->classes with ReLU and dropout 0.5. Names are
        // torchvision's module indices (features.0, classifier.6, ...).
        "vgg16" => {
            let cfg: [usize; 18] =
                [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];
            let (mut idx, mut in_c) = (0, config.input[0]);
            for c in cfg {
                if c == 0 {
                    g.push(&format!("features.{idx}"), Layer::max_pool2d(2))?;
                    idx += 1;
                } else {
                    g.push(&format!("features.{idx}"), conv(in_c, c, 3, 1))?;
                    g.push(&format!("features.{}", idx + 1), Layer::Relu)?;
                    idx += 2;
                    in_c = c;
                }
            }
            g.push("avgpool", Layer::AdaptiveAvgPool { dims: 2, output_size: Dims::from(7) })?;
            g.push("flatten", Layer::Flatten)?;
            g.push("classifier.0", Layer::linear(512 * 7 * 7, 4096))?
                .push("classifier.1", Layer::Relu)?;
            g.push("classifier.2", Layer::Dropout { p: 0.5 })?;
            g.push("classifier.3", Layer::linear(4096, 4096))?.push("classifier.4", Layer::Relu)?;
            g.push("classifier.5", Layer::Dropout { p: 0.5 })?;
            g.push("classifier.6", Layer::linear(4096, classes))?;
        }
        other => {
            return Err(Error::invalid(
                "model",
                format!("unknown model {other:?}; the built-in models are {}", MODELS.join(", ")),
            ));
        }
    }
    Ok(g)
}
