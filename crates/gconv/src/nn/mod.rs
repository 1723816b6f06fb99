//! Models: layers, the graph they form, the executor that plans and runs it, optimizers and
//! checkpoints.

pub mod checkpoint;
mod graph;
mod layer;
mod metrics;
mod model;
pub mod models;
mod optim;
mod plan;
mod session;
mod spec;
mod summary;

pub use graph::{Graph, GraphParam, INPUT, Node};
pub use layer::{Init, Layer, ParamSpec};
pub use metrics::{Metrics, NonFinite};
pub use model::Model;
pub use models::{MODELS, ModelConfig};
pub use optim::Optimizer;
pub use plan::{LayerTiming, Phase, PlanKind};
pub use session::{Session, SessionInput};
pub use spec::parse_layers;
pub use summary::{LayerSummary, Summary, summarize};
