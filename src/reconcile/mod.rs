//! Reconcilers, one per kind this node acts on: `reconcile(key, ctx) -> Outcome`.
//! A reconciler is not told why it runs (a new snapshot, a resync, a process
//! exit): it compares what is declared with what is, every time, which keeps it
//! idempotent. Planning is pure and shared with `meshctl diff`.

pub(crate) mod capability;
pub(crate) mod client_env;
pub(crate) mod context;
pub(crate) mod handoff;
pub(crate) mod plan;
pub(crate) mod service;
pub(crate) mod sync_folder;

pub(crate) use self::context::{Context, Handles, Outcome, ReconcileError};
use crate::controller::status::{ConditionType, ObjectKey, Observed};
use crate::manifest::{Kind, ManifestSet};

/// The keys of every object this node may have to act on in `set`.
pub(crate) fn keys(set: &ManifestSet, node: &str) -> Vec<ObjectKey> {
    let mut keys: Vec<ObjectKey> =
        set.services.keys().map(|name| ObjectKey::new(Kind::Service, name.clone())).collect();
    if set.nodes.contains_key(node) {
        keys.push(ObjectKey::new(Kind::Node, node.to_owned()));
    }
    // Every SyncFolder, not only this node's: one that no longer names this
    // node is reconciled to un-share it here.
    keys.extend(set.sync_folders.keys().map(|name| ObjectKey::new(Kind::SyncFolder, name.clone())));
    // Every Capability: each node renders every capability's client env.
    keys.extend(set.capabilities.keys().map(|name| ObjectKey::new(Kind::Capability, name.clone())));
    // Every HandoffPolicy: one whose folder is not on this node is untracked.
    keys.extend(set.handoff_policies.keys().map(|name| ObjectKey::new(Kind::HandoffPolicy, name.clone())));
    keys
}

pub(crate) async fn reconcile(key: &ObjectKey, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let name = key.name.as_str();
    match key.kind {
        Kind::Service => service::reconcile(name, ctx).await,
        Kind::SyncFolder => sync_folder::reconcile(name, ctx).await,
        Kind::Capability => capability::reconcile(name, ctx).await,
        Kind::HandoffPolicy => handoff::reconcile(name, ctx).await,
        Kind::Node if name == ctx.handles.node => Ok(this_node(ctx)),
        _ => Ok(Outcome { tracked: false, ..Outcome::default() }),
    }
}

/// This node's own Node object: present, and whether `AGENT_ROLE` agrees with it.
fn this_node(ctx: &Context) -> Outcome {
    let mut outcome = Outcome::default();
    let Some(node) = ctx.set.nodes.get(&ctx.handles.node) else {
        outcome.tracked = false;
        return outcome;
    };
    let role = node.spec.role.as_str();
    let hint = ctx.env.get(crate::identity::ROLE).map(|s| s.value.clone());
    let mismatch = hint
        .as_deref()
        .filter(|hint| *hint != role)
        .map(|hint| format!("AGENT_ROLE is \"{hint}\" but the Node manifest says {role}; the manifest wins"));
    outcome.conditions = vec![
        Observed::ready("Registered", format!("this node, role {role}")),
        Observed::stable(),
        Observed::new(
            ConditionType::Degraded,
            mismatch.is_some(),
            if mismatch.is_some() { "RoleMismatch" } else { "AsExpected" },
            mismatch.unwrap_or_default(),
        ),
    ];
    outcome.details.insert("role".into(), role.into());
    outcome.details.insert("address".into(), format!("{}:{}", node.spec.address.value, node.spec.api_port));
    outcome
}
