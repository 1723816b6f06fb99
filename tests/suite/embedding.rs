//! gconv inside a host application: a context on the host's device, sessions that read the
//! host's buffers and textures and record into its encoder, eager operators on host buffers,
//! and the errors at that boundary.

use gconv::nn::{Graph, Layer, Model, ModelConfig, Session, SessionInput};
use gconv::ops::{self, ConvOptions};
use gconv::wgpu::{self, util::DeviceExt};
use gconv::{Context, DType, Error, Tensor};

/// A device of the host's own, with wgpu's default limits.
fn host_device(limits: wgpu::Limits) -> (wgpu::Device, wgpu::Queue) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&Default::default())).expect("an adapter");
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host"),
        required_limits: limits,
        ..Default::default()
    }))
    .expect("a device")
}

fn host_buffer(device: &wgpu::Device, data: &[f32], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("host data"),
        contents: bytemuck::cast_slice(data),
        usage,
    })
}

fn lenet(ctx: &Context) -> Model {
    Model::builtin(ctx, "lenet5", &ModelConfig::default_for("lenet5"), 3).expect("lenet5")
}

fn inputs(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect()
}

#[test]
fn a_session_on_the_hosts_buffer_matches_predict_and_leaves_submission_to_the_host() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue.clone()).expect("context");
    // The host's device: gconv leaves its driver's threads alone.
    assert!(ctx.pinned_threads().is_empty());
    let per = 28 * 28;
    let x = inputs(3 * per + 5);
    // Two samples starting 5 floats into the host's buffer.
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buffer = host_buffer(&device, &x, usage);
    let mut reference = lenet(&ctx);
    let want = reference.predict(&x[5..5 + 2 * per], 2).expect("predict").to_vec().expect("read");
    let mut session = Session::new(lenet(&ctx), 2).expect("session");
    assert_eq!(session.input_shape(), [2, 1, 28, 28]);
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host logits"),
        size: 4 * 24,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    session
        .record(&mut encoder, SessionInput::Buffer { buffer: &buffer, offset: 20 })
        .expect("rec");
    session.copy_logits_to(&mut encoder, &out, 16).expect("copy");
    // Nothing has run yet: the host submits.
    queue.submit([encoder.finish()]);
    let got = session.logits().expect("logits").to_vec().expect("read");
    assert_eq!(got, want, "session logits differ from Model::predict");
    let copied = Tensor::from_buffer(&ctx, &out, &[24], DType::F32).expect("view");
    assert_eq!(&copied.to_vec().expect("read")[4..24], &want[..], "logits copied at offset 16");
    let no_storage = host_buffer(&device, &x, wgpu::BufferUsages::COPY_SRC);
    let e = Tensor::from_buffer(&ctx, &no_storage, &[4], DType::F32);
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("STORAGE"))
    );
}

#[test]
fn a_session_runs_a_branching_model_and_shows_its_join_nodes() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue.clone()).expect("context");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints");
    let spec = std::fs::read_to_string(dir.join("branches.spec")).expect("model file");
    let state = gconv::nn::checkpoint::load(&dir.join("branches.safetensors")).expect("weights");
    let model = || {
        let graph = gconv::nn::parse_layers(&spec, &[1, 28, 28]).expect("spec");
        let mut m = Model::from_graph(&ctx, "branches", graph, 0).expect("model");
        m.load_state_dict(&state).expect("load");
        m
    };
    let x = inputs(2 * 28 * 28);
    let want = model().predict(&x, 2).expect("predict").to_vec().expect("read");
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buffer = host_buffer(&device, &x, usage);
    let mut session = Session::with_feature_maps(model(), 2).expect("session");
    let mut encoder = device.create_command_encoder(&Default::default());
    session.record(&mut encoder, SessionInput::Buffer { buffer: &buffer, offset: 0 }).expect("rec");
    queue.submit([encoder.finish()]);
    let got = session.logits().expect("logits").to_vec().expect("read");
    let close = got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()));
    assert!(close, "session {got:?} vs predict {want:?}");
    // The residual sum and the concatenation are values like any other.
    let sum = session.feature_map("3.add").expect("residual sum");
    assert_eq!(sum.shape(), [2, 16, 28, 28]);
    let cat = session.feature_map("6.cat").expect("concatenation");
    assert_eq!(cat.shape(), [2, 40, 14, 14]);
    // Its last 16 channels are the block's input (the empty branch): the max-pool's output.
    let (cat, pool) = (cat.to_vec().expect("read"), session.feature_map("5").expect("pool"));
    let pool = pool.to_vec().expect("read");
    let plane = 14 * 14;
    for n in 0..2 {
        let from_cat = &cat[(n * 40 + 24) * plane..(n * 40 + 40) * plane];
        assert_eq!(from_cat, &pool[n * 16 * plane..(n + 1) * 16 * plane], "sample {n}");
    }
}

#[test]
fn session_inputs_that_do_not_fit_are_errors() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue).expect("context");
    let mut session = Session::new(lenet(&ctx), 1).expect("session");
    let mut encoder = device.create_command_encoder(&Default::default());
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let small = host_buffer(&device, &inputs(28 * 28 - 1), usage);
    let e = session.record(&mut encoder, SessionInput::Buffer { buffer: &small, offset: 0 });
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("too small")),
        "{e:?}"
    );
    let exact = host_buffer(&device, &inputs(28 * 28 + 1), usage);
    let e = session.record(&mut encoder, SessionInput::Buffer { buffer: &exact, offset: 2 });
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("multiple of 4")),
        "{e:?}"
    );
    let e = session.record(&mut encoder, SessionInput::Buffer { buffer: &exact, offset: 8 });
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("too small")),
        "{e:?}"
    );
    let no_copy = host_buffer(&device, &inputs(28 * 28), wgpu::BufferUsages::STORAGE);
    let e = session.record(&mut encoder, SessionInput::Buffer { buffer: &no_copy, offset: 0 });
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("COPY_SRC")),
        "{e:?}"
    );
    let texture = |format| {
        device.create_texture(&wgpu::TextureDescriptor {
            label: None,
            size: wgpu::Extent3d { width: 8, height: 8, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        })
    };
    let depth = texture(wgpu::TextureFormat::Rg16Float);
    let e = session
        .record(&mut encoder, SessionInput::Texture { texture: &depth, mean: 0.0, std: 1.0 });
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("Rg16Float is not supported")),
        "{e:?}"
    );
    let rgba = texture(wgpu::TextureFormat::Rgba8Unorm);
    let e =
        session.record(&mut encoder, SessionInput::Texture { texture: &rgba, mean: 0.0, std: 0.0 });
    assert!(e.is_err(), "std 0 accepted");
    let mut batch2 = Session::new(lenet(&ctx), 2).expect("session");
    let e =
        batch2.record(&mut encoder, SessionInput::Texture { texture: &rgba, mean: 0.0, std: 1.0 });
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("batch 1")),
        "{e:?}"
    );
    assert!(session.feature_map("conv1").is_err(), "an Eval session keeps no feature maps");
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 36,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    assert!(session.copy_logits_to(&mut encoder, &out, 0).is_err(), "36 bytes hold 10 logits");
}

/// Uploads `texels` (rows of `width` texels of `bytes` bytes) into a new texture.
fn upload_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    format: wgpu::TextureFormat,
    (width, height, bytes): (u32, u32, u32),
    texels: &[u8],
) -> wgpu::Texture {
    device.create_texture_with_data(
        queue,
        &wgpu::TextureDescriptor {
            label: Some("host texture"),
            size: wgpu::Extent3d { width, height, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        },
        wgpu::util::TextureDataOrder::LayerMajor,
        &texels[..(width * height * bytes) as usize],
    )
}

#[test]
fn textures_are_converted_resized_and_normalised_on_the_gpu() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue.clone()).expect("context");
    // An identity model: one 1x1 conv with weight 1 shows the converted input as its output.
    let identity = |channels: usize, h: usize, w: usize| {
        let mut g = Graph::new(&[channels, h, w]);
        let layer = Layer::Conv {
            dims: 2,
            in_channels: channels,
            out_channels: channels,
            kernel_size: 1.into(),
            options: ConvOptions::default().groups(channels),
            bias: false,
        };
        g.push("id", layer).expect("layer");
        let mut m = Model::from_graph(&ctx, "identity", g, 0).expect("model");
        let w = vec![1.0; channels];
        m.load_state_dict(&[("id.weight".into(), vec![channels, 1, 1, 1], w)]).expect("load");
        Session::with_feature_maps(m, 1).expect("session")
    };
    let (w, h) = (6u32, 4u32);
    let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 29 % 256) as u8).collect();
    let run = |session: &mut Session, texture: &wgpu::Texture, mean: f32, std: f32| {
        let mut encoder = device.create_command_encoder(&Default::default());
        session.record(&mut encoder, SessionInput::Texture { texture, mean, std }).expect("record");
        queue.submit([encoder.finish()]);
        session.feature_map("input").expect("input").to_vec().expect("read")
    };
    // RGB at the texture's size: texel / 255, normalised.
    let texture =
        upload_texture(&device, &queue, wgpu::TextureFormat::Rgba8Unorm, (w, h, 4), &rgba);
    let mut rgb = identity(3, h as usize, w as usize);
    let got = run(&mut rgb, &texture, 0.5, 0.25);
    for c in 0..3 {
        for i in 0..(w * h) as usize {
            let want = (f32::from(rgba[i * 4 + c]) / 255.0 - 0.5) / 0.25;
            assert!((got[c * (w * h) as usize + i] - want).abs() < 1e-5, "rgb c{c} i{i}");
        }
    }
    let logits = rgb.logits().expect("logits").to_vec().expect("read");
    assert_eq!(logits, got, "the identity model's output is its input");
    // Grey, resized 6x4 -> 3x2 with bilinear weights, from an R8 texture (red only).
    let red: Vec<u8> = rgba.iter().step_by(4).copied().collect();
    let r8 = upload_texture(&device, &queue, wgpu::TextureFormat::R8Unorm, (w, h, 1), &red);
    let mut grey = identity(1, 2, 3);
    let got = run(&mut grey, &r8, 0.0, 1.0);
    let want = gconv::data::resize(&red, h as usize, w as usize, 2, 3);
    for (g, r) in got.iter().zip(&want) {
        assert!((g - r / 255.0).abs() < 1e-5, "resized grey {got:?} vs {want:?}");
    }
    // Rgba32Float texels are taken as they are; grey is BT.709 luma.
    let floats: Vec<f32> = (0..w * h * 4).map(|i| i as f32 * 0.01 - 0.3).collect();
    let f32_texture = upload_texture(
        &device,
        &queue,
        wgpu::TextureFormat::Rgba32Float,
        (w, h, 16),
        bytemuck::cast_slice(&floats),
    );
    let mut luma = identity(1, h as usize, w as usize);
    let got = run(&mut luma, &f32_texture, 0.0, 2.0);
    for (i, g) in got.iter().enumerate() {
        let t = &floats[i * 4..i * 4 + 3];
        let want = (0.2126 * t[0] + 0.7152 * t[1] + 0.0722 * t[2]) / 2.0;
        assert!((g - want).abs() < 1e-5, "luma {i}: {g} vs {want}");
    }
}

#[test]
fn eager_operators_run_on_host_buffers() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue).expect("context");
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let x = inputs(2 * 3 * 9 * 9);
    let w = inputs(4 * 3 * 3 * 3);
    let xb = host_buffer(&device, &x, usage);
    let wb = host_buffer(&device, &w, usage);
    let xt = Tensor::from_buffer(&ctx, &xb, &[2, 3, 9, 9], DType::F32).expect("x");
    let wt = Tensor::from_buffer(&ctx, &wb, &[4, 3, 3, 3], DType::F32).expect("w");
    let o = ConvOptions::default().padding(1).stride(2);
    let y = ops::max_pool2d(
        &ops::conv2d(&xt, &wt, None, &o).expect("conv"),
        &ops::MaxPoolOptions::new(2),
    )
    .expect("pool");
    let reference = {
        let xr = Tensor::from_slice(&ctx, &x, &[2, 3, 9, 9]).expect("x");
        let wr = Tensor::from_slice(&ctx, &w, &[4, 3, 3, 3]).expect("w");
        ops::max_pool2d(
            &ops::conv2d(&xr, &wr, None, &o).expect("conv"),
            &ops::MaxPoolOptions::new(2),
        )
        .expect("pool")
    };
    // A host buffer whose size is not whole texels cannot be copied into a texture, so its
    // convolution may take the im2col kernel while the reference takes the tiled one: equal up
    // to the order of the sums.
    let (got, want) = (y.to_vec().expect("read"), reference.to_vec().expect("read"));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{got:?} vs {want:?}");
    }
    let e = Tensor::from_buffer(&ctx, &xb, &[2, 3, 9, 10], DType::F32);
    assert!(
        matches!(&e, Err(Error::InvalidArgument { message, .. }) if message.contains("too small")),
        "{e:?}"
    );
}

/// Tensors over host buffers without COPY_SRC cannot be copied into textures, so the 3x3 tile
/// kernels (few input channels; depthwise) and the depthwise kernels (stride 2) read them
/// from storage buffers instead: the same sums as over texture copies, so the results must
/// agree to rounding.
#[test]
fn tile_kernels_read_buffers_that_cannot_be_copied() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue).expect("context");
    for (xs, ws, o) in [
        ([2, 3, 9, 10], [4, 3, 3, 3], ConvOptions::default().padding(1)),
        ([2, 4, 7, 9], [4, 1, 3, 3], ConvOptions::default().padding(2).groups(4)),
        ([2, 4, 9, 11], [4, 1, 3, 3], ConvOptions::default().padding(1).stride(2).groups(4)),
    ] {
        let (x, w) = (inputs(xs.iter().product()), inputs(ws.iter().product()));
        let storage_only = |data: &[f32], shape: &[usize]| {
            let buffer = host_buffer(&device, data, wgpu::BufferUsages::STORAGE);
            Tensor::from_buffer(&ctx, &buffer, shape, DType::F32).expect("tensor")
        };
        let copied = |data: &[f32], shape: &[usize]| Tensor::from_slice(&ctx, data, shape);
        let (xt, wt) = (storage_only(&x, &xs), storage_only(&w, &ws));
        let (xr, wr) = (copied(&x, &xs).expect("x"), copied(&w, &ws).expect("w"));
        let y = ops::conv2d(&xt, &wt, None, &o).expect("conv");
        let want = ops::conv2d(&xr, &wr, None, &o).expect("conv");
        let gy = copied(&inputs(want.numel()), want.shape()).expect("grad_y");
        let g = ops::conv2d_backward(&gy, &xt, &wt, false, &o).expect("backward");
        let gw = ops::conv2d_backward(&gy, &xr, &wr, false, &o).expect("backward");
        for (what, got, want) in [
            ("output", &y, &want),
            ("grad_input", &g.grad_input, &gw.grad_input),
            ("grad_weight", &g.grad_weight, &gw.grad_weight),
        ] {
            let (got, want) = (got.to_vec().expect("read"), want.to_vec().expect("read"));
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{xs:?} {what}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn a_device_below_gconvs_limits_is_refused_by_name() {
    let (device, queue) = host_device(wgpu::Limits::downlevel_defaults());
    match Context::from_wgpu(device, queue) {
        Err(Error::Limit { name, required, actual }) => {
            assert_eq!((name, required, actual), ("max_storage_buffers_per_shader_stage", 8, 4));
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn a_lost_device_gives_errors_not_panics() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue).expect("context");
    let model = lenet(&ctx);
    device.destroy();
    let e = Session::new(model, 1);
    assert!(e.is_err(), "a session on a destroyed device");
}

#[test]
fn a_session_of_an_imported_onnx_model_records_into_the_hosts_encoder() {
    let (device, queue) = host_device(wgpu::Limits::default());
    let ctx = Context::from_wgpu(device.clone(), queue.clone()).expect("context");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx");
    let imported = gconv::onnx::load(&dir.join("inverted_residual.onnx"), None).expect("import");
    let (expected, _) =
        gconv_tests::golden::read_tensors(&dir.join("inverted_residual.expected.safetensors"))
            .expect("expected");
    let f32s = |name: &str| match expected.get(name) {
        Some((shape, gconv_tests::golden::Data::F32(v))) => (shape.clone(), v.clone()),
        _ => panic!("no {name}"),
    };
    let ((shape, x), (_, want)) = (f32s("input"), f32s("output"));
    let mut session = imported.session(&ctx, shape[0]).expect("session");
    assert_eq!(session.input_shape(), shape);
    let buffer = host_buffer(&device, &x, wgpu::BufferUsages::COPY_SRC);
    let mut encoder = device.create_command_encoder(&Default::default());
    session.record(&mut encoder, SessionInput::Buffer { buffer: &buffer, offset: 0 }).expect("rec");
    queue.submit([encoder.finish()]);
    let got = session.logits().expect("logits").to_vec().expect("read");
    let widen = |v: &[f32]| v.iter().map(|&f| f64::from(f)).collect::<Vec<_>>();
    let err = gconv_tests::compare::relative_error(&widen(&got), &widen(&want));
    assert!(err <= 1e-4, "relative L2 error {err:.3e} against PyTorch");
}

#[test]
fn work_is_timed_on_the_devices_clock_where_it_has_one() {
    // A host's device with timestamps: gconv reads them on GPUs, on a CPU adapter only when
    // forced (lavapipe's do not wait for earlier work); without the feature, never.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&Default::default())).expect("an adapter");
    let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_features: features,
        ..Default::default()
    }))
    .expect("a device");
    let ctx = Context::from_wgpu(device.clone(), queue).expect("context");
    let cpu = adapter.get_info().device_type == wgpu::DeviceType::Cpu;
    assert_eq!(ctx.device_clock(), !features.is_empty() && !cpu);
    ctx.force_device_clock();
    assert_eq!(ctx.device_clock(), !features.is_empty());

    let x = inputs(2 * 28 * 28);
    let buffer =
        host_buffer(&device, &x, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC);
    let want = lenet(&ctx).predict(&x, 2).expect("predict").to_vec().expect("read");
    let mut session = Session::new(lenet(&ctx), 2).expect("session");
    let input = SessionInput::Buffer { buffer: &buffer, offset: 0 };
    let times = ctx.time_on_device(3, |_, encoder| session.record(encoder, input)).expect("timed");
    match times {
        Some(t) => {
            assert_eq!(t.len(), 3);
            assert!(t.iter().all(|s| s.is_finite() && *s >= 0.0), "{t:?}");
            // The pieces ran.
            assert_eq!(session.logits().expect("logits").to_vec().expect("read"), want);
        }
        None => assert!(features.is_empty()),
    }
    if !features.is_empty() {
        let too_many = ctx.time_on_device(2049, |_, _| Ok(()));
        assert!(matches!(too_many, Err(Error::InvalidArgument { .. })), "{too_many:?}");
        let failed = ctx.time_on_device(2, |k, _| {
            if k == 1 {
                Err(Error::InvalidArgument { op: "test", message: "no".into() })
            } else {
                Ok(())
            }
        });
        assert!(matches!(failed, Err(Error::InvalidArgument { op: "test", .. })), "{failed:?}");
        // A profile's parts on the device's clock.
        let labels = [1, 2];
        let parts = lenet(&ctx).profile(&x, &labels, true, 1).expect("profile");
        assert!(parts.len() > 10 && parts.iter().all(|p| p.seconds >= 0.0), "{}", parts.len());
    }
}

/// A host may hand a session (or a model) to another thread, or share it behind an `Arc`.
#[test]
fn models_and_sessions_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
    check::<Session>();
    check::<Context>();
}
