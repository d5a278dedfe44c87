//! The names a user may give a kind on the command line (`svc`, `service`,
//! `services`, `Service`…) and `KIND/NAME` references: the one table `get`,
//! `describe` and `logs` read.

use crate::diagnostic::did_you_mean;
use crate::manifest::Kind;

/// One kind as the command line names it: singular (also what `-o name`
/// prints), plural and short name, as kubectl has them.
struct KindNames {
    kind: Kind,
    singular: &'static str,
    plural: &'static str,
    short: Option<&'static str>,
}

const TABLE: [KindNames; 6] = [
    KindNames { kind: Kind::Node, singular: "node", plural: "nodes", short: Some("no") },
    KindNames { kind: Kind::Service, singular: "service", plural: "services", short: Some("svc") },
    KindNames { kind: Kind::Capability, singular: "capability", plural: "capabilities", short: Some("cap") },
    KindNames { kind: Kind::SyncFolder, singular: "syncfolder", plural: "syncfolders", short: Some("sf") },
    KindNames { kind: Kind::HandoffPolicy, singular: "handoffpolicy", plural: "handoffpolicies", short: Some("hp") },
    KindNames { kind: Kind::Mesh, singular: "mesh", plural: "mesh", short: None },
];

fn names_of(kind: Kind) -> &'static KindNames {
    TABLE.iter().find(|names| names.kind == kind).expect("every kind has a row")
}

/// The kind `text` names, in any case: its singular, plural or short name.
pub(super) fn resolve(text: &str) -> anyhow::Result<Kind> {
    let wanted = text.to_ascii_lowercase();
    let found = TABLE.iter().find(|names| {
        names.singular == wanted || names.plural == wanted || names.short.is_some_and(|short| short == wanted)
    });
    if let Some(names) = found {
        return Ok(names.kind);
    }
    let every_name = TABLE.iter().flat_map(|names| [names.singular, names.plural].into_iter().chain(names.short));
    let help = did_you_mean(&wanted, every_name).map_or_else(String::new, |help| format!("; {help}"));
    anyhow::bail!("the server doesn't have a resource type \"{text}\"; the kinds are {}{help}", listing())
}

/// `nodes (no), services (svc), …, mesh`: every kind with its short name.
fn listing() -> String {
    let entry = |names: &KindNames| match names.short {
        Some(short) => format!("{} ({short})", names.plural),
        None => names.plural.to_owned(),
    };
    TABLE.iter().map(entry).collect::<Vec<_>>().join(", ")
}

/// `service`: the lowercase name `-o name` prints and `KIND/NAME` takes.
pub(super) fn singular(kind: Kind) -> &'static str {
    names_of(kind).singular
}

/// `services`: how kubectl names a kind in its messages.
pub(super) fn plural(kind: Kind) -> &'static str {
    names_of(kind).plural
}

/// The kind and name of `KIND/NAME`, or of `KIND` followed by `NAME`.
pub(super) fn reference(first: &str, second: Option<&str>) -> anyhow::Result<(Kind, String)> {
    match (first.split_once('/'), second) {
        (Some((kind, name)), None) if !name.is_empty() => Ok((resolve(kind)?, name.to_owned())),
        (Some(_), Some(_)) => anyhow::bail!("give KIND/NAME or KIND NAME, not both: \"{first}\" is already KIND/NAME"),
        (Some(_), None) => anyhow::bail!("\"{first}\" names no object: give KIND/NAME, e.g. service/ollama"),
        (None, Some(name)) => Ok((resolve(first)?, name.to_owned())),
        (None, None) => anyhow::bail!("\"{first}\" needs a name: give KIND NAME or KIND/NAME, e.g. service/ollama"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_singular_plural_and_short_name_in_any_case_names_its_kind() {
        let table = [
            (["no", "node", "nodes", "Node"], Kind::Node),
            (["svc", "service", "services", "SERVICE"], Kind::Service),
            (["cap", "capability", "capabilities", "Capability"], Kind::Capability),
            (["sf", "syncfolder", "syncfolders", "SyncFolder"], Kind::SyncFolder),
            (["hp", "handoffpolicy", "handoffpolicies", "HandoffPolicy"], Kind::HandoffPolicy),
            (["mesh", "Mesh", "MESH", "mEsH"], Kind::Mesh),
        ];
        for (names, kind) in table {
            for name in names {
                assert_eq!(resolve(name).unwrap(), kind, "{name}");
            }
        }
    }

    #[test]
    fn every_kind_has_exactly_one_row() {
        for kind in Kind::ALL {
            assert_eq!(TABLE.iter().filter(|names| names.kind == kind).count(), 1, "{kind}");
        }
    }

    #[test]
    fn an_unknown_kind_lists_the_kinds_and_the_closest_name() {
        let error = resolve("servics").unwrap_err().to_string();
        assert_eq!(
            error,
            "the server doesn't have a resource type \"servics\"; the kinds are nodes (no), services (svc), \
             capabilities (cap), syncfolders (sf), handoffpolicies (hp), mesh; did you mean \"service\"?"
        );
        assert!(!resolve("deployments").unwrap_err().to_string().contains("did you mean"));
    }

    #[test]
    fn a_reference_is_kind_slash_name_or_kind_then_name() {
        assert_eq!(reference("svc/ollama", None).unwrap(), (Kind::Service, "ollama".to_owned()));
        assert_eq!(reference("Capability", Some("llm")).unwrap(), (Kind::Capability, "llm".to_owned()));
        assert_eq!(reference("sf/notes", None).unwrap(), (Kind::SyncFolder, "notes".to_owned()));
        let errors = [
            (reference("svc/ollama", Some("x")), "not both"),
            (reference("svc/", None), "names no object"),
            (reference("svc", None), "needs a name"),
            (reference("pod/x", None), "resource type \"pod\""),
        ];
        for (result, expected) in errors {
            let error = result.unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn singular_and_plural_names_are_lowercase() {
        assert_eq!(singular(Kind::HandoffPolicy), "handoffpolicy");
        assert_eq!(plural(Kind::Capability), "capabilities");
        assert_eq!(plural(Kind::Mesh), "mesh");
    }
}
