//! The built-in models, layer for layer as their PyTorch definitions (parameter names are the
//! PyTorch state-dict keys, so checkpoints move between the two).

use super::graph::Graph;
use super::layer::{Init, Layer};
use crate::ops::{ConvOptions, Dims, MaxPoolOptions};
use crate::{Error, Result};

/// The names `gconv train --model` takes.
pub const MODELS: [&str; 6] =
    ["lenet5", "simplecnn", "convnet", "vgg16", "resnet18", "mobilenet_v2"];

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
    /// the ImageNet models (VGG16, ResNet-18, MobileNetV2) 3x224x224 with 1000 classes.
    pub fn default_for(name: &str) -> ModelConfig {
        match name {
            "vgg16" | "resnet18" | "mobilenet_v2" => {
                ModelConfig { input: [3, 224, 224], num_classes: 1000 }
            }
            _ => ModelConfig { input: [1, 28, 28], num_classes: 10 },
        }
    }
}

fn conv(in_c: usize, out_c: usize, k: usize, padding: usize) -> Layer {
    Layer::conv2d(in_c, out_c, k, ConvOptions::default().padding(padding))
}

/// A convolution without bias (one before batch norm, as torchvision writes them).
fn conv_nb(in_c: usize, out_c: usize, k: usize, stride: usize, groups: usize) -> Layer {
    let o = ConvOptions::default().stride(stride).padding((k - 1) / 2).groups(groups);
    Layer::conv2d(in_c, out_c, k, o).with_bias(false)
}

/// torchvision's `Conv2dNormActivation`: `{name}.0` conv, `.1` batch norm, `.2` ReLU6.
fn conv_bn_relu6(g: &mut Graph, name: &str, conv: Layer, out_c: usize) -> Result<()> {
    g.push(&format!("{name}.0"), conv)?;
    g.push(&format!("{name}.1"), Layer::batch_norm2d(out_c))?;
    g.push(&format!("{name}.2"), Layer::Relu6)?;
    Ok(())
}

/// torchvision's ResNet-18: a 7x7 stem and four stages of two `BasicBlock`s (3x3 conv, bn,
/// ReLU, 3x3 conv, bn, plus the block's input through `downsample` when the shape changes,
/// ReLU).
fn resnet18(g: &mut Graph, in_c: usize, classes: usize) -> Result<()> {
    g.push("conv1", conv_nb(in_c, 64, 7, 2, 1))?.push("bn1", Layer::batch_norm2d(64))?;
    let mut pool = MaxPoolOptions::new(3);
    (pool.stride, pool.padding) = (Some(2.into()), 1.into());
    g.push("relu", Layer::Relu)?.push("maxpool", Layer::MaxPool { dims: 2, options: pool })?;
    let (mut prev, mut in_c) = ("maxpool".to_string(), 64);
    for (stage, c) in [64, 128, 256, 512].into_iter().enumerate() {
        for block in 0..2 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let p = format!("layer{}.{block}", stage + 1);
            g.push(&format!("{p}.conv1"), conv_nb(in_c, c, 3, stride, 1))?;
            g.push(&format!("{p}.bn1"), Layer::batch_norm2d(c))?;
            g.push(&format!("{p}.relu1"), Layer::Relu)?;
            g.push(&format!("{p}.conv2"), conv_nb(c, c, 3, 1, 1))?;
            g.push(&format!("{p}.bn2"), Layer::batch_norm2d(c))?;
            let skip = if stride != 1 || in_c != c {
                let down = conv_nb(in_c, c, 1, stride, 1);
                g.push_from(&format!("{p}.downsample.0"), down, &[&prev])?;
                g.push(&format!("{p}.downsample.1"), Layer::batch_norm2d(c))?;
                format!("{p}.downsample.1")
            } else {
                prev.clone()
            };
            g.push_from(&format!("{p}.add"), Layer::Add, &[&format!("{p}.bn2"), &skip])?;
            g.push(&format!("{p}.relu2"), Layer::Relu)?;
            (prev, in_c) = (format!("{p}.relu2"), c);
        }
    }
    let gap = Layer::AdaptiveAvgPool { dims: 2, output_size: Dims::from(1) };
    g.push("avgpool", gap)?.push("flatten", Layer::Flatten)?;
    g.push("fc", Layer::linear(512, classes))?;
    Ok(())
}

/// torchvision's MobileNetV2 (width 1.0): a 3x3 stem, 17 `InvertedResidual` blocks (1x1
/// expansion unless the ratio is 1, 3x3 depthwise, 1x1 projection without activation, plus
/// the input when stride and channels allow), a 1x1 conv to 1280 channels, dropout 0.2 and
/// the classifier.
fn mobilenet_v2(g: &mut Graph, in_c: usize, classes: usize) -> Result<()> {
    conv_bn_relu6(g, "features.0", conv_nb(in_c, 32, 3, 2, 1), 32)?;
    // (expansion t, channels c, repeats n, first stride s), as torchvision's table.
    let settings =
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2)];
    let (mut prev, mut in_c, mut index) = ("features.0.2".to_string(), 32, 1);
    for (t, c, n, s) in settings.into_iter().chain([(6, 320, 1, 1)]) {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let (p, hidden) = (format!("features.{index}.conv"), in_c * t);
            let mut k = 0;
            if t != 1 {
                conv_bn_relu6(g, &format!("{p}.0"), conv_nb(in_c, hidden, 1, 1, 1), hidden)?;
                k = 1;
            }
            let depthwise = conv_nb(hidden, hidden, 3, stride, hidden);
            conv_bn_relu6(g, &format!("{p}.{k}"), depthwise, hidden)?;
            g.push(&format!("{p}.{}", k + 1), conv_nb(hidden, c, 1, 1, 1))?;
            g.push(&format!("{p}.{}", k + 2), Layer::batch_norm2d(c))?;
            prev = if stride == 1 && in_c == c {
                let add = format!("features.{index}.add");
                g.push_from(&add, Layer::Add, &[&format!("{p}.{}", k + 2), &prev])?;
                add
            } else {
                format!("{p}.{}", k + 2)
            };
            (in_c, index) = (c, index + 1);
        }
    }
    conv_bn_relu6(g, "features.18", conv_nb(320, 1280, 1, 1, 1), 1280)?;
    let gap = Layer::AdaptiveAvgPool { dims: 2, output_size: Dims::from(1) };
    g.push("avgpool", gap)?.push("flatten", Layer::Flatten)?;
    g.push("classifier.0", Layer::Dropout { p: 0.2 })?;
    g.push("classifier.1", Layer::linear(1280, classes))?;
    // torchvision: linear weights N(0, 0.01), biases 0.
    for p in &mut g.params {
        if p.name == "classifier.1.weight" {
            p.spec.init = Init::Normal(0.01);
        } else if p.name == "classifier.1.bias" {
            p.spec.init = Init::Constant(0.0);
        }
    }
    Ok(())
}

/// torchvision's initialisation of its ResNets and MobileNets: every convolution's weight
/// N(0, 2 / fan_out) (`kaiming_normal_(mode="fan_out")`).
fn kaiming_fan_out(g: &mut Graph) {
    for node in &g.nodes {
        if matches!(node.layer, Layer::Conv { .. }) {
            g.params[node.params[0]].spec.init = Init::KaimingNormalFanOut;
        }
    }
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
        "resnet18" => {
            resnet18(&mut g, config.input[0], classes)?;
            kaiming_fan_out(&mut g);
        }
        "mobilenet_v2" => {
            mobilenet_v2(&mut g, config.input[0], classes)?;
            kaiming_fan_out(&mut g);
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
