//! The device context: adapter choice, the wgpu device and queue, the pipeline cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cpu_threads::{self, PinnedThread};
use crate::kernel::PipelineKey;
use crate::{Error, Result};

/// The environment variable that picks an adapter by index or by part of its name, like the
/// CLI's `--adapter` flag.
pub const ADAPTER_ENV: &str = "GCONV_ADAPTER";

/// A GPU device and queue with gconv's pipeline cache. Cheap to clone (an `Arc` inside); every
/// [`Tensor`](crate::Tensor) holds one.
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: Option<wgpu::AdapterInfo>,
    pub(crate) limits: wgpu::Limits,
    pub(crate) pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    pub(crate) modules: Mutex<HashMap<crate::kernel::Shader, wgpu::ShaderModule>>,
    /// Bound where a kernel declares an optional input (a bias) that the call does not have.
    pub(crate) dummy: wgpu::Buffer,
    /// A second placeholder, for read-write bindings in dispatches that also bind `dummy`
    /// read-only (wgpu refuses one buffer in both roles within a dispatch).
    pub(crate) dummy_rw: wgpu::Buffer,
    /// A 1x1 texture bound where a kernel's texture input or output goes unused.
    pub(crate) dummy_texture: wgpu::TextureView,
    pub(crate) poison_outputs: AtomicBool,
    pub(crate) conv_strategy: AtomicU8,
    /// A lower storage-binding limit than the device's (0: none), so tests can exercise the
    /// chunked paths of large tensors with small ones.
    pub(crate) binding_limit: AtomicU64,
    /// Time on a CPU adapter's timestamps too (see [`Context::force_device_clock`]).
    pub(crate) forced_clock: AtomicBool,
    pub(crate) gemm_strategy: AtomicU8,
    pub(crate) gemm_layout: AtomicU8,
    /// The device is a CPU adapter (from the device's own adapter info, so also for hosts'
    /// devices).
    pub(crate) cpu: bool,
    /// The device has wgpu's SUBGROUP feature with subgroups of exactly 8 lanes, which
    /// gemm_sg.wgsl's kernels assume (lavapipe on 256-bit SIMD).
    pub(crate) subgroup8: bool,
    /// Whether the device has wgpu's SHADER_INT64 (see `Context::uses_wide_stores`).
    pub(crate) int64: bool,
    /// Whether kernels may use subgroups where `subgroup8` allows (see
    /// [`Context::set_subgroups`]).
    pub(crate) subgroups_enabled: AtomicBool,
    /// What gconv has created and submitted so far (see [`Context::counters`]).
    pub(crate) counters: [AtomicU64; 5],
    /// The CPU adapter's threads pinned when the context opened it (see
    /// [`Context::pinned_threads`]).
    pub(crate) pinned: Vec<PinnedThread>,
}

/// Totals of what gconv has created and submitted on a context: a training step after the
/// first must add nothing but one submission (the executor's invariant, checked by a test).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Buffers created (tensors, uniforms, staging buffers).
    pub buffers: u64,
    /// Textures created (the tiled GEMM's packed operands).
    pub textures: u64,
    /// Bind groups created.
    pub bind_groups: u64,
    /// Command buffers submitted.
    pub submissions: u64,
    /// Bytes of every buffer and texture created (whether since freed or not): on a context
    /// that only trains one model, where plans keep everything they allocate, the peak of
    /// gconv's device memory.
    pub bytes: u64,
}

/// How convolutions run. The direct kernels are the simple, always-correct reference; the
/// im2col path (im2col, then the tiled GEMM with bias and ReLU fused) is chosen where it
/// applies (groups = 1, forward and backward of non-transposed convolutions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvStrategy {
    /// The fastest kernel that applies to each convolution: [`ConvStrategy::Tiled`] where its
    /// textures fit the device, else [`ConvStrategy::Im2col`], else [`ConvStrategy::Direct`].
    Auto,
    /// Always the direct kernels (one invocation per output element).
    Direct,
    /// im2col into a storage buffer, then the storage-buffer GEMM (`gemm.wgsl`), per sample.
    Im2col,
    /// im2col straight into the tiled GEMM's texture, the batch folded into the GEMM's
    /// columns, bias and ReLU applied as the output is written (`gemm_tex.wgsl`).
    Tiled,
}

impl ConvStrategy {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => ConvStrategy::Direct,
            2 => ConvStrategy::Im2col,
            3 => ConvStrategy::Tiled,
            _ => ConvStrategy::Auto,
        }
    }
}

/// Which kernel runs GEMMs (linear, matmul and the GEMMs inside convolutions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmStrategy {
    /// The tiled kernel where its textures fit the device, else the storage-buffer kernel.
    Auto,
    /// `gemm_tex.wgsl`: operands packed into textures, 16x16 (or 8x16, 4x16) blocks per
    /// invocation.
    Tiled,
    /// `gemm.wgsl`: operands read straight from storage buffers.
    Simple,
}

/// How the tiled GEMM ([`GemmStrategy::Tiled`]) blocks its work: what is fast on a CPU adapter
/// is slow on a GPU, and the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmLayout {
    /// [`GemmLayout::Registers`] on CPU adapters (lavapipe), [`GemmLayout::Workgroup`] on every
    /// other adapter.
    Auto,
    /// 16x16 (8x16, 4x16) blocks of C per invocation from texel fetches, no workgroup memory
    /// and no barriers (`gemm_tex_r16` ...): a CPU adapter's lanes are SIMD lanes, and its
    /// barriers switch fibers.
    Registers,
    /// 16x16 workgroups that stage each step of K in workgroup memory and compute 128x128
    /// (or 64x64) tiles of C, 8x8 (4x4) per invocation (`gemm_wg128`, `gemm_wg64`).
    Workgroup,
}

impl GemmLayout {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => GemmLayout::Registers,
            2 => GemmLayout::Workgroup,
            _ => GemmLayout::Auto,
        }
    }
}

impl GemmStrategy {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => GemmStrategy::Tiled,
            2 => GemmStrategy::Simple,
            _ => GemmStrategy::Auto,
        }
    }
}

/// How [`Context::with_options`] chooses its adapter and sets it up.
#[derive(Clone, Debug)]
pub struct ContextOptions {
    /// An adapter index (as [`adapters`] lists them) or a case-insensitive part of its name.
    /// `None`: the first of [`adapters`], which puts discrete GPUs first and CPU adapters last.
    pub adapter: Option<String>,
    /// On a CPU adapter (lavapipe), pin the worker threads its driver starts to one CPU each
    /// (Linux; see [`Context::pinned_threads`]). On by default.
    pub pin_cpu_threads: bool,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions { adapter: None, pin_cpu_threads: true }
    }
}

impl ContextOptions {
    /// Options from the environment: [`ADAPTER_ENV`] picks the adapter,
    /// [`crate::PIN_THREADS_ENV`] set to `0` keeps a CPU adapter's threads unpinned; wgpu's own
    /// `WGPU_BACKEND` restricts the backends searched.
    pub fn from_env() -> Self {
        ContextOptions {
            adapter: std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty()),
            pin_cpu_threads: cpu_threads::pinning_allowed(),
        }
    }
}

/// What `gconv devices` shows of one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// wgpu's description: name, backend, device type, driver.
    pub info: wgpu::AdapterInfo,
    /// The adapter's own limits (gconv asks for all of them).
    pub limits: wgpu::Limits,
}

fn instance() -> wgpu::Instance {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        flags: wgpu::InstanceFlags::from_build_config().with_env(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut list = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // Stable: among equals, wgpu's order (and so the backend preference) stays.
    list.sort_by_key(|a| rank(a.get_info().device_type));
    list
}

/// Every adapter wgpu finds, in the order gconv prefers them: discrete GPUs, integrated GPUs,
/// virtual, other, then CPU adapters such as lavapipe.
pub fn adapters() -> Vec<AdapterSummary> {
    sorted_adapters(&instance())
        .into_iter()
        .map(|a| AdapterSummary { info: a.get_info(), limits: a.limits() })
        .collect()
}

/// A device limit: its name, the least gconv's kernels need, and how to read it.
pub type LimitCheck = (&'static str, u64, fn(&wgpu::Limits) -> u64);

/// The limits gconv's kernels need from a host's device (every shader entry point is checked
/// against them by the test suite). WebGPU's default limits meet all of them.
pub const REQUIRED_LIMITS: [LimitCheck; 5] = [
    ("max_storage_buffers_per_shader_stage", 8, |l| l.max_storage_buffers_per_shader_stage.into()),
    ("max_compute_invocations_per_workgroup", 256, |l| {
        l.max_compute_invocations_per_workgroup.into()
    }),
    ("max_compute_workgroup_size_x", 256, |l| l.max_compute_workgroup_size_x.into()),
    ("max_compute_workgroup_storage_size", 16384, |l| l.max_compute_workgroup_storage_size.into()),
    ("max_storage_buffer_binding_size", 1 << 24, |l| l.max_storage_buffer_binding_size),
];

impl Context {
    /// A context on the preferred adapter, or the one [`ADAPTER_ENV`] names.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] (with the fix) when no adapter exists, [`Error::AdapterNotFound`]
    /// when the requested one does not, [`Error::RequestDevice`] when it refuses a device.
    pub fn new() -> Result<Self> {
        Self::with_options(&ContextOptions::from_env())
    }

    /// A context on the adapter `options` chooses.
    ///
    /// # Errors
    /// As [`Context::new`].
    pub fn with_options(options: &ContextOptions) -> Result<Self> {
        // The threads before the driver starts its own (cpu_threads.rs).
        let before = cpu_threads::snapshot();
        let instance = instance();
        let list = sorted_adapters(&instance);
        if list.is_empty() {
            return Err(Error::NoAdapter);
        }
        let adapter = match &options.adapter {
            None => &list[0],
            Some(req) => {
                let by_index = req.parse::<usize>().ok().and_then(|i| list.get(i));
                let lower = req.to_lowercase();
                by_index
                    .or_else(|| {
                        list.iter().find(|a| a.get_info().name.to_lowercase().contains(&lower))
                    })
                    .ok_or_else(|| Error::AdapterNotFound {
                        requested: req.clone(),
                        available: list.iter().map(|a| a.get_info().name).collect(),
                    })?
            }
        };
        let info = adapter.get_info();
        // The adapter's own limits, not wgpu's defaults: lavapipe binds 128 MiB, real GPUs more.
        let limits = adapter.limits();
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("gconv"),
                // Subgroups where the adapter has them: the register-layout GEMM shares A
                // across a subgroup (gemm_sg.wgsl); everything else runs without. Timestamps
                // where it has them: profiles then read the device's clock (kernel/timing.rs).
                // 64-bit integers where it has them: CPU adapters' wide stores.
                required_features: adapter.features()
                    & (wgpu::Features::SUBGROUP
                        | wgpu::Features::TIMESTAMP_QUERY
                        | wgpu::Features::SHADER_INT64),
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            }))?;
        // Errors inside gconv's operations are caught by error scopes and returned as
        // `Error::Gpu`; anything else is reported here rather than aborting the process.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            eprintln!("gconv: uncaptured GPU error: {e}");
        }));
        let pinned = if options.pin_cpu_threads && info.device_type == wgpu::DeviceType::Cpu {
            cpu_threads::spread(&before)
        } else {
            Vec::new()
        };
        Ok(Self::build(device, queue, Some(info), pinned))
    }

    /// Wraps a device and queue that the host application already owns, so gconv runs on the
    /// host's GPU beside its own work. gconv uses the device's limits as they are; it does not
    /// install an error handler (that stays the host's).
    ///
    /// # Errors
    /// [`Error::Limit`] naming the first limit the device has below what gconv's kernels need
    /// ([`REQUIRED_LIMITS`]; WebGPU's defaults all meet them).
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue) -> Result<Self> {
        let limits = device.limits();
        for (name, required, get) in REQUIRED_LIMITS {
            let actual = get(&limits);
            if actual < required {
                return Err(Error::Limit { name, required, actual });
            }
        }
        Ok(Self::build(device, queue, None, Vec::new()))
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: Option<wgpu::AdapterInfo>,
        pinned: Vec<PinnedThread>,
    ) -> Self {
        let limits = device.limits();
        let adapter = device.adapter_info();
        let cpu = adapter.device_type == wgpu::DeviceType::Cpu;
        let subgroup8 = device.features().contains(wgpu::Features::SUBGROUP)
            && adapter.subgroup_min_size == 8
            && adapter.subgroup_max_size == 8;
        let int64 = device.features().contains(wgpu::Features::SHADER_INT64);
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gconv dummy"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let dummy_rw = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gconv dummy (read-write)"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let dummy_texture = device
            .create_texture(&wgpu::TextureDescriptor {
                label: Some("gconv dummy texture"),
                size: wgpu::Extent3d { width: 1, height: 1, depth_or_array_layers: 1 },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba32Float,
                usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            })
            .create_view(&wgpu::TextureViewDescriptor::default());
        Context {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                pipelines: Mutex::new(HashMap::new()),
                modules: Mutex::new(HashMap::new()),
                dummy,
                dummy_rw,
                dummy_texture,
                poison_outputs: AtomicBool::new(false),
                conv_strategy: AtomicU8::new(0),
                binding_limit: AtomicU64::new(0),
                forced_clock: AtomicBool::new(false),
                gemm_strategy: AtomicU8::new(0),
                gemm_layout: AtomicU8::new(0),
                cpu,
                subgroup8,
                int64,
                subgroups_enabled: AtomicBool::new(true),
                counters: Default::default(),
                pinned,
            }),
        }
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter this context opened (`None` for a context made with [`Context::from_wgpu`]).
    pub fn adapter_info(&self) -> Option<&wgpu::AdapterInfo> {
        self.inner.info.as_ref()
    }

    /// A one-line description of the adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn adapter_name(&self) -> String {
        match &self.inner.info {
            Some(i) => format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type),
            None => "host-provided wgpu device".to_string(),
        }
    }

    /// Whether the device is a CPU adapter (lavapipe, WARP, SwiftShader), from the device's own
    /// adapter info, so also for a host's device.
    pub fn is_cpu_adapter(&self) -> bool {
        self.inner.cpu
    }

    /// The threads of a CPU adapter's driver that this context pinned to one CPU each when it
    /// opened the adapter (Linux, [`ContextOptions::pin_cpu_threads`]): lavapipe's workers,
    /// which Linux otherwise often crowds onto one CPU (its queue thread stays free). Empty on
    /// GPUs, on a host's device, with fewer than two CPUs to spread over, or with pinning off.
    pub fn pinned_threads(&self) -> &[PinnedThread] {
        &self.inner.pinned
    }

    /// The device's limits.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// A testing aid: when on, every tensor an operator allocates for its outputs is filled with
    /// NaN (f32) or `i32::MIN` (i32) before the kernel runs, so an element the kernel fails to
    /// write shows up instead of reading as a plausible zero.
    pub fn set_poison_outputs(&self, on: bool) {
        self.inner.poison_outputs.store(on, Ordering::Relaxed);
    }

    /// Chooses how convolutions run from now on (see [`ConvStrategy`]); the environment
    /// variable `GCONV_CONV=direct|im2col|tiled` does the same for a whole process.
    pub fn set_conv_strategy(&self, strategy: ConvStrategy) {
        self.inner.conv_strategy.store(strategy as u8, Ordering::Relaxed);
    }

    /// The convolution strategy in force (the environment's, else the context's).
    pub fn conv_strategy(&self) -> ConvStrategy {
        match std::env::var("GCONV_CONV").map(|v| v.to_ascii_lowercase()).as_deref() {
            Ok("direct") => ConvStrategy::Direct,
            Ok("im2col") => ConvStrategy::Im2col,
            Ok("tiled") => ConvStrategy::Tiled,
            _ => ConvStrategy::from_u8(self.inner.conv_strategy.load(Ordering::Relaxed)),
        }
    }

    /// Chooses the GEMM kernel from now on (see [`GemmStrategy`]); the environment variable
    /// `GCONV_GEMM=simple|tiled` does the same for a whole process.
    pub fn set_gemm_strategy(&self, strategy: GemmStrategy) {
        self.inner.gemm_strategy.store(strategy as u8, Ordering::Relaxed);
    }

    /// The GEMM strategy in force (the environment's, else the context's).
    pub fn gemm_strategy(&self) -> GemmStrategy {
        match std::env::var("GCONV_GEMM").map(|v| v.to_ascii_lowercase()).as_deref() {
            Ok("simple") => GemmStrategy::Simple,
            Ok("tiled") => GemmStrategy::Tiled,
            _ => GemmStrategy::from_u8(self.inner.gemm_strategy.load(Ordering::Relaxed)),
        }
    }

    /// Chooses the tiled GEMM's layout from now on (see [`GemmLayout`]); the environment
    /// variable `GCONV_GEMM_LAYOUT=registers|workgroup` does the same for a whole process.
    pub fn set_gemm_layout(&self, layout: GemmLayout) {
        self.inner.gemm_layout.store(layout as u8, Ordering::Relaxed);
    }

    /// Allows or forbids kernels that use subgroup operations (allowed by default; they run
    /// only where the device has wgpu's SUBGROUP feature with 8-lane subgroups, as on
    /// lavapipe). Forbidding them runs the portable kernels, to compare the two. The
    /// environment variable `GCONV_SUBGROUPS=0` forbids them too.
    pub fn set_subgroups(&self, allowed: bool) {
        self.inner.subgroups_enabled.store(allowed, Ordering::Relaxed);
    }

    /// Whether gconv's subgroup kernels run on this context (see [`Context::set_subgroups`]).
    pub fn uses_subgroups(&self) -> bool {
        self.inner.subgroup8
            && self.inner.subgroups_enabled.load(Ordering::Relaxed)
            && std::env::var("GCONV_SUBGROUPS").map_or(true, |v| v != "0")
    }

    /// Whether the depthwise strip kernels store their outputs as 64-bit integers
    /// (`shaders/shared/strip_stores_wide.wgsl`): with the subgroup kernels (the CPU adapters'
    /// strategy, [`Context::uses_subgroups`]) where the device has wgpu's SHADER_INT64, as
    /// lavapipe does. On lavapipe a store costs a bounds-checked scalar store per component
    /// per lane; a 64-bit component carries two values.
    pub fn uses_wide_stores(&self) -> bool {
        self.inner.int64 && self.inner.cpu && self.uses_subgroups()
    }

    /// The tiled GEMM's layout in force: the environment's, else the context's, with
    /// [`GemmLayout::Auto`] resolved for this device.
    pub fn gemm_layout(&self) -> GemmLayout {
        let chosen =
            match std::env::var("GCONV_GEMM_LAYOUT").map(|v| v.to_ascii_lowercase()).as_deref() {
                Ok("registers") => GemmLayout::Registers,
                Ok("workgroup") => GemmLayout::Workgroup,
                _ => GemmLayout::from_u8(self.inner.gemm_layout.load(Ordering::Relaxed)),
            };
        match chosen {
            GemmLayout::Auto if self.inner.cpu => GemmLayout::Registers,
            GemmLayout::Auto => GemmLayout::Workgroup,
            other => other,
        }
    }

    /// What gconv has created and submitted on this context so far.
    pub fn counters(&self) -> Counters {
        let c = |i: usize| self.inner.counters[i].load(Ordering::Relaxed);
        Counters {
            buffers: c(0),
            textures: c(1),
            bind_groups: c(2),
            submissions: c(3),
            bytes: c(4),
        }
    }

    pub(crate) fn create_buffer(&self, desc: &wgpu::BufferDescriptor<'_>) -> wgpu::Buffer {
        self.inner.counters[0].fetch_add(1, Ordering::Relaxed);
        self.inner.counters[4].fetch_add(desc.size, Ordering::Relaxed);
        self.inner.device.create_buffer(desc)
    }

    pub(crate) fn create_texture(&self, desc: &wgpu::TextureDescriptor<'_>) -> wgpu::Texture {
        self.inner.counters[1].fetch_add(1, Ordering::Relaxed);
        let texel = u64::from(desc.format.block_copy_size(None).unwrap_or(16));
        let size = desc.size;
        let texels =
            u64::from(size.width) * u64::from(size.height) * u64::from(size.depth_or_array_layers);
        self.inner.counters[4].fetch_add(texels * texel, Ordering::Relaxed);
        self.inner.device.create_texture(desc)
    }

    pub(crate) fn create_bind_group(
        &self,
        desc: &wgpu::BindGroupDescriptor<'_>,
    ) -> wgpu::BindGroup {
        self.inner.counters[2].fetch_add(1, Ordering::Relaxed);
        self.inner.device.create_bind_group(desc)
    }

    pub(crate) fn submit(&self, command: wgpu::CommandBuffer) -> wgpu::SubmissionIndex {
        self.inner.counters[3].fetch_add(1, Ordering::Relaxed);
        self.inner.queue.submit([command])
    }

    /// Whether `GCONV_LOG=debug` asks for the kernel choices to be printed.
    pub(crate) fn log_debug(&self) -> bool {
        std::env::var("GCONV_LOG").is_ok_and(|v| v.eq_ignore_ascii_case("debug"))
    }

    /// The largest storage binding gconv uses: the device's `max_storage_buffer_binding_size`,
    /// or less after [`Context::limit_binding_size`].
    pub fn binding_limit(&self) -> u64 {
        let forced = self.inner.binding_limit.load(Ordering::Relaxed);
        let device = self.inner.limits.max_storage_buffer_binding_size;
        if forced == 0 { device } else { forced.min(device) }
    }

    /// A testing aid: makes gconv treat storage bindings larger than `bytes` as too large, so
    /// the chunked paths that large tensors take (VGG16's 392 MiB classifier weight on
    /// lavapipe's 128 MiB bindings) run on small models too.
    #[doc(hidden)]
    pub fn limit_binding_size(&self, bytes: u64) {
        self.inner.binding_limit.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn poison_outputs(&self) -> bool {
        self.inner.poison_outputs.load(Ordering::Relaxed)
    }

    pub(crate) fn same(&self, other: &Context) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether profiles (`gconv profile`, `GCONV_PROFILE`) and [`Context::time_on_device`]
    /// read the device's own clock: a GPU with wgpu's `TIMESTAMP_QUERY` feature (on a host's
    /// device, where it was requested). Elsewhere profiles time each part from submission to
    /// the end of its wait. CPU adapters are timed on the host: lavapipe's timestamps do not
    /// wait for all earlier work (parts of a mobilenet_v2 step read 0.01 ms that take 7 ms).
    pub fn device_clock(&self) -> bool {
        self.inner.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
            && (!self.inner.cpu || self.inner.forced_clock.load(Ordering::Relaxed))
    }

    /// A testing aid: makes a CPU adapter with timestamps use them as [`Context::device_clock`]
    /// describes, so that the device-clock path runs on lavapipe (its times are not to be
    /// trusted there).
    #[doc(hidden)]
    pub fn force_device_clock(&self) {
        self.inner.forced_clock.store(true, Ordering::Relaxed);
    }

    /// Waits until the GPU has finished all submitted work.
    ///
    /// # Errors
    /// [`Error::Gpu`] if the device is lost.
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu { op: "synchronize".into(), message: e.to_string() })
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("adapter", &self.adapter_name()).finish()
    }
}
