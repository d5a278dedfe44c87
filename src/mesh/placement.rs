//! Which node serves each capability now: written by the Capability
//! reconciler (first online, healthy node in `prefer` then `fallback` order),
//! read by the MeshRouter, the Ollama proxy and the client env. Cheap to clone;
//! clones share the table.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The node that serves the capability.
    pub node: String,
    /// Where its endpoint answers (`endpoint.host`, else the node's address).
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Default)]
pub struct Placements(Arc<RwLock<BTreeMap<String, Served>>>);

impl Placements {
    /// Who serves `capability` now; None while no node can.
    pub fn get(&self, capability: &str) -> Option<Served> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(capability).cloned()
    }

    /// Records the decision for `capability`; returns the one it replaces.
    pub fn set(&self, capability: &str, served: Option<Served>) -> Option<Served> {
        let mut table = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        match served {
            Some(served) => table.insert(capability.to_owned(), served),
            None => table.remove(capability),
        }
    }

    pub fn all(&self) -> BTreeMap<String, Served> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_shared_by_clones_and_replaced() {
        let placements = Placements::default();
        let mini = Served { node: "mini".into(), host: "mini".into(), port: 11434 };
        assert_eq!(placements.clone().set("llm", Some(mini.clone())), None);
        assert_eq!(placements.get("llm"), Some(mini.clone()));
        assert_eq!(placements.set("llm", None), Some(mini));
        assert!(placements.all().is_empty());
    }
}
