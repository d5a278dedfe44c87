//! The plan of a candidate set on this node (`api::wire::Plan`): which objects
//! it adds, changes or removes, and what this node would do about them. Pure;
//! `meshctl diff` and `apply --dry-run` print it, and the Service reconciler
//! runs the same `service::plan`.

use std::collections::BTreeMap;
use std::fmt;

use super::service::{self, ServiceAction};
use crate::api::wire::{Change, Op, Plan};
use crate::identity::NodeEnv;
use crate::manifest::{Kind, ManifestSet, Object, Spec};
use crate::supervisor::UnitStatus;

/// Plans `candidate` against the set in force (`current`) and the processes this
/// node runs (`observe`).
pub(crate) fn plan(
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
        .filter(|s| set.runs_on(&s.spec, node))
        .and_then(|s| set.nodes.get(node).map(|n| service::render(s, n, env)));
    let desired = match desired.transpose() {
        Ok(desired) => desired,
        Err(error) => return Some(format!("cannot start: {error}")),
    };
    let observed = observe(name);
    match service::plan(desired, observed.as_ref()) {
        ServiceAction::Nothing => None,
        ServiceAction::Start(process) => Some(format!("start: {}", process.command.join(" "))),
        ServiceAction::Replace(process) => Some(format!("restart: {}", process.command.join(" "))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{SourceFile, validate};

    const NODES: &str = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: a}\nspec: {role: primary, address: 127.0.0.1}\n---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: b}\nspec: {role: satellite, address: 127.0.0.2}\n";

    fn service(name: &str, nodes: &str, command: &str) -> String {
        format!(
            "---\napiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{nodes: [{nodes}], command: [{command}]}}\n"
        )
    }

    fn set(extra: &[String]) -> ManifestSet {
        let text = format!("{NODES}{}", extra.concat());
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        validation.set
    }

    fn summary(plan: &Plan) -> Vec<String> {
        plan.changes
            .iter()
            .map(|c| {
                format!(
                    "{:?} {}/{} [{}] {}",
                    c.op,
                    c.kind,
                    c.name,
                    c.fields.join(","),
                    c.action.clone().unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn plan_lists_object_changes_and_what_this_node_does() {
        let env = NodeEnv::default();
        let nothing_runs = |_: &str| None;
        let before = set(&[service("web", "a", "serve, '1'"), service("gone", "a", "old"), service("far", "b", "x")]);
        let after = set(&[service("web", "a", "serve, '2'"), service("new", "a", "fresh"), service("far", "b", "z")]);
        let plan = plan(Some((&before, "r1")), (&after, "r2"), "a", &env, nothing_runs);
        assert_eq!(
            summary(&plan),
            [
                "Change Service/far [spec.command] ",
                "Remove Service/gone [] ",
                "Add Service/new [] start: fresh",
                "Change Service/web [spec.command] start: serve 2",
            ]
        );
        assert_eq!(plan.unchanged, 2, "the two Nodes");
    }

    #[test]
    fn an_unchanged_world_plans_nothing() {
        let env = NodeEnv::default();
        let current = set(&[service("web", "a", "serve")]);
        let node = current.nodes.get("a").unwrap();
        let running = service::render(current.services.get("web").unwrap(), node, &env).unwrap();
        let observed = |name: &str| {
            (name == "web").then(|| UnitStatus {
                fingerprint: running.fingerprint(),
                phase: crate::supervisor::Phase::Running,
                pid: Some(7),
                restarts: 0,
                last_exit: None,
                healthy: None,
                port_in_use: None,
                message: String::new(),
                since: std::time::SystemTime::now(),
            })
        };
        let plan = plan(Some((&current, "r1")), (&current, "r1"), "a", &env, observed);
        assert!(plan.changes.is_empty(), "{:?}", summary(&plan));
        assert_eq!(plan.unchanged, 3);
        let fresh_start = super::plan(None, (&current, "r1"), "a", &env, |_: &str| None);
        assert_eq!(summary(&fresh_start)[2], "Add Service/web [] start: serve");
    }
}
