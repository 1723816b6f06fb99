//! Graphs with branches: the operators that join them against gconv-ref, whole-model gradients
//! through residual, concatenation and shared layers against finite differences, fusion only
//! where a value has one reader, the spec's blocks and their errors, and branch-aware
//! summaries.

use gconv::nn::{Graph, Layer, Model, ModelConfig, models, parse_layers, summarize};
use gconv::ops::{self, AvgPoolOptions, ConvOptions};
use gconv_ref::Array;
use rand::Rng;

use super::common::{
    Parameter, assert_gradients_match_finite_differences, check, ctx, for_each_config,
    max_pool_2x2, random, trainable_parameters,
};

fn fail(what: &str) -> impl Fn(gconv::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

#[test]
fn random_activations_add_cat_and_narrow_match_reference() {
    for_each_config("branch operators", 60, |r| {
        let rank = r.random_range(1..=4);
        let shape: Vec<usize> = (0..rank).map(|_| r.random_range(1..=7)).collect();
        // Values on both sides of 0 and 6.
        let (x, xa) = {
            let (t, a) = random(r, &shape);
            let scaled: Vec<f32> = t.to_vec().map_err(fail("x"))?.iter().map(|v| v * 8.0).collect();
            let t = gconv::Tensor::from_slice(ctx(), &scaled, &shape).map_err(fail("x"))?;
            (t, Array::new(&shape, a.data.iter().map(|v| v * 8.0).collect()))
        };
        let (gy, gya) = random(r, &shape);
        let what = format!("{shape:?}");
        check(
            &format!("relu6 {what}"),
            &ops::relu6(&x).map_err(fail(&what))?,
            &gconv_ref::relu6(&xa),
        )?;
        let gx = ops::relu6_backward(&gy, &x).map_err(fail(&what))?;
        check(&format!("relu6_backward {what}"), &gx, &gconv_ref::relu6_backward(&xa, &gya))?;
        let slope = r.random_range(0.0..0.5);
        let y = ops::leaky_relu(&x, slope as f32).map_err(fail(&what))?;
        check(
            &format!("leaky_relu {what}"),
            &y,
            &gconv_ref::leaky_relu(&xa, f64::from(slope as f32)),
        )?;
        let gx = ops::leaky_relu_backward(&gy, &x, slope as f32).map_err(fail(&what))?;
        let want = gconv_ref::leaky_relu_backward(&xa, &gya, f64::from(slope as f32));
        check(&format!("leaky_relu_backward {what}"), &gx, &want)?;
        check(
            &format!("sigmoid {what}"),
            &ops::sigmoid(&x).map_err(fail(&what))?,
            &gconv_ref::sigmoid(&xa),
        )?;
        let gx = ops::sigmoid_backward(&gy, &x).map_err(fail(&what))?;
        check(&format!("sigmoid_backward {what}"), &gx, &gconv_ref::sigmoid_backward(&xa, &gya))?;
        let sum = ops::add(&x, &gy).map_err(fail(&what))?;
        check(&format!("add {what}"), &sum, &gconv_ref::add(&xa, &gya))?;
        // cat along a random dimension (negative half the time) of 1 to 3 tensors.
        let dim = r.random_range(0..rank);
        let signed = if r.random_bool(0.5) { dim as isize - rank as isize } else { dim as isize };
        let parts: Vec<(gconv::Tensor, Array)> = (0..r.random_range(1..=3))
            .map(|_| {
                let mut s = shape.clone();
                s[dim] = r.random_range(1..=4);
                random(r, &s)
            })
            .collect();
        let what = format!("{what} dim {signed}, {} parts", parts.len());
        let y = ops::cat(&parts.iter().map(|p| &p.0).collect::<Vec<_>>(), signed)
            .map_err(fail(&what))?;
        let ya = gconv_ref::cat(&parts.iter().map(|p| &p.1).collect::<Vec<_>>(), dim);
        check(&format!("cat {what}"), &y, &ya)?;
        let total = ya.shape[dim];
        let start = r.random_range(0..total);
        let length = r.random_range(1..=total - start);
        let n = ops::narrow(&y, signed, start, length).map_err(fail(&what))?;
        check(
            &format!("narrow {what} {start}+{length}"),
            &n,
            &gconv_ref::narrow(&ya, dim, start, length),
        )
    });
}

#[test]
fn joining_tensors_of_different_shapes_is_an_error() {
    let a = gconv::Tensor::zeros(ctx(), &[2, 3, 4]).expect("a");
    let b = gconv::Tensor::zeros(ctx(), &[2, 5, 4]).expect("b");
    let e = ops::add(&a, &b).expect_err("add of different shapes").to_string();
    assert!(e.contains("[2, 3, 4]") && e.contains("[2, 5, 4]"), "{e}");
    assert!(ops::cat(&[&a, &b], 1).is_ok());
    let e = ops::cat(&[&a, &b], 2).expect_err("cat along 2").to_string();
    assert!(e.contains("dimension 2"), "{e}");
    assert!(ops::cat(&[], 0).is_err());
    let e = ops::narrow(&a, 1, 2, 2).expect_err("past the end").to_string();
    assert!(e.contains("exceeds size 3"), "{e}");
}

/// A graph with every kind of branch: `relu` feeds four nodes (a shared convolution applied
/// twice, the residual sum, ReLU6 and the concatenation), and `r3` feeds a max-pool and an
/// average pool, so the conv -> ReLU -> max-pool run after it must not fuse.
pub fn branching_graph() -> Graph {
    let mut g = Graph::new(&[2, 6, 6]);
    let same = || ConvOptions::default().padding(1);
    g.push("conv0", Layer::conv2d(2, 4, 3, same())).expect("conv0");
    g.push("bn", Layer::batch_norm2d(4)).expect("bn");
    g.push("relu", Layer::Relu).expect("relu");
    g.push("c1", Layer::conv2d(4, 4, 3, same())).expect("c1");
    g.push_shared("c1_again", "c1").expect("shared");
    g.push_from("add", Layer::Add, &["c1_again", "relu"]).expect("add");
    g.push_from("r6", Layer::Relu6, &["relu"]).expect("relu6");
    g.push_from("cat", Layer::Concat, &["add", "r6", "relu"]).expect("cat");
    g.push("c3", Layer::conv2d(12, 4, 3, same()).with_bias(false)).expect("c3");
    g.push("r3", Layer::Relu).expect("r3");
    g.push("p3", Layer::max_pool2d(2)).expect("p3");
    let avg = Layer::AvgPool { dims: 2, options: AvgPoolOptions::new(2) };
    g.push_from("p3b", avg, &["r3"]).expect("p3b");
    g.push_from("add2", Layer::Add, &["p3", "p3b"]).expect("add2");
    g.push("flatten", Layer::Flatten).expect("flatten");
    g.push("fc", Layer::linear(36, 5)).expect("fc");
    g
}

/// [`branching_graph`]'s mean cross-entropy on the CPU in f64, from gconv-ref's operators.
fn reference_loss(params: &[Parameter], x: &Array, labels: &[i64]) -> f64 {
    let p = |name: &str| {
        let (_, s, v) = params.iter().find(|(n, _, _)| n == name).expect("parameter");
        Array::new(s, v.clone())
    };
    let attrs = gconv_ref::ConvAttrs {
        stride: vec![1, 1],
        padding: vec![(1, 1), (1, 1)],
        dilation: vec![1, 1],
        groups: 1,
    };
    let conv = |x: &Array, name: &str, bias: bool| {
        let b = bias.then(|| p(&format!("{name}.bias")));
        gconv_ref::conv_forward(x, &p(&format!("{name}.weight")), b.as_ref(), &attrs)
    };
    let y = conv(x, "conv0", true);
    let (w, b) = (p("bn.weight").data, p("bn.bias").data);
    let y = gconv_ref::batch_norm_forward(&y, None, None, Some(&w), Some(&b), true, 0.1, 1e-5).y;
    let relu = gconv_ref::relu(&y);
    let c1 = conv(&conv(&relu, "c1", true), "c1", true);
    let add = gconv_ref::add(&c1, &relu);
    let cat = gconv_ref::cat(&[&add, &gconv_ref::relu6(&relu), &relu], 1);
    let r3 = gconv_ref::relu(&conv(&cat, "c3", false));
    let mut avg = max_pool_2x2();
    avg.count_include_pad = true;
    let pooled = gconv_ref::add(
        &gconv_ref::max_pool_forward(&r3, &max_pool_2x2()).0,
        &gconv_ref::avg_pool_forward(&r3, &avg),
    );
    let flat = Array::new(&[pooled.shape[0], 36], pooled.data);
    let logits = gconv_ref::linear(&flat, &p("fc.weight"), Some(&p("fc.bias")));
    gconv_ref::cross_entropy(&logits, labels, -100).1
}

#[test]
fn gradients_through_residual_concat_and_shared_layers_match_finite_differences() {
    let mut model = Model::from_graph(ctx(), "branches", branching_graph(), 5).expect("model");
    let planned = model.planned_nodes(3, true).expect("plan");
    assert!(
        planned.iter().all(|n| !n.contains("r3+")),
        "r3 has two readers: conv c3 -> r3 -> p3 must not fuse: {planned:?}"
    );
    let batch = 3;
    let x: Vec<f32> =
        (0..batch * 2 * 6 * 6).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let labels = [1, 4, 2];
    model.compute_gradients(&x, &labels).expect("gradients");
    let grads = model.gradients().expect("download");
    let params = trainable_parameters(&model);
    let names: Vec<&str> = grads.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(
        names.len(),
        9,
        "conv0, bn, c1 (shared), fc weights and biases, c3's weight: {names:?}"
    );
    let xa = Array::from_f32(&[batch, 2, 6, 6], &x);
    let l64: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    assert_gradients_match_finite_differences(&grads, &params, |p| reference_loss(p, &xa, &l64));
}

#[test]
fn spec_blocks_build_residual_and_concatenation_graphs_with_stable_names() {
    let spec = "conv(1,8,k=3,p=1) # the stem\n\
                res(conv(8,8,k=3,p=1) bn relu6 res(conv(8,8,k=1)), shortcut=bn)\n\
                cat(conv(8,4,k=1) | | maxpool(3,s=1,p=1) cat(relu | conv(8,2,k=1))) relu";
    let g = parse_layers(spec, &[1, 6, 6]).expect("spec");
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0",
            "1.body.0",
            "1.body.1",
            "1.body.2",
            "1.body.3.body.0",
            "1.body.3.add",
            "1.shortcut.0",
            "1.add",
            "2.branches.0.0",
            "2.branches.2.0",
            "2.branches.2.1.branches.0.0",
            "2.branches.2.1.branches.1.0",
            "2.branches.2.1.cat",
            "2.cat",
            "3",
        ]
    );
    let shapes = g.shapes(2).expect("shapes");
    // 4 + 8 (the empty branch: the block's input) + 8 + 2 channels.
    assert_eq!(shapes.last().expect("output"), &[2, 22, 6, 6]);
    let params: Vec<&str> = g.params.iter().map(|p| p.name.as_str()).collect();
    assert!(params.contains(&"1.body.3.body.0.weight") && params.contains(&"1.shortcut.0.bias"));
    assert!(params.contains(&"2.branches.2.1.branches.1.0.weight"), "{params:?}");
    // Appending a layer renames nothing.
    let longer = parse_layers(&format!("{spec} conv(22,4,k=1)"), &[1, 6, 6]).expect("spec");
    assert!(g.params.iter().zip(&longer.params).all(|(a, b)| a.name == b.name));
}

/// The message of the error parsing `spec` for a 1x8x8 input.
fn spec_error(spec: &str) -> String {
    match parse_layers(spec, &[1, 8, 8]) {
        Ok(_) => panic!("{spec:?} parsed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn spec_branches_that_disagree_and_bad_blocks_are_errors_at_the_token() {
    let e = spec_error("conv(1,8,k=3,p=1) res(conv(8,16,k=3,p=1))");
    assert!(
        e.contains("layer 1.add") && e.contains("[1, 16, 8, 8]") && e.contains("[1, 8, 8, 8]"),
        "{e}"
    );
    assert!(e.contains("column 19") && e.contains(&"^".repeat(23)), "{e}");
    let e = spec_error("cat(conv(1,4,k=3) | conv(1,4,k=3,p=1))");
    assert!(
        e.contains("layer 0.cat") && e.contains("[1, 4, 6, 6]") && e.contains("[1, 4, 8, 8]"),
        "{e}"
    );
    let e = spec_error("conv(1,8,k=3)\nres(conv(8,8,k=3,p=1)");
    assert!(e.contains("never closed") && e.contains("line 2, column 4"), "{e}");
    assert!(spec_error("relu | relu").contains("| separates the branches of cat"));
    assert!(spec_error("relu shortcut=relu").contains("shortcut= belongs in res"));
    assert!(spec_error("res(relu, shortcut=relu, shortcut=relu)").contains("one shortcut"));
    assert!(spec_error("res()").contains("res(...) needs layers"));
    assert!(spec_error("res relu").contains("res is a block"));
    assert!(spec_error("relu )").contains("unmatched parenthesis"));
    assert!(spec_error("res(conv(1,2,k=1, shortcut=relu))").contains("no argument"));
}

#[test]
fn an_add_of_different_shapes_names_the_node_and_the_shapes() {
    let mut g = Graph::new(&[3, 8, 8]);
    g.push("conv", Layer::conv2d(3, 4, 3, ConvOptions::default())).expect("conv");
    let e = g.push_from("sum", Layer::Add, &["conv", "input"]).expect_err("add").to_string();
    assert!(
        e.contains("layer sum") && e.contains("[1, 4, 6, 6]") && e.contains("[1, 3, 8, 8]"),
        "{e}"
    );
    assert_eq!(g.nodes.len(), 1, "a failed push leaves the graph as it was");
    let e = g.push_from("x", Layer::Relu, &["nothing"]).expect_err("unknown").to_string();
    assert!(e.contains("no earlier node named \"nothing\""), "{e}");
    assert!(g.push("conv", Layer::Relu).is_err(), "names are unique");
}

#[test]
fn resnet18_and_mobilenet_v2_summaries_match_torchvision() {
    for (name, params, buffers, macs) in [
        ("resnet18", 11_689_512, 11_699_132 - 11_689_512, 1_814_073_344u64),
        ("mobilenet_v2", 3_504_872, 3_539_036 - 3_504_872, 300_774_272),
    ] {
        let g = models::build(name, &ModelConfig::default_for(name)).expect("model");
        let s = summarize(&g, 1).expect("summary");
        assert_eq!(s.trainable_params, params, "{name}");
        assert_eq!(s.buffer_elements, buffers, "{name}: running statistics and counts");
        assert_eq!(s.macs, macs, "{name}: conv and linear MACs at 224x224 (torch hooks)");
    }
    // ResNet-18's receptive field, the largest over the residual paths: 435 pixels.
    let g = models::build("resnet18", &ModelConfig::default_for("resnet18")).expect("model");
    let s = summarize(&g, 1).expect("summary");
    let last = s.layers.iter().find(|l| l.name == "layer4.1.add").expect("last add");
    assert_eq!(last.receptive_field.as_deref(), Some(&[435.0, 435.0][..]));
    assert_eq!(last.jump.as_deref(), Some(&[32.0, 32.0][..]));
    // --classes and the input's channels adapt the first and last layers.
    let config = ModelConfig { input: [1, 32, 32], num_classes: 10 };
    let g = models::build("mobilenet_v2", &config).expect("model");
    let s = summarize(&g, 1).expect("summary");
    assert_eq!(s.layers.last().expect("fc").output_shape, [1, 10]);
    assert_eq!(g.params[0].spec.shape, [32, 1, 3, 3]);
}
