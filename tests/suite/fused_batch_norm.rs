//! Batch norm in evaluation folded into the convolution before it: an inference plan runs
//! conv -> batch norm (-> ReLU, ReLU6 or hardtanh) as one convolution whose epilogue applies
//! each channel's scale and shift (written every step by `batch_norm_fold` from the running
//! statistics, batch norm's weight and bias and the convolution's bias) and the clamp. Its
//! outputs against gconv-ref's composition of the separate operators, on every context and
//! every kernel family that takes the epilogue; the runs that must not fuse; and new parameters
//! between two runs of the same plan.

use gconv::nn::{Model, parse_layers};
use gconv_ref::{Array, ConvAttrs};
use gconv_tests::compare::relative_error;
use rand::Rng;
use rand::rngs::SmallRng;

use super::common::{ctx, every_context, rng};

/// One convolution -> batch norm -> clamp run: its spec, its attributes for gconv-ref, and the
/// clamp's name in the spec ("" for none).
struct Case {
    conv: &'static str,
    input: [usize; 3],
    attrs: ConvAttrs,
    clamp: &'static str,
}

fn attrs(stride: usize, pad: usize, dilation: usize, groups: usize) -> ConvAttrs {
    ConvAttrs {
        stride: vec![stride; 2],
        padding: vec![(pad, pad); 2],
        dilation: vec![dilation; 2],
        groups,
    }
}

/// A convolution's kernel families on lavapipe's default context, each with a clamp:
/// the texture GEMM (1x1, strided, dilated and short M), the subgroup 3x3 kernel (and over
/// phase rows, a 7x7 stem),
/// the 3x3 tiles (grouped, and a first layer of 3 channels), the depthwise kernels (stride 1
/// and 2) and the direct kernel (grouped 5x5). Odd widths leave partial texels and row blocks.
fn cases() -> Vec<Case> {
    let case = |conv, input, attrs, clamp| Case { conv, input, attrs, clamp };
    vec![
        case("conv(8,12,k=1)", [8, 9, 11], attrs(1, 0, 1, 1), "relu6"),
        case("conv(6,40,k=3,s=2,p=1,bias=false)", [6, 13, 10], attrs(2, 1, 1, 1), ""),
        case("conv(5,20,k=3,p=2,d=2)", [5, 11, 9], attrs(1, 2, 2, 1), "relu"),
        case("conv(3,16,k=7,s=2,p=3,bias=false)", [3, 19, 17], attrs(2, 3, 1, 1), "relu"),
        case("conv(6,72,k=3,p=1,bias=false)", [6, 10, 13], attrs(1, 1, 1, 1), "relu"),
        case("conv(3,8,k=3,p=1)", [3, 12, 9], attrs(1, 1, 1, 1), "hardtanh(-0.5,0.75)"),
        case("conv(8,12,k=3,p=1,g=4)", [8, 9, 10], attrs(1, 1, 1, 4), "relu6"),
        case("conv(16,16,k=3,p=1,g=16,bias=false)", [16, 11, 14], attrs(1, 1, 1, 16), "relu6"),
        case("conv(16,16,k=3,s=2,p=1,g=16)", [16, 15, 13], attrs(2, 1, 1, 16), "relu6"),
        case("conv(8,12,k=5,p=2,g=2)", [8, 9, 7], attrs(1, 2, 1, 2), "relu"),
    ]
}

fn uniform(rng: &mut SmallRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Random parameters for every entry of `model`'s state dict: running variances in [0.5, 2),
/// batch norm's weights in [0.5, 1.5), everything else in [-1, 1).
fn randomize(model: &mut Model, rng: &mut SmallRng) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let state: Vec<_> = model
        .state_dict()
        .expect("state")
        .into_iter()
        .map(|(name, shape, _)| {
            let n = shape.iter().product::<usize>().max(1);
            let v = if name.ends_with("num_batches_tracked") {
                vec![0.0; n]
            } else if name.ends_with("running_var") {
                uniform(rng, n, 0.5, 2.0)
            } else if name.ends_with("1.weight") {
                uniform(rng, n, 0.5, 1.5)
            } else {
                uniform(rng, n, -1.0, 1.0)
            };
            (name, shape, v)
        })
        .collect();
    model.load_state_dict(&state).expect("load");
    state
}

/// gconv-ref's conv -> batch norm (evaluation) -> clamp with the parameters in `state`.
fn reference(case: &Case, state: &[(String, Vec<usize>, Vec<f32>)], x: &Array) -> Array {
    let get = |name: &str| state.iter().find(|(n, _, _)| n == name).map(|(_, s, v)| (s, v));
    let array = |name: &str| get(name).map(|(s, v)| Array::from_f32(s, v));
    let f64s = |name: &str| -> Vec<f64> {
        let (_, v) = get(name).unwrap_or_else(|| panic!("no {name}"));
        v.iter().map(|&f| f64::from(f)).collect()
    };
    let w = array("0.weight").expect("conv weight");
    let y = gconv_ref::conv_forward(x, &w, array("0.bias").as_ref(), &case.attrs);
    let [rm, rv, bw, bb] =
        ["running_mean", "running_var", "weight", "bias"].map(|p| f64s(&format!("1.{p}")));
    let bn = (Some(rm.as_slice()), Some(rv.as_slice()), Some(bw.as_slice()), Some(bb.as_slice()));
    let y = gconv_ref::batch_norm_forward(&y, bn.0, bn.1, bn.2, bn.3, false, 0.1, 1e-5).y;
    match case.clamp {
        "" => y,
        "relu" => gconv_ref::relu(&y),
        "relu6" => gconv_ref::relu6(&y),
        "hardtanh(-0.5,0.75)" => gconv_ref::hardtanh(&y, -0.5, 0.75),
        other => panic!("no reference for {other}"),
    }
}

/// Every case on every context against gconv-ref, twice with different parameters through the
/// same plan (the fold runs every step). Lavapipe's default context fuses every case; the
/// others run whatever their strategies choose, fused where that kernel takes the epilogue.
#[test]
fn conv_batch_norm_clamp_folded_matches_reference_on_every_context() {
    let batch = 3;
    let mut rng = rng(7);
    for case in cases() {
        let spec = format!("{} bn {}", case.conv, case.clamp);
        let mut shape = vec![batch];
        shape.extend(case.input);
        let x = uniform(&mut rng, shape.iter().product(), -1.0, 1.0);
        let xa = Array::from_f32(&shape, &x);
        for (name, c) in every_context() {
            let graph = parse_layers(&spec, &case.input).expect("spec");
            let mut model = Model::from_graph(c, "conv_bn", graph, 1).expect("model");
            let nodes = model.planned_nodes(batch, false).expect("plan");
            if name == "default" {
                assert_eq!(nodes.len(), 1, "{spec}: not folded on lavapipe: {nodes:?}");
            }
            for round in 0..2 {
                let state = randomize(&mut model, &mut rng);
                let want = reference(&case, &state, &xa);
                let got = model.predict(&x, batch).expect("predict");
                assert_eq!(got.shape(), want.shape.as_slice(), "{spec}");
                let got: Vec<f64> = got.to_vec().expect("read").iter().map(|&v| v.into()).collect();
                let err = relative_error(&got, &want.data);
                assert!(
                    err < 1e-5,
                    "{spec} on {name} ({} nodes), round {round}: {err:.3e} from the reference",
                    nodes.len()
                );
            }
            assert_eq!(model.planned_nodes(batch, false).expect("plan").len(), nodes.len());
        }
    }
}

/// What must not fold: training (batch norm normalises with the batch's statistics there), a
/// transposed convolution (its kernels take no such epilogue) and a convolution whose output
/// has a second reader (a residual add); batch norm in front of a clamp that another node also
/// reads folds without the clamp. The plan's first node, in inference and in training.
#[test]
fn conv_batch_norm_runs_that_cannot_fold_stay_separate() {
    let input = [4, 6, 7];
    let head = "gap flatten linear(3)";
    for (spec, infer, train) in [
        ("conv(4,4,k=3,p=1) bn relu", "0+1+2", "0"),
        ("convt(4,6,k=3,s=2,p=1) bn relu", "0", "0"),
        ("conv(4,4,k=3,p=1) res(bn) relu", "0", "0"),
        ("conv(4,4,k=3,p=1) bn res(relu)", "0+1", "0"),
    ] {
        let graph = parse_layers(&format!("{spec} {head}"), &input).expect("spec");
        let mut model = Model::from_graph(ctx(), "unfolded", graph, 1).expect("model");
        let nodes = model.planned_nodes(2, false).expect("plan");
        assert_eq!(nodes[0], infer, "{spec}: {nodes:?}");
        let nodes = model.planned_nodes(2, true).expect("training plan");
        assert_eq!(nodes[0], train, "{spec}: {nodes:?}");
    }
}
