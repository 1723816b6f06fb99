//! A real-time style loop: every frame the host animates a texture in its own compute shader,
//! gconv converts the texture to a tensor and applies Sobel filters (a 1 -> 2 channel conv2d)
//! inside the host's command encoder, and the host copies the gradients into its own buffer.
//! One submission per frame; the loop never waits for the GPU until the end, where it reports
//! frames per second and checks the last frame against the CPU reference (gconv-ref).
//!
//! ```text
//! cargo run -p gconv --example sobel_loop -- [--frames 120] [--size 256]
//! ```

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use gconv::nn::{Graph, Layer, Model, Session, SessionInput};
use gconv::ops::ConvOptions;
use gconv::wgpu;

/// The host's animation: moving rings and a bar, written into an rgba8 storage texture.
const ANIMATE: &str = r#"
@group(0) @binding(0) var<uniform> frame: vec4<f32>;
@group(0) @binding(1) var target_texture: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(8, 8)
fn animate(@builtin(global_invocation_id) id: vec3<u32>) {
    let size = textureDimensions(target_texture);
    if id.x >= size.x || id.y >= size.y {
        return;
    }
    let t = frame.x;
    let p = vec2<f32>(f32(id.x), f32(id.y)) / f32(size.x);
    let c = vec2<f32>(0.5 + 0.25 * cos(t * 0.05), 0.5 + 0.25 * sin(t * 0.07));
    let rings = 0.5 + 0.5 * sin(40.0 * length(p - c));
    let bar = select(0.0, 1.0, abs(p.x - fract(t * 0.01)) < 0.05);
    textureStore(target_texture, id.xy, vec4<f32>(rings, bar, 1.0 - rings, 1.0));
}
"#;

const SOBEL_X: [f32; 9] = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
const SOBEL_Y: [f32; 9] = [-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0];

fn args() -> Result<(u32, u32)> {
    let (mut frames, mut size) = (120u32, 256u32);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--frames" => frames = value.parse().context("--frames takes a number")?,
            "--size" => size = value.parse().context("--size takes a number")?,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if frames == 0 || size < 8 {
        bail!("--frames must be at least 1 and --size at least 8");
    }
    Ok((frames, size))
}

fn main() -> Result<()> {
    let (frames, size) = args()?;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
        .context("no GPU adapter (install mesa-vulkan-drivers for lavapipe)")?;
    let (device, queue) = pollster::block_on(adapter.request_device(&Default::default()))?;
    println!("adapter: {}", adapter.get_info().name);

    // The host's texture, its animation pipeline and the buffer it renders the edges from.
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("host frame"),
        size: wgpu::Extent3d { width: size, height: size, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let frame_uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("frame"),
        size: 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("animate"),
        source: wgpu::ShaderSource::Wgsl(ANIMATE.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("animate"),
        layout: None,
        module: &module,
        entry_point: Some("animate"),
        compilation_options: Default::default(),
        cache: None,
    });
    let view = texture.create_view(&Default::default());
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("animate"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: frame_uniform.as_entire_binding() },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: wgpu::BindingResource::TextureView(&view),
            },
        ],
    });
    let plane = u64::from(size) * u64::from(size);
    let edges = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host edges"),
        size: 2 * plane * 4,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });

    // gconv: a one-layer model, Conv2d(1, 2, 3, padding=1, bias=False) holding Sobel x and y.
    let ctx = gconv::Context::from_wgpu(device.clone(), queue.clone())?;
    let (s, side) = (size as usize, size as usize);
    let mut graph = Graph::new(&[1, s, side]);
    graph.push(
        "sobel",
        Layer::Conv {
            dims: 2,
            in_channels: 1,
            out_channels: 2,
            kernel_size: 3.into(),
            options: ConvOptions::default().padding(1),
            bias: false,
        },
    )?;
    let mut model = Model::from_graph(&ctx, "sobel", graph, 0)?;
    let weights: Vec<f32> = SOBEL_X.iter().chain(&SOBEL_Y).copied().collect();
    model.load_state_dict(&[("sobel.weight".into(), vec![2, 1, 3, 3], weights.clone())])?;
    let mut session = Session::new(model, 1)?;

    let start = Instant::now();
    for f in 0..frames {
        queue.write_buffer(&frame_uniform, 0, bytemuck::cast_slice(&[f as f32, 0.0, 0.0, 0.0]));
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(size.div_ceil(8), size.div_ceil(8), 1);
        }
        let input = SessionInput::Texture { texture: &texture, mean: 0.0, std: 1.0 };
        session.record(&mut encoder, input)?;
        session.copy_logits_to(&mut encoder, &edges, 0)?;
        queue.submit([encoder.finish()]);
    }
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{frames} frames of {size}x{size}: {:.1} frames/s ({:.2} ms per frame)",
        f64::from(frames) / seconds,
        1e3 * seconds / f64::from(frames)
    );

    // Check the last frame: the texture's texels, grey as gconv converts them, through
    // gconv-ref's convolution.
    let texels = read_texture(&device, &queue, &texture, size)?;
    let grey: Vec<f64> = texels
        .chunks(4)
        .map(|t| {
            let [r, g, b] = [t[0], t[1], t[2]].map(|v| f64::from(v) / 255.0);
            0.2126 * r + 0.7152 * g + 0.0722 * b
        })
        .collect();
    let x = gconv_ref::Array::new(&[1, 1, s, side], grey);
    let w = gconv_ref::Array::from_f32(&[2, 1, 3, 3], &weights);
    let attrs = gconv_ref::ConvAttrs {
        stride: vec![1, 1],
        padding: vec![(1, 1), (1, 1)],
        dilation: vec![1, 1],
        groups: 1,
    };
    let want = gconv_ref::conv_forward(&x, &w, None, &attrs);
    let got = read_buffer(&device, &queue, &edges)?;
    let worst =
        got.iter().zip(&want.data).map(|(g, r)| (f64::from(*g) - r).abs()).fold(0.0, f64::max);
    println!("last frame: max |gpu - cpu reference| = {worst:.2e} over {} values", got.len());
    if worst > 1e-4 {
        bail!("the GPU's Sobel output differs from the CPU reference by {worst:.2e}");
    }
    println!("the Sobel output matches the CPU reference");
    Ok(())
}

fn read_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    size: u32,
) -> Result<Vec<u8>> {
    let row = (size * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
        * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("texture readback"),
        size: u64::from(row * size),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row),
                rows_per_image: Some(size),
            },
        },
        texture.size(),
    );
    queue.submit([encoder.finish()]);
    let bytes = map(device, &staging)?;
    Ok(bytes.chunks(row as usize).flat_map(|r| r[..size as usize * 4].to_vec()).collect())
}

fn read_buffer(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    buffer: &wgpu::Buffer,
) -> Result<Vec<f32>> {
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("edges readback"),
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    queue.submit([encoder.finish()]);
    Ok(bytemuck::cast_slice(&map(device, &staging)?).to_vec())
}

fn map(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
    let slice = buffer.slice(..);
    slice.map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let view = slice.get_mapped_range().map_err(|e| anyhow::anyhow!("mapping failed: {e:?}"))?;
    let bytes = view.to_vec();
    drop(view);
    buffer.unmap();
    Ok(bytes)
}
