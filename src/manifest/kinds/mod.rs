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
pub use node::{NodeSpec, NodeSyncthing, Role};
pub use service::{Backoff, EnvValue, HealthCheck, HttpProbe, NodeSelector, RestartPolicy, ServiceSpec, TcpProbe};
pub use sync_folder::{FolderType, SyncFolderSpec, Versioning, VersioningType};

use super::object::{Kind, Spec};

impl Spec for NodeSpec {
    const KIND: Kind = Kind::Node;
}
impl Spec for ServiceSpec {
    const KIND: Kind = Kind::Service;
}
impl Spec for CapabilitySpec {
    const KIND: Kind = Kind::Capability;
}
impl Spec for SyncFolderSpec {
    const KIND: Kind = Kind::SyncFolder;
}
impl Spec for HandoffPolicySpec {
    const KIND: Kind = Kind::HandoffPolicy;
}
impl Spec for MeshSpec {
    const KIND: Kind = Kind::Mesh;
}
