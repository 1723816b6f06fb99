//! The library's error type: every failure a caller can cause or meet, with its cause named.

/// Everything that can go wrong in gconv. Messages name the operator, the shapes or the limit
/// involved, and where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No wgpu adapter (Vulkan, Metal or DX12) exists on this machine.
    #[error(
        "no GPU adapter found (gconv needs Vulkan, Metal or DX12). On a machine without a GPU \
         install Mesa's software Vulkan driver (Debian/Ubuntu: `apt-get install \
         mesa-vulkan-drivers`); otherwise install your GPU's driver"
    )]
    NoAdapter,
    /// The adapter asked for (by `--adapter` or `GCONV_ADAPTER`) does not exist.
    #[error("no adapter matches {requested:?}; available: {}", available.join(", "))]
    AdapterNotFound {
        /// What was asked for: an index or part of an adapter's name.
        requested: String,
        /// The adapters that exist, by name.
        available: Vec<String>,
    },
    /// The adapter refused to create a device.
    #[error("could not open the GPU device: {0}")]
    RequestDevice(#[from] wgpu::RequestDeviceError),
    /// An operator was called with arguments it cannot take (shapes, attributes).
    #[error("{op}: {message}")]
    InvalidArgument {
        /// The operator, as PyTorch names it (`conv2d`, `max_pool2d`, ...).
        op: &'static str,
        /// What is wrong, with the shapes and values involved.
        message: String,
    },
    /// A tensor or binding is larger than the device allows.
    #[error("{what} needs {bytes} bytes, over the device's {limit_name} of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size in bytes.
        bytes: u64,
        /// The wgpu limit it exceeds (`max_buffer_size`, `max_storage_buffer_binding_size`, ...).
        limit_name: &'static str,
        /// The limit's value on this device.
        limit: u64,
    },
    /// A host's device lacks a limit gconv's kernels need.
    #[error("the device's {name} is {actual}; gconv needs at least {required}")]
    Limit {
        /// The wgpu limit (`max_storage_buffers_per_shader_stage`, ...).
        name: &'static str,
        /// What gconv needs.
        required: u64,
        /// What the device has.
        actual: u64,
    },
    /// Tensors from two different contexts (devices) were mixed in one operation.
    #[error("{op}: tensors belong to different gconv contexts (devices)")]
    ContextMismatch {
        /// The operator.
        op: &'static str,
    },
    /// A tensor of the wrong element type was passed.
    #[error("{op}: expected a tensor of {expected}, got {actual}")]
    DType {
        /// The operator or method.
        op: &'static str,
        /// The element type required.
        expected: crate::DType,
        /// The element type given.
        actual: crate::DType,
    },
    /// A state dict (checkpoint) does not match the model.
    #[error("the checkpoint does not match model {model}: {}", summarize(problems))]
    StateMismatch {
        /// The model's name.
        model: String,
        /// Each difference: missing, unexpected or misshapen tensors.
        problems: Vec<String>,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file's contents are not what its format requires (IDX, safetensors).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The device could not allocate a buffer: its memory is exhausted.
    #[error("the device is out of memory: allocating {what} ({bytes} bytes) failed")]
    OutOfMemory {
        /// The allocation (its label and shape).
        what: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// The GPU reported an error (validation, out of memory, device lost) while running work.
    #[error("GPU error in {op}: {message}")]
    Gpu {
        /// What was running.
        op: String,
        /// wgpu's description.
        message: String,
    },
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument { op, message: message.into() }
    }
}

/// The first few problems of each kind (missing, unexpected, misshapen) and how many more
/// there are: a checkpoint of another architecture differs in hundreds of tensors.
fn summarize(problems: &[String]) -> String {
    const SHOWN: usize = 5;
    let kind = |p: &String| match p {
        p if p.starts_with("missing ") => 0,
        p if p.starts_with("unexpected ") => 1,
        _ => 2,
    };
    let mut shown = Vec::new();
    for k in 0..3 {
        shown.extend(problems.iter().filter(|p| kind(p) == k).take(SHOWN).cloned());
    }
    let mut text = shown.join("; ");
    if problems.len() > shown.len() {
        text.push_str(&format!("; and {} more", problems.len() - shown.len()));
    }
    text
}
