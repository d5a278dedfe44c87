//! The plan of a candidate set on this node: which objects it adds, changes or
//! removes, and what this node would do about them. Pure; `meshctl diff` and
//! `apply --dry-run` print it, and the Service reconciler runs the same
//! `service::plan`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::service::{self, ServiceAction};
use crate::identity::NodeEnv;
use crate::manifest::{Kind, ManifestSet, Object, Spec};
use crate::supervisor::UnitStatus;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub node: String,
    pub from_revision: Option<String>,
    pub to_revision: String,
    pub changes: Vec<Change>,
    /// Objects present in both sets with the same content.
    pub unchanged: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Change,
    Remove,
    /// The object is unchanged, but this node must act on it (a process that
    /// is not running as declared).
    Act,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub op: Op,
    pub kind: String,
    pub name: String,
    /// The spec fields (and `metadata.labels`) that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// What this node would do, e.g. `start: ollama serve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Plan {
    /// Whether applying the candidate would change nothing at all.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Plans `candidate` against the set in force (`current`) and the processes this
/// node runs (`observe`).
pub fn plan(
    current: Option<(&ManifestSet, &str)>,
    candidate: (&ManifestSet, &str),
    node: &str,
    env: &NodeEnv,
    observe: impl Fn(&str) -> Option<UnitStatus>,
) -> Plan {
    let empty = ManifestSet::default();
    let (old, from_revision) = current.map_or((&empty, None), |(set, revision)| (set, Some(revision.to_owned())));
    let (new, to_revision) = candidate;
    let mut changes = Vec::new();
    let mut unchanged = 0;
    let mut compare = |kind: Kind, name: &str, before: Option<DiffView>, after: Option<DiffView>| {
        let (op, fields) = match (&before, &after) {
            (None, Some(_)) => (Some(Op::Add), Vec::new()),
            (Some(_), None) => (Some(Op::Remove), Vec::new()),
            (Some(before), Some(after)) => {
                let fields = changed_fields(before, after);
                (if fields.is_empty() { None } else { Some(Op::Change) }, fields)
            }
            (None, None) => (None, Vec::new()),
        };
        let action = (kind == Kind::Service).then(|| service_action(new, name, node, env, &observe)).flatten();
        match (op, action) {
            (None, None) => unchanged += 1,
            (op, action) => changes.push(Change {
                op: op.unwrap_or(Op::Act),
                kind: kind.to_string(),
                name: name.to_owned(),
                fields,
                action,
            }),
        }
    };
    diff_kind(&old.nodes, &new.nodes, &mut compare);
    diff_kind(&old.services, &new.services, &mut compare);
    diff_kind(&old.capabilities, &new.capabilities, &mut compare);
    diff_kind(&old.sync_folders, &new.sync_folders, &mut compare);
    diff_kind(&old.handoff_policies, &new.handoff_policies, &mut compare);
    let mesh = |set: &ManifestSet| set.mesh.as_ref().map(|m| (m.name().to_owned(), m.clone())).into_iter().collect();
    diff_kind(&mesh(old), &mesh(new), &mut compare);
    Plan { node: node.to_owned(), from_revision, to_revision: to_revision.to_owned(), changes, unchanged }
}

/// An object as the diff sees it: labels and spec as JSON.
type DiffView = (serde_json::Value, BTreeMap<String, String>);

fn diff_kind<S: Spec>(
    old: &BTreeMap<String, Object<S>>,
    new: &BTreeMap<String, Object<S>>,
    compare: &mut impl FnMut(Kind, &str, Option<DiffView>, Option<DiffView>),
) {
    let view = |o: &Object<S>| (serde_json::to_value(&o.spec).unwrap_or_default(), o.metadata.labels.clone());
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        compare(S::KIND, name, old.get(name).map(view), new.get(name).map(view));
    }
}

fn changed_fields(before: &DiffView, after: &DiffView) -> Vec<String> {
    let mut fields = Vec::new();
    if before.1 != after.1 {
        fields.push("metadata.labels".to_owned());
    }
    let empty = serde_json::Map::new();
    let (old, new) = (before.0.as_object().unwrap_or(&empty), after.0.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    fields.extend(keys.into_iter().filter(|k| old.get(*k) != new.get(*k)).map(|k| format!("spec.{k}")));
    fields
}

fn service_action(
    set: &ManifestSet,
    name: &str,
    node: &str,
    env: &NodeEnv,
    observe: &impl Fn(&str) -> Option<UnitStatus>,
) -> Option<String> {
    let desired = set
        .services
        .get(name)
        .filter(|s| service::placed_on(set, &s.spec, node))
        .and_then(|s| set.nodes.get(node).map(|n| service::render(s, n, env)));
    let desired = match desired.transpose() {
        Ok(desired) => desired,
        Err(error) => return Some(format!("cannot start: {error}")),
    };
    let observed = observe(name);
    match service::plan(desired.as_ref(), observed.as_ref()) {
        ServiceAction::Nothing => None,
        ServiceAction::Start => desired.map(|d| format!("start: {}", d.command.join(" "))),
        ServiceAction::Replace => desired.map(|d| format!("restart: {}", d.command.join(" "))),
        ServiceAction::Stop => Some("stop".to_owned()),
    }
}

impl fmt::Display for Plan {
    /// `+` added, `~` changed, `-` removed, `!` unchanged but acted on; the
    /// node's action after `=>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = self.from_revision.as_deref().unwrap_or("nothing");
        writeln!(f, "Plan for node {} ({from} -> {}):", self.node, self.to_revision)?;
        if self.changes.is_empty() {
            writeln!(f, "  no changes")?;
        }
        for change in &self.changes {
            let sign = match change.op {
                Op::Add => '+',
                Op::Change => '~',
                Op::Remove => '-',
                Op::Act => '!',
            };
            write!(f, "  {sign} {}/{}", change.kind, change.name)?;
            if !change.fields.is_empty() {
                write!(f, " ({})", change.fields.join(", "))?;
            }
            if let Some(action) = &change.action {
                write!(f, " => {action}")?;
            }
            writeln!(f)?;
        }
        write!(f, "  {} unchanged", self.unchanged)
    }
}
