//! A checked set of objects, by kind and name: what the controller acts on.

use std::collections::BTreeMap;

use super::kinds::{CapabilitySpec, HandoffPolicySpec, MeshSpec, NodeSelector, NodeSpec, ServiceSpec, SyncFolderSpec};
use super::object::{Kind, Manifest, Object};

#[derive(Clone, Debug, Default)]
pub struct ManifestSet {
    pub nodes: BTreeMap<String, Object<NodeSpec>>,
    pub services: BTreeMap<String, Object<ServiceSpec>>,
    pub capabilities: BTreeMap<String, Object<CapabilitySpec>>,
    pub sync_folders: BTreeMap<String, Object<SyncFolderSpec>>,
    pub handoff_policies: BTreeMap<String, Object<HandoffPolicySpec>>,
    pub mesh: Option<Object<MeshSpec>>,
}

impl ManifestSet {
    /// Adds `manifest`, unless an object of its kind and name is there already;
    /// then that one is returned and the set is unchanged.
    pub(crate) fn insert(&mut self, manifest: Manifest) -> Result<(), Box<Manifest>> {
        fn put<S>(map: &mut BTreeMap<String, Object<S>>, object: Object<S>) -> Result<(), Object<S>> {
            match map.entry(object.metadata.name.value.clone()) {
                std::collections::btree_map::Entry::Occupied(_) => Err(object),
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(object);
                    Ok(())
                }
            }
        }
        let result = match manifest {
            Manifest::Node(o) => put(&mut self.nodes, o).map_err(Manifest::Node),
            Manifest::Service(o) => put(&mut self.services, o).map_err(Manifest::Service),
            Manifest::Capability(o) => put(&mut self.capabilities, o).map_err(Manifest::Capability),
            Manifest::SyncFolder(o) => put(&mut self.sync_folders, o).map_err(Manifest::SyncFolder),
            Manifest::HandoffPolicy(o) => put(&mut self.handoff_policies, o).map_err(Manifest::HandoffPolicy),
            Manifest::Mesh(o) => match self.mesh {
                Some(_) => Err(Manifest::Mesh(o)),
                None => {
                    self.mesh = Some(o);
                    Ok(())
                }
            },
        };
        result.map_err(Box::new)
    }

    /// How many objects the set holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.services.len()
            + self.capabilities.len()
            + self.sync_folders.len()
            + self.handoff_policies.len()
            + usize::from(self.mesh.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The names of `kind`'s objects, sorted.
    pub(crate) fn names(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Node => self.nodes.keys().cloned().collect(),
            Kind::Service => self.services.keys().cloned().collect(),
            Kind::Capability => self.capabilities.keys().cloned().collect(),
            Kind::SyncFolder => self.sync_folders.keys().cloned().collect(),
            Kind::HandoffPolicy => self.handoff_policies.keys().cloned().collect(),
            Kind::Mesh => self.mesh.iter().map(|mesh| mesh.name().to_owned()).collect(),
        }
    }

    /// Whether the Service is placed on the node `node`: one it names, or one
    /// its selector matches.
    pub fn runs_on(&self, service: &ServiceSpec, node: &str) -> bool {
        let Some(object) = self.nodes.get(node) else { return false };
        match &service.node_selector {
            Some(selector) => selects(selector, object),
            None => service.nodes.iter().any(|name| name.value == node),
        }
    }
}

/// Whether every condition of `selector` holds for `node`.
pub(crate) fn selects(selector: &NodeSelector, node: &Object<NodeSpec>) -> bool {
    selector.role.is_none_or(|role| role == node.spec.role)
        && selector.match_labels.iter().all(|(key, value)| node.metadata.labels.get(key) == Some(value))
}
