//! conv -> ReLU -> 2x2 max-pool fused into one step of a plan (`ops::conv::ConvReluPool`): its
//! forward and backward passes against gconv-ref's composition of the three operators on every
//! context, and against the same layers run unfused.

use gconv::nn::{Graph, Layer, Model};
use gconv::ops::ConvOptions;
use gconv_ref::{Array, ConvAttrs};
use gconv_tests::compare::relative_error;

use super::common::{ctx, every_context, im2col_ctx, max_pool_2x2, portable_ctx, workgroup_ctx};

/// Two fused blocks (the first with no data gradient, as a network's first layer; the second
/// with one, which reaches the first block's weights) and a classifier.
struct Blocks {
    input: [usize; 3],
    c1: usize,
    k1: usize,
    c2: usize,
    k2: usize,
    pad2: usize,
}

impl Blocks {
    /// A stride-1 convolution's options with padding `pad`, for gconv and for gconv-ref.
    fn conv_options(pad: usize) -> (ConvOptions, ConvAttrs) {
        let o = ConvOptions::default().padding(pad);
        let a = ConvAttrs {
            stride: vec![1, 1],
            padding: vec![(pad, pad), (pad, pad)],
            dilation: vec![1, 1],
            groups: 1,
        };
        (o, a)
    }

    /// (height, width) after each block.
    fn sizes(&self) -> ([usize; 2], [usize; 2]) {
        // The first convolution keeps the size (odd kernel, padding k / 2).
        let [_, h, w] = self.input;
        let (h1, w1) = (h / 2, w / 2);
        // The second convolution's output size, pooled.
        let conv2 = |size: usize| size + 2 * self.pad2 + 1 - self.k2;
        let (h2, w2) = (conv2(h1) / 2, conv2(w1) / 2);
        ([h1, w1], [h2, w2])
    }

    fn graph(&self) -> Graph {
        let (_, [h2, w2]) = self.sizes();
        let mut g = Graph::new(&self.input);
        let (o1, _) = Self::conv_options(self.k1 / 2);
        let (o2, _) = Self::conv_options(self.pad2);
        g.push("conv1", Layer::conv2d(self.input[0], self.c1, self.k1, o1)).expect("conv1");
        g.push("relu1", Layer::Relu).expect("relu1");
        g.push("pool1", Layer::max_pool2d(2)).expect("pool1");
        g.push("conv2", Layer::conv2d(self.c1, self.c2, self.k2, o2)).expect("conv2");
        g.push("relu2", Layer::Relu).expect("relu2");
        g.push("pool2", Layer::max_pool2d(2)).expect("pool2");
        g.push("flatten", Layer::Flatten).expect("flatten");
        g.push("fc", Layer::linear(self.c2 * h2 * w2, 5)).expect("fc");
        g
    }

    /// The logits and every parameter's gradient of the batch's mean cross-entropy, by name,
    /// from gconv-ref's fused forward and backward passes.
    fn reference(
        &self,
        params: &[(String, Vec<usize>, Vec<f32>)],
        x: &Array,
        labels: &[i64],
    ) -> (Array, Vec<(String, Vec<f64>)>) {
        let p = |name: &str| {
            let (_, s, v) = params.iter().find(|(n, _, _)| n == name).expect("parameter");
            Array::from_f32(s, v)
        };
        let (w1, b1, w2, b2) =
            (p("conv1.weight"), p("conv1.bias"), p("conv2.weight"), p("conv2.bias"));
        let (_, a1) = Self::conv_options(self.k1 / 2);
        let (_, a2) = Self::conv_options(self.pad2);
        let pool = max_pool_2x2();
        let (y1, _) = gconv_ref::conv_relu_max_pool_forward(x, &w1, Some(&b1), &a1, &pool);
        let (y2, _) = gconv_ref::conv_relu_max_pool_forward(&y1, &w2, Some(&b2), &a2, &pool);
        let n = x.shape[0];
        let flat = Array::new(&[n, y2.len() / n], y2.data.clone());
        let (wf, bf) = (p("fc.weight"), p("fc.bias"));
        let logits = gconv_ref::linear(&flat, &wf, Some(&bf));
        let g_logits = gconv_ref::cross_entropy_backward(&logits, labels, -100, &[1.0], "mean");
        let (g_flat, g_wf, g_bf) = gconv_ref::linear_backward(&flat, &wf, &g_logits);
        let g_y2 = Array::new(&y2.shape, g_flat.data);
        let (g_y1, g_w2, g_b2) =
            gconv_ref::conv_relu_max_pool_backward(&y1, &w2, Some(&b2), &g_y2, &a2, &pool);
        let (_, g_w1, g_b1) =
            gconv_ref::conv_relu_max_pool_backward(x, &w1, Some(&b1), &g_y1, &a1, &pool);
        let grads = vec![
            ("conv1.weight".to_string(), g_w1.data),
            ("conv1.bias".to_string(), g_b1),
            ("conv2.weight".to_string(), g_w2.data),
            ("conv2.bias".to_string(), g_b2),
            ("fc.weight".to_string(), g_wf.data),
            ("fc.bias".to_string(), g_bf),
        ];
        (logits, grads)
    }
}

/// Input values with no repeats: equal values in a window would make near-ties that f32 and
/// f64 rounding break differently, sending a max-pool's gradient to different positions.
fn inputs(len: usize) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1 << 24) as f32 * 2.4 - 0.6
        })
        .collect()
}

/// The fused passes on every context against gconv-ref: the 3x3 tiles (and, with subgroups,
/// conv_3x3_sg_r16 forward) for a first layer with few channels, the texture GEMM's pooling
/// epilogue and packed unpooling (register layout), the subgroup kernels, the workgroup
/// layout's fused forward with its backward unpooled first, and the contexts that fuse nothing.
/// The second set has a 5x5 first layer and an unpadded 3x3 second one: the generic pooled
/// im2col and col2im, and their 3x3 variants. The last two have 5x5 second layers (LeNet-5's
/// in the last), whose data gradient reads the packed gradient's rows from an odd and an even
/// first column, over 5 and 6 input channels (blocks of four).
#[test]
fn fused_conv_relu_pool_passes_match_reference_on_every_context() {
    let sets = [
        Blocks { input: [3, 10, 14], c1: 8, k1: 3, c2: 12, k2: 3, pad2: 1 },
        Blocks { input: [2, 13, 11], c1: 6, k1: 5, c2: 7, k2: 3, pad2: 0 },
        Blocks { input: [1, 16, 18], c1: 5, k1: 5, c2: 6, k2: 5, pad2: 1 },
        Blocks { input: [1, 28, 28], c1: 6, k1: 5, c2: 16, k2: 5, pad2: 0 },
    ];
    let batch = 3;
    let labels = [1, 4, 0];
    let l64: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    // The storage-buffer and direct contexts fuse nothing.
    let fusing = |name: &str| !matches!(name, "im2col" | "direct");
    for blocks in &sets {
        let x = inputs(batch * blocks.input.iter().product::<usize>());
        let mut shape = vec![batch];
        shape.extend(blocks.input);
        let xa = Array::from_f32(&shape, &x);
        for (name, c) in every_context() {
            let mut model = Model::from_graph(c, "fused", blocks.graph(), 11).expect("model");
            let nodes = model.planned_nodes(batch, true).expect("plan");
            let fused = nodes[..2] == ["conv1+relu1+pool1", "conv2+relu2+pool2"];
            assert_eq!(fused, fusing(name), "{name}: planned nodes {nodes:?}");
            let params = model.state_dict().expect("parameters");
            let (logits, grads) = blocks.reference(&params, &xa, &l64);
            let got = model.predict(&x, batch).expect("predict").to_vec().expect("read");
            let got: Vec<f64> = got.iter().map(|&v| f64::from(v)).collect();
            let err = relative_error(&got, &logits.data);
            assert!(err < 1e-5, "{name}: logits differ from the reference by {err:.3e}");
            model.compute_gradients(&x, &labels).expect("gradients");
            let gpu = model.gradients().expect("gradients");
            for (param, want) in &grads {
                let (_, _, g) = gpu.iter().find(|(n, _, _)| n == param).expect("gradient");
                assert!(want.iter().any(|&v| v != 0.0), "{param}: the reference is all zero");
                let g: Vec<f64> = g.iter().map(|&v| f64::from(v)).collect();
                let err = relative_error(&g, want);
                assert!(err < 1e-4, "{name}: {param} differs from the reference by {err:.3e}");
            }
        }
    }
}

/// conv -> ReLU -> 2x2 max-pool runs as one kernel in training and inference plans (the GEMM
/// pools as it writes). Its logits and gradients must equal those of the separate layers,
/// which the storage-buffer context runs unfused. The second block's 7x5 map pools to 3x2,
/// dropping a row and a column; negative inputs turn the ReLU off in whole windows.
#[test]
fn fused_conv_relu_pool_matches_the_separate_layers() {
    // conv2's 6, 40 and 72 channels take the register layout's 4-, 8- and 16-row kernels, each
    // with whole and partial row blocks and window groups.
    for c2 in [6, 40, 72] {
        let graph = || {
            let mut g = Graph::new(&[3, 14, 10]);
            let o = || ConvOptions::default().padding(1);
            g.push("conv1", Layer::conv2d(3, 8, 3, o())).expect("conv1");
            g.push("relu1", Layer::Relu).expect("relu1");
            g.push("pool1", Layer::max_pool2d(2)).expect("pool1");
            g.push("conv2", Layer::conv2d(8, c2, 3, o())).expect("conv2");
            g.push("relu2", Layer::Relu).expect("relu2");
            g.push("pool2", Layer::max_pool2d(2)).expect("pool2");
            g.push("flatten", Layer::Flatten).expect("flatten");
            g.push("fc", Layer::linear(c2 * 6, 5)).expect("fc");
            g
        };
        // Both GEMM layouts, and the register layout with and without subgroups: the
        // epilogue pools in each.
        for c in [ctx(), portable_ctx(), workgroup_ctx()] {
            fused_model_matches(c, &graph, 5);
        }
    }
}

/// The same where the tiled convolution folds the batch into its GEMM in more than one chunk
/// (a texture holds 16384 / 1024 = 16 samples of 32x32 outputs on lavapipe), so the backward
/// pass recomputes each chunk's im2col instead of reusing the forward pass's.
#[test]
fn fused_conv_relu_pool_matches_the_separate_layers_in_chunks() {
    let c = ctx();
    let max = c.limits().max_texture_dimension_2d as usize;
    let batch = max / 1024 + 3;
    let graph = || {
        // conv1 runs on the 3x3 tiles, conv2 (32x32 outputs) on the tiled GEMM.
        let mut g = Graph::new(&[3, 66, 66]);
        g.push("conv1", Layer::conv2d(3, 5, 3, ConvOptions::default())).expect("conv1");
        g.push("relu1", Layer::Relu).expect("relu1");
        g.push("pool1", Layer::max_pool2d(2)).expect("pool1");
        let o = ConvOptions::default().padding(1);
        g.push("conv2", Layer::conv2d(5, 6, 3, o)).expect("conv2");
        g.push("relu2", Layer::Relu).expect("relu2");
        g.push("pool2", Layer::max_pool2d(2)).expect("pool2");
        g.push("flatten", Layer::Flatten).expect("flatten");
        g.push("fc", Layer::linear(6 * 16 * 16, 5)).expect("fc");
        g
    };
    fused_model_matches(c, &graph, batch);
}

/// The same for a first layer whose weight gradient reads the pooled gradient directly
/// (`pooled_backward_weight`: 5x5 over one input channel, as LeNet-5's) over more windows than
/// one launch sums (65,536), so that a second piece adds to the first's sums.
#[test]
fn fused_first_layer_weight_gradient_in_pieces_matches_the_separate_layers() {
    // 18 x 62 x 62 = 69,192 windows.
    let blocks = Blocks { input: [1, 124, 124], c1: 4, k1: 5, c2: 4, k2: 3, pad2: 1 };
    fused_model_matches(ctx(), &|| blocks.graph(), 18);
}

/// The same for a 5x5 second layer whose GEMMs take the batch in two chunks (a texture holds
/// 16 samples of its 32x32 outputs on lavapipe): its data gradient, a chunk at a time, from the
/// packed gradient's rows.
#[test]
fn fused_5x5_data_gradient_in_chunks_matches_the_separate_layers() {
    let blocks = Blocks { input: [1, 68, 68], c1: 4, k1: 5, c2: 5, k2: 5, pad2: 1 };
    fused_model_matches(ctx(), &|| blocks.graph(), 19);
}

fn fused_model_matches(c: &gconv::Context, graph: &dyn Fn() -> Graph, batch: usize) {
    let mut fused = Model::from_graph(c, "fused", graph(), 3).expect("model");
    let mut plain = Model::from_graph(im2col_ctx(), "plain", graph(), 3).expect("model");
    for train in [true, false] {
        let nodes = fused.planned_nodes(batch, train).expect("plan");
        assert_eq!(nodes[..2], ["conv1+relu1+pool1", "conv2+relu2+pool2"], "train {train}");
        let nodes = plain.planned_nodes(batch, train).expect("plan");
        assert_eq!(nodes.len(), graph().nodes.len(), "the storage-buffer context fuses nothing");
    }
    let per_sample: usize = graph().shapes(1).expect("shapes")[0].iter().product();
    // Not periodic: equal windows would make near-ties that the two paths' rounding breaks
    // differently, sending a max-pool's gradient to different positions.
    let x: Vec<f32> = (0..(batch * per_sample) as u64)
        .map(|i| {
            (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1 << 24) as f32 * 2.4 - 0.6
        })
        .collect();
    let labels: Vec<i32> = (0..batch).map(|i| (i * 3 % 5) as i32).collect();
    let widen = |v: &[f32]| v.iter().map(|&f| f64::from(f)).collect::<Vec<_>>();
    let logits = |m: &mut Model| m.predict(&x, batch).expect("predict").to_vec().expect("read");
    let err = relative_error(&widen(&logits(&mut fused)), &widen(&logits(&mut plain)));
    assert!(err < 1e-5, "logits: fused and separate layers differ by {err:.3e}");
    for model in [&mut fused, &mut plain] {
        model.compute_gradients(&x, &labels).expect("gradients");
    }
    let (a, b) = (fused.gradients().expect("grads"), plain.gradients().expect("grads"));
    assert_eq!(a.len(), 6);
    for ((name, _, ga), (_, _, gb)) in a.iter().zip(&b) {
        assert!(gb.iter().any(|&v| v != 0.0), "{name}: the gradient is not all zero");
        let err = relative_error(&widen(ga), &widen(gb));
        assert!(err < 1e-5, "{name}: fused and separate layers' gradients differ by {err:.3e}");
    }
}
