//! A headless host application that owns its wgpu device: its own compute shader draws a digit
//! into a storage buffer, and gconv runs a trained SimpleCNN on that buffer inside the host's
//! command encoder. Nothing is read back until the final logits.
//!
//! ```text
//! cargo run -p gconv --example headless_digit -- [--checkpoint FILE] [--digit 7] [--save-image digit.png]
//! ```
//!
//! `--save-image` writes the drawn digit as a PNG (after the prediction), so `gconv predict`
//! can be run on the same image; `cargo xtask test` checks that both predict the same class.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use gconv::nn::{Model, ModelConfig, Session, SessionInput, checkpoint};
use gconv::wgpu;
use wgpu::util::DeviceExt;

/// The host's shader: thick strokes of a digit on a 28x28 canvas, anti-aliased, quantised to
/// 8 bits (as an image file would hold them), then normalised as MNIST's models expect.
const DRAW: &str = r#"
struct Strokes { count: u32, pad0: u32, pad1: u32, pad2: u32, seg: array<vec4<f32>, 8> }
@group(0) @binding(0) var<uniform> strokes: Strokes;
@group(0) @binding(1) var<storage, read_write> image: array<f32>;

fn segment_distance(p: vec2<f32>, a: vec2<f32>, b: vec2<f32>) -> f32 {
    let ab = b - a;
    let t = clamp(dot(p - a, ab) / max(dot(ab, ab), 1e-6), 0.0, 1.0);
    return length(p - (a + t * ab));
}

@compute @workgroup_size(28)
fn draw(@builtin(global_invocation_id) id: vec3<u32>) {
    let p = vec2<f32>(f32(id.x) + 0.5, f32(id.y) + 0.5);
    var d = 1e9;
    for (var i = 0u; i < strokes.count; i++) {
        let s = strokes.seg[i];
        d = min(d, segment_distance(p, s.xy, s.zw));
    }
    let ink = clamp(2.2 - d, 0.0, 1.0);
    let q = round(ink * 255.0) / 255.0;
    image[id.y * 28u + id.x] = (q - 0.1307) / 0.3081;
}
"#;

/// Line segments (x0, y0, x1, y1) in pixels for each digit the example can draw.
fn strokes(digit: u32) -> Result<Vec<[f32; 4]>> {
    Ok(match digit {
        1 => vec![[14.0, 5.0, 14.0, 23.0], [14.0, 5.0, 11.0, 8.0]],
        4 => vec![[17.0, 5.0, 8.0, 17.0], [8.0, 17.0, 21.0, 17.0], [17.0, 5.0, 17.0, 23.0]],
        7 => vec![[8.0, 6.0, 20.0, 6.0], [20.0, 6.0, 12.0, 23.0]],
        _ => bail!("--digit takes 1, 4 or 7"),
    })
}

struct Args {
    checkpoint: PathBuf,
    digit: u32,
    save_image: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        checkpoint: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/checkpoints/simplecnn.safetensors"),
        digit: 7,
        save_image: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--checkpoint" => a.checkpoint = value()?.into(),
            "--digit" => a.digit = value()?.parse().context("--digit takes a number")?,
            "--save-image" => a.save_image = Some(value()?.into()),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = args()?;
    // The host's own device, as a renderer or game would create it.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .context("no GPU adapter (install mesa-vulkan-drivers for lavapipe)")?;
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("host"),
            ..Default::default()
        }))?;
    println!("adapter: {}", adapter.get_info().name);

    // The host's buffer and the shader that fills it.
    let image = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host image"),
        size: 28 * 28 * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let segments = strokes(args.digit)?;
    let mut uniform = vec![segments.len() as u32, 0, 0, 0];
    for i in 0..8 {
        let s = segments.get(i).copied().unwrap_or_default();
        uniform.extend(s.map(f32::to_bits));
    }
    let strokes_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("strokes"),
        contents: bytemuck::cast_slice(&uniform),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("draw"),
        source: wgpu::ShaderSource::Wgsl(DRAW.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("draw"),
        layout: None,
        module: &module,
        entry_point: Some("draw"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("draw"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: strokes_buffer.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: image.as_entire_binding() },
        ],
    });

    // gconv on the host's device: a trained SimpleCNN, compiled once for batch 1.
    let ctx = gconv::Context::from_wgpu(device.clone(), queue.clone())?;
    let mut model = Model::builtin(&ctx, "simplecnn", &ModelConfig::default_for("simplecnn"), 0)?;
    model.load_state_dict(&checkpoint::load(&args.checkpoint)?)?;
    let mut session = Session::new(model, 1)?;
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("logits readback"),
        size: 10 * 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });

    // One encoder: the host's pass, gconv's forward pass, the copy of the logits; one submit.
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(1, 28, 1);
    }
    session.record(&mut encoder, SessionInput::Buffer { buffer: &image, offset: 0 })?;
    session.copy_logits_to(&mut encoder, &readback, 0)?;
    queue.submit([encoder.finish()]);

    let logits: Vec<f32> = read(&device, &readback)?;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|v| (v - max).exp()).sum();
    let best = (0..10).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
    println!("drew a {}; logits {logits:.2?}", args.digit);
    println!("prediction: class {best} ({:.1}%)", 100.0 * (logits[best] - max).exp() / sum);

    if let Some(path) = &args.save_image {
        // Only now, for the comparison with `gconv predict`: the drawn image back to 8 bits.
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("image readback"),
            size: image.size(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&image, 0, &staging, 0, image.size());
        queue.submit([encoder.finish()]);
        let values: Vec<f32> = read(&device, &staging)?;
        let pixels: Vec<u8> =
            values.iter().map(|v| ((v * 0.3081 + 0.1307) * 255.0).round() as u8).collect();
        image::GrayImage::from_raw(28, 28, pixels)
            .context("image size")?
            .save(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("saved the drawn digit to {}", path.display());
    }
    Ok(())
}

/// Maps a MAP_READ buffer and returns its f32 values.
fn read(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Result<Vec<f32>> {
    let slice = buffer.slice(..);
    slice.map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let view = slice.get_mapped_range().map_err(|e| anyhow::anyhow!("mapping failed: {e:?}"))?;
    let values = bytemuck::cast_slice(&view).to_vec();
    drop(view);
    buffer.unmap();
    Ok(values)
}
