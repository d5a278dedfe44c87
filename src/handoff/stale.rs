//! Stale writes: a change to a conversation that reaches its owner from the
//! other node, which does not own it (an agent that ignored the freeze, a
//! laptop waking up after a forced takeover). Syncthing would take it as the
//! newest version and replace the owner's; instead the owner keeps it aside,
//! next to the file, as `<file>.stale-<epoch>`, and puts its own version back.
//! Both then reach the other node like any change: nothing is merged silently
//! and nothing is lost.
//!
//! Whose a change is, Syncthing says: its database record of this node's copy
//! of a file names, in `modifiedBy`, the device whose change it is. A change the
//! owner made is its own device's once scanned; one received is the peer's.
//! The owner's last version of every file is in its shadow (`shadow.rs`), and
//! when Syncthing resolved a clash by moving the owner's version to a conflict
//! copy, that copy is the owner's newest version.
//!
//! This is the pure half: from the files on disk, the shadow and Syncthing's
//! records, the actions. `reconcile::handoff` gathers the inputs and acts.

use std::collections::{BTreeMap, BTreeSet};

use super::folder::{Stat, conflict_base, stale_copy_name};

/// Syncthing's record of this node's copy of a file (`GET /rest/db/file`,
/// `local`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Synced {
    /// The short device ID of the device whose change this is.
    pub modified_by: String,
    pub deleted: bool,
    pub stat: Stat,
}

/// Where the owner's version of a file comes back from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Shadow,
    /// The conflict copy Syncthing moved the owner's version to; it goes.
    ConflictCopy(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// The owner's own change: copied into the shadow.
    Adopt(String),
    /// The owner deleted it: dropped from the shadow.
    Forget(String),
    /// What device `by` wrote at `path` is moved aside to `to`.
    SetAside { path: String, to: String, by: String },
    /// The owner's version of `path` is put back.
    Restore { path: String, from: Source },
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// In order: a file is set aside before its owner's version comes back.
    pub actions: Vec<Action>,
    /// Changed files Syncthing has not caught up with yet (its record is not
    /// what is on disk): looked at again on the next pass.
    pub waiting: Vec<String>,
}

/// The files on disk that differ from the shadow: changed, new or gone.
pub(crate) fn changed(disk: &BTreeMap<String, Stat>, shadow: &BTreeMap<String, Stat>) -> Vec<String> {
    let keys: BTreeSet<&String> = disk.keys().chain(shadow.keys()).collect();
    keys.into_iter().filter(|path| disk.get(*path) != shadow.get(*path)).cloned().collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Whose {
    Mine,
    Theirs(String),
    /// Syncthing's record is not what is on disk yet.
    Unsure,
}

fn whose(disk: Option<&Stat>, synced: Option<&Synced>, me: &str) -> Whose {
    let by = |synced: &Synced| match synced.modified_by == me {
        true => Whose::Mine,
        false => Whose::Theirs(synced.modified_by.clone()),
    };
    match (disk, synced) {
        // Syncthing never had it, so it cannot have come from the peer.
        (_, None) => Whose::Mine,
        (Some(stat), Some(synced)) if !synced.deleted && synced.stat == *stat => by(synced),
        (None, Some(synced)) if synced.deleted => by(synced),
        _ => Whose::Unsure,
    }
}

/// What the owner of a conversation at `epoch` does about the files that
/// changed since its shadow: its own changes are adopted, another device's
/// are set aside and the owner's version restored. `me` is this node's short
/// device ID; `synced` holds Syncthing's records of the changed files.
pub(crate) fn plan(
    disk: &BTreeMap<String, Stat>,
    shadow: &BTreeMap<String, Stat>,
    synced: &BTreeMap<String, Synced>,
    me: &str,
    epoch: u64,
) -> Plan {
    let changed = changed(disk, shadow);
    let whose: BTreeMap<&String, Whose> =
        changed.iter().map(|path| (path, whose(disk.get(path), synced.get(path), me))).collect();
    let mut taken: BTreeSet<String> = disk.keys().cloned().collect();
    let aside = |path: &str, taken: &mut BTreeSet<String>| {
        let name = stale_copy_name(path, epoch, |name| taken.contains(name));
        taken.insert(name.clone());
        name
    };

    // The owner's newest conflict copy of each file, by the file.
    let mut own_copies: BTreeMap<String, &String> = BTreeMap::new();
    for (path, whose) in &whose {
        if let (Whose::Mine, Some(base), Some(stat)) = (whose, conflict_base(path), disk.get(*path)) {
            let newer = own_copies.get(&base).is_none_or(|other| disk[*other].mtime_ns < stat.mtime_ns);
            if newer {
                own_copies.insert(base, path);
            }
        }
    }
    let mut restored_from = BTreeSet::new();
    let mut plan = Plan::default();
    for (path, whose) in &whose {
        let path = *path;
        match whose {
            Whose::Unsure => plan.waiting.push(path.clone()),
            Whose::Mine => {}
            Whose::Theirs(by) if disk.contains_key(path) => {
                let original = conflict_base(path).unwrap_or_else(|| path.clone());
                let to = aside(&original, &mut taken);
                plan.actions.push(Action::SetAside { path: path.clone(), to, by: by.clone() });
                if conflict_base(path).is_some() {
                    continue;
                }
                let from = match own_copies.get(path) {
                    Some(copy) => Some(Source::ConflictCopy((*copy).clone())),
                    None => shadow.contains_key(path).then_some(Source::Shadow),
                };
                if let Some(from) = from {
                    if let Source::ConflictCopy(copy) = &from {
                        restored_from.insert(copy.clone());
                    }
                    plan.actions.push(Action::Restore { path: path.clone(), from });
                }
            }
            // Deleted by the other node: the owner's version comes back.
            Whose::Theirs(_) => plan.actions.push(Action::Restore { path: path.clone(), from: Source::Shadow }),
        }
    }
    for (path, whose) in &whose {
        if *whose == Whose::Mine && !restored_from.contains(*path) {
            let action = if disk.contains_key(*path) { Action::Adopt } else { Action::Forget };
            plan.actions.push(action((*path).clone()));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    type Files = Vec<(&'static str, Stat)>;
    type Records = Vec<(&'static str, Synced)>;

    const ME: &str = "MINE777";
    const PEER: &str = "PEER777";

    fn stat(size: u64, mtime_ns: i64) -> Stat {
        Stat { size, mtime_ns }
    }

    fn synced(by: &str, deleted: bool, stat: Stat) -> Synced {
        Synced { modified_by: by.into(), deleted, stat }
    }

    fn map<T: Clone>(entries: &[(&str, T)]) -> BTreeMap<String, T> {
        entries.iter().map(|(path, value)| ((*path).to_owned(), value.clone())).collect()
    }

    fn aside(path: &str, to: &str) -> Action {
        Action::SetAside { path: path.into(), to: to.into(), by: PEER.into() }
    }

    fn restore(path: &str, from: Source) -> Action {
        Action::Restore { path: path.into(), from }
    }

    #[test]
    fn each_change_is_adopted_set_aside_or_waited_for_by_whose_it_is() {
        let old = stat(6, 100);
        let new = stat(19, 200);
        let conflict = "m.sync-conflict-20261128-142704-PEER777.jsonl";
        // (case, on disk, in the shadow, Syncthing's records, the plan)
        let cases: Vec<(&str, Files, Files, Records, Plan)> = vec![
            ("nothing changed", vec![("m.jsonl", old)], vec![("m.jsonl", old)], vec![], Plan::default()),
            (
                "the owner appended, Syncthing scanned it",
                vec![("m.jsonl", new)],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(ME, false, new))],
                Plan { actions: vec![Action::Adopt("m.jsonl".into())], waiting: vec![] },
            ),
            (
                "a file Syncthing never had (no Syncthing, an ignored file) is the owner's",
                vec![("m.jsonl", old), ("draft.md", new)],
                vec![("m.jsonl", old)],
                vec![],
                Plan { actions: vec![Action::Adopt("draft.md".into())], waiting: vec![] },
            ),
            (
                "not scanned yet: Syncthing's record is the old file",
                vec![("m.jsonl", new)],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(PEER, false, old))],
                Plan { actions: vec![], waiting: vec!["m.jsonl".into()] },
            ),
            (
                "the peer's write replaced the owner's file",
                vec![("m.jsonl", new)],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(PEER, false, new))],
                Plan {
                    actions: vec![aside("m.jsonl", "m.jsonl.stale-2"), restore("m.jsonl", Source::Shadow)],
                    waiting: vec![],
                },
            ),
            (
                "a new file from the peer is set aside, nothing to restore",
                vec![("m.jsonl", old), ("new.md", new)],
                vec![("m.jsonl", old)],
                vec![("new.md", synced(PEER, false, new))],
                Plan { actions: vec![aside("new.md", "new.md.stale-2")], waiting: vec![] },
            ),
            (
                "the name is taken: the next number",
                vec![("m.jsonl", new), ("m.jsonl.stale-2", old)],
                vec![("m.jsonl", old), ("m.jsonl.stale-2", old)],
                vec![("m.jsonl", synced(PEER, false, new))],
                Plan {
                    actions: vec![aside("m.jsonl", "m.jsonl.stale-2-2"), restore("m.jsonl", Source::Shadow)],
                    waiting: vec![],
                },
            ),
            (
                "the peer deleted the owner's file: it comes back",
                vec![],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(PEER, true, stat(0, 300)))],
                Plan { actions: vec![restore("m.jsonl", Source::Shadow)], waiting: vec![] },
            ),
            (
                "the owner deleted it",
                vec![],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(ME, true, stat(0, 300)))],
                Plan { actions: vec![Action::Forget("m.jsonl".into())], waiting: vec![] },
            ),
            (
                "deleted here, not scanned yet",
                vec![],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(ME, false, old))],
                Plan { actions: vec![], waiting: vec!["m.jsonl".into()] },
            ),
            (
                "a clash the owner won: the peer's conflict copy is set aside",
                vec![("m.jsonl", new), (conflict, stat(20, 150))],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(ME, false, new)), (conflict, synced(PEER, false, stat(20, 150)))],
                Plan {
                    actions: vec![aside(conflict, "m.jsonl.stale-2"), Action::Adopt("m.jsonl".into())],
                    waiting: vec![],
                },
            ),
            (
                "a clash the peer won: the owner's version comes back from its conflict copy",
                vec![("m.jsonl", stat(20, 250)), (conflict, new)],
                vec![("m.jsonl", old)],
                vec![("m.jsonl", synced(PEER, false, stat(20, 250))), (conflict, synced(ME, false, new))],
                Plan {
                    actions: vec![
                        aside("m.jsonl", "m.jsonl.stale-2"),
                        restore("m.jsonl", Source::ConflictCopy(conflict.into())),
                    ],
                    waiting: vec![],
                },
            ),
        ];
        for (case, disk, shadow, records, expected) in cases {
            let got = plan(&map(&disk), &map(&shadow), &map(&records), ME, 2);
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn of_two_own_conflict_copies_the_newest_is_the_owners_version() {
        let (older, newer) =
            ("m.sync-conflict-20261128-100000-MINE777.jsonl", "m.sync-conflict-20261128-110000-MINE777.jsonl");
        let disk = map(&[("m.jsonl", stat(9, 500)), (older, stat(7, 100)), (newer, stat(8, 200))]);
        let shadow = map(&[("m.jsonl", stat(6, 50))]);
        let records = map(&[
            ("m.jsonl", synced(PEER, false, stat(9, 500))),
            (older, synced(ME, false, stat(7, 100))),
            (newer, synced(ME, false, stat(8, 200))),
        ]);
        let got = plan(&disk, &shadow, &records, ME, 3);
        assert_eq!(
            got.actions,
            [
                aside("m.jsonl", "m.jsonl.stale-3"),
                restore("m.jsonl", Source::ConflictCopy(newer.into())),
                Action::Adopt(older.into()),
            ]
        );
    }

    #[test]
    fn a_plan_carried_out_leaves_nothing_to_do() {
        // After the actions, the restored and set-aside files are the owner's
        // once scanned; adopting them leaves the shadow equal to the disk.
        let disk = map(&[("m.jsonl", stat(6, 400)), ("m.jsonl.stale-2", stat(19, 200))]);
        let records =
            map(&[("m.jsonl", synced(ME, false, stat(6, 400))), ("m.jsonl.stale-2", synced(ME, false, stat(19, 200)))]);
        let first = plan(&disk, &map(&[("m.jsonl", stat(6, 100))]), &records, ME, 2);
        assert_eq!(first.actions, [Action::Adopt("m.jsonl".into()), Action::Adopt("m.jsonl.stale-2".into())]);
        assert_eq!(plan(&disk, &disk, &records, ME, 2), Plan::default());
    }
}
