//! The `spec` of each kind of design section 3, one module per kind. Field names
//! are the manifest's (camelCase); defaults are those a user would expect.

mod capability;
mod handoff_policy;
mod mesh;
mod node;
mod service;
mod sync_folder;

pub use capability::{CapabilitySpec, Endpoint, OllamaSettings, Placement, Provider, is_loopback_host};
pub use handoff_policy::HandoffPolicySpec;
pub use mesh::{Discovery, MeshAuth, MeshSpec, ReconcileSettings, TailscaleIdentity};
pub use node::{NodeSpec, NodeSyncthing, NodeWake, Role};
pub use service::{Backoff, EnvValue, HealthCheck, HttpProbe, NodeSelector, RestartPolicy, ServiceSpec, TcpProbe};
pub use sync_folder::{FolderType, SyncFolderSpec, Versioning, VersioningType};
