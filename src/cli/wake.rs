//! `meshctl wake NODE`: sends the Wake-on-LAN magic packet of a Node that
//! declares `wake`, by hand, from this machine, and says what it sent.

use std::path::{Path, PathBuf};

use super::Outcome;
use crate::diagnostic::{Severity, did_you_mean};
use crate::identity::NodeEnv;
use crate::manifest::kinds::NodeWake;
use crate::manifest::{self, ManifestSet, Scope, loader};
use crate::wake;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The Node to wake; its manifest must declare `wake`.
    node: String,
    /// The manifests folder or file that holds the Node (default:
    /// MESH_MANIFESTS, else ./manifests).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    filename: Option<PathBuf>,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = NodeEnv::load(env_file)?;
    let path = args.filename.unwrap_or_else(|| env.manifests_dir());
    let loaded = loader::load_paths(std::slice::from_ref(&path))?;
    let label = loaded.label();
    let validation = manifest::validate_as(&loaded.files, loaded.problems, Scope::Part);
    let wake = match wake_of(&validation.set, &args.node) {
        Ok(wake) => wake,
        Err(problem) => {
            // A Node whose wake is malformed did not parse: its problem says why.
            let errors: Vec<_> = validation.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
            for diagnostic in &errors {
                eprintln!("{diagnostic}\n");
            }
            let hint = if errors.is_empty() { "" } else { " (see the errors above)" };
            anyhow::bail!("{problem} in {label}{hint}");
        }
    };
    let sent = wake::send(wake)?;
    println!(
        "sent a magic packet for {} ({} bytes) to {}; {} may take up to {} to answer",
        wake.mac, sent.bytes, sent.to, args.node, wake.timeout
    );
    Ok(Outcome::Success)
}

/// The `wake` of Node `name`, or why there is none to send.
fn wake_of<'a>(set: &'a ManifestSet, name: &str) -> Result<&'a NodeWake, String> {
    let Some(node) = set.nodes.get(name) else {
        let hint = did_you_mean(name, set.nodes.keys().map(String::as_str)).map(|hint| format!(" ({hint})"));
        return Err(format!("no Node \"{name}\"{}", hint.unwrap_or_default()));
    };
    node.spec.wake.as_ref().ok_or_else(|| format!("Node \"{name}\" declares no wake (mac and address)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SourceFile;

    #[test]
    fn only_a_node_that_declares_wake_can_be_woken() {
        let text = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: mini}\nspec:\n  role: satellite\n  address: mini\n  wake: {mac: \"aa:bb:cc:dd:ee:ff\", address: 192.168.1.255}\n---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: primary, address: laptop}\n";
        let validation = manifest::validate(&[SourceFile { path: "m.yaml".into(), text: text.into() }], Vec::new());
        assert_eq!(validation.error_count(), 0, "{:?}", validation.diagnostics);
        // (node, expected wake address or problem)
        let cases = [
            ("mini", Ok("192.168.1.255")),
            ("laptop", Err("Node \"laptop\" declares no wake (mac and address)".to_owned())),
            ("minii", Err("no Node \"minii\" (did you mean \"mini\"?)".to_owned())),
        ];
        for (name, expected) in cases {
            let got = wake_of(&validation.set, name).map(|wake| wake.address.value.as_str());
            assert_eq!(got, expected, "{name}");
        }
        let wake = wake_of(&validation.set, "mini").expect("mini declares wake");
        assert_eq!((wake.port.0, wake.timeout.duration.as_secs()), (9, 15), "the defaults");
    }
}
