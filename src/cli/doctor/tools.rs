//! The programs this node drives: Tailscale, Syncthing and each Service's program.

use std::path::Path;

use super::super::platform::{Platform, path_owner, service_path};
use super::check::{Check, TIMEOUT};
use crate::config::resolve_secret;
use crate::identity::NodeEnv;
use crate::manifest::kinds::{EnvValue, NodeSyncthing};
use crate::manifest::{ManifestSet, SecretRef};
use crate::supervisor::program;
use crate::syncthing::{self, SyncthingError};
use crate::tailscale::TailnetStatus;

pub(super) fn tailscale_check(found: &Result<TailnetStatus, String>, required: bool) -> Check {
    const NAME: &str = "tailscale";
    let down = |why: String| {
        if required {
            Check::fail(
                NAME,
                format!("{why}; the Mesh uses Tailscale (discovery or identity auth)"),
                "install Tailscale and run `tailscale up`, or turn the Mesh's Tailscale settings off",
            )
        } else {
            Check::warn(
                NAME,
                format!("{why}; fine while the Nodes' addresses are plain"),
                "install Tailscale and run `tailscale up` to reach peers away from home",
            )
        }
    };
    match found {
        Err(why) => down(why.clone()),
        Ok(status) if !status.running => down("Tailscale is not running".into()),
        Ok(status) => {
            let name = status.self_dns_name.as_deref().unwrap_or("no MagicDNS name");
            let ip = status.tailnet_ipv4().map(|ip| format!(", {ip}")).unwrap_or_default();
            Check::pass(NAME, format!("up as {name}{ip}"))
        }
    }
}

/// The Syncthing check, when this Node has `spec.syncthing` or a Syncthing
/// key is set.
pub(super) async fn syncthing_check(set: &ManifestSet, node: &str, env: &NodeEnv) -> Option<Check> {
    const NAME: &str = "syncthing";
    let node_settings = set.nodes.get(node).and_then(|n| n.spec.syncthing.as_ref());
    let key_set = env.value(SYNCTHING_KEY).is_some();
    let gui_address = env.get(SYNCTHING_GUI_ADDRESS).map(|address| address.value.trim());
    let settings = syncthing_target(node_settings, key_set, gui_address)?;
    let url = &settings.api_url;
    let where_key = match &settings.api_key {
        SecretRef::Env(name) => format!("set {name} in .env to"),
        SecretRef::File(path) => format!("write to {path}"),
    };
    let key = match resolve_secret(env, &settings.api_key) {
        Ok(key) => key,
        Err(error) => {
            return Some(Check::fail(
                NAME,
                format!("Node/{node} spec.syncthing.apiKey: {error}"),
                format!("{where_key} the key in Syncthing's GUI (Actions > Settings > API Key)"),
            ));
        }
    };
    let client = syncthing::Client::new(url, &key);
    let answer = tokio::time::timeout(TIMEOUT, client.system_status()).await;
    let found = match answer {
        Err(_) => Err(SyncthingProblem::Unreachable(format!("no answer in {}s", TIMEOUT.as_secs()))),
        Ok(Ok(status)) => Ok(status.my_id),
        Ok(Err(SyncthingError::WrongKey { .. })) => Err(SyncthingProblem::WrongKey),
        Ok(Err(SyncthingError::Unreachable { reason, .. })) => Err(SyncthingProblem::Unreachable(reason)),
        Ok(Err(error)) => Err(SyncthingProblem::Other(error.to_string())),
    };
    Some(syncthing_verdict(url, &where_key, &found))
}

/// The key `meshctl init` writes for Syncthing, and the GUI address variable
/// Syncthing itself reads (`STGUIADDRESS`).
const SYNCTHING_KEY: &str = "SYNCTHING_API_KEY";
const SYNCTHING_GUI_ADDRESS: &str = "STGUIADDRESS";

/// Where and with which key doctor asks Syncthing.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SyncthingTarget {
    api_url: String,
    api_key: SecretRef,
}

/// The Node's `spec.syncthing`; without one, a `SYNCTHING_API_KEY` that is
/// set is still checked (a key kept for later is a key that may be wrong),
/// at `STGUIADDRESS` or Syncthing's default GUI address.
fn syncthing_target(node: Option<&NodeSyncthing>, key_set: bool, gui_address: Option<&str>) -> Option<SyncthingTarget> {
    if let Some(settings) = node {
        return Some(SyncthingTarget { api_url: settings.api_url.value.clone(), api_key: settings.api_key.clone() });
    }
    if !key_set {
        return None;
    }
    let address = gui_address.filter(|a| !a.is_empty()).unwrap_or("127.0.0.1:8384");
    let api_url = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
    Some(SyncthingTarget { api_url, api_key: SecretRef::Env(SYNCTHING_KEY.to_owned()) })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SyncthingProblem {
    Unreachable(String),
    WrongKey,
    Other(String),
}

fn syncthing_verdict(url: &str, where_key: &str, found: &Result<String, SyncthingProblem>) -> Check {
    const NAME: &str = "syncthing";
    match found {
        Ok(device) => {
            let short = device.split('-').next().unwrap_or(device);
            Check::pass(NAME, format!("Syncthing at {url} answers with the key (device {short})"))
        }
        Err(SyncthingProblem::WrongKey) => Check::fail(
            NAME,
            format!("Syncthing at {url} refused the API key"),
            format!("{where_key} the key in Syncthing's GUI (Actions > Settings > API Key)"),
        ),
        Err(SyncthingProblem::Unreachable(why)) => Check::fail(
            NAME,
            format!("Syncthing at {url} is not reachable: {why}"),
            "start Syncthing, or set the Node's spec.syncthing.apiUrl to where its GUI listens",
        ),
        Err(SyncthingProblem::Other(why)) => {
            Check::fail(NAME, why.clone(), "look at Syncthing's log; meshctl needs its REST API")
        }
    }
}

/// A `service/<name>` check per Service placed on this node: its program
/// (`command[0]`) is found on the PATH it will get, which is the one the
/// service manager gives the daemon (`install-service` writes it) unless the
/// Service sets its own.
pub(super) fn service_program_checks(set: &ManifestSet, node: &str, env: &NodeEnv) -> Vec<Check> {
    let platform = Platform::current();
    let binary = std::env::current_exe().unwrap_or_default();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    let manager_path = service_path(platform, &binary, &home);
    let daemon_dir = env.env_file().and_then(Path::parent).map(Path::to_path_buf);
    let placed = set.services.iter().filter(|(_, service)| set.runs_on(&service.spec, node));
    placed
        .map(|(name, service)| {
            let spec = &service.spec;
            let program = spec.command.first().map_or("", |word| word.value.as_str());
            let own_path = match spec.env.get("PATH").map(|value| &value.value) {
                Some(EnvValue::Text(path)) => Some(path.as_str()),
                _ => None,
            };
            let (path, owner) = match own_path {
                Some(path) => (path, "its own PATH in spec.env"),
                None => (manager_path.as_str(), path_owner(platform)),
            };
            let working_dir = spec.working_dir.as_deref().map(crate::config::expand_home);
            let working_dir = match (working_dir, &daemon_dir) {
                (Some(dir), Some(base)) if dir.is_relative() => Some(base.join(dir)),
                (dir, _) => dir,
            };
            let found = program::find(program, path.as_ref(), working_dir.as_deref(), program::is_executable);
            program_verdict(name, program, found.as_deref(), owner, path)
        })
        .collect()
}

fn program_verdict(service: &str, program: &str, found: Option<&Path>, owner: &str, path: &str) -> Check {
    let check = format!("service/{service}");
    match found {
        Some(file) if file == Path::new(program) => {
            Check::pass(&check, format!("Service/{service}: `{program}` is there"))
        }
        Some(file) => Check::pass(&check, format!("Service/{service}: `{program}` is {} on {owner}", file.display())),
        None if program.contains('/') => Check::fail(
            &check,
            format!("Service/{service}: `{program}` does not exist or is not executable"),
            "install it there, or correct the Service's command",
        ),
        None => Check::fail(
            &check,
            format!("Service/{service}: `{program}` not found on {owner} ({path})"),
            "install it into one of those folders, or give its full path as the Service's command[0]",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::check::{Status, render};

    #[test]
    fn tailscale_down_is_a_warning_unless_the_mesh_relies_on_it() {
        let up = TailnetStatus {
            running: true,
            self_ips: vec!["100.101.1.2".parse().unwrap()],
            self_dns_name: Some("laptop.tail1234.ts.net".into()),
            ..TailnetStatus::default()
        };
        let stopped = TailnetStatus::default();
        let missing = Err("Tailscale is not installed".to_owned());
        let table = [
            (Ok(up), false, Status::Pass),
            (Ok(stopped.clone()), false, Status::Warn),
            (Ok(stopped), true, Status::Fail),
            (missing.clone(), false, Status::Warn),
            (missing, true, Status::Fail),
        ];
        for (found, required, status) in table {
            assert_eq!(tailscale_check(&found, required).status, status, "{found:?} {required}");
        }
        let up = tailscale_check(&Ok(TailnetStatus { running: true, ..TailnetStatus::default() }), false);
        assert_eq!(up.message, "up as no MagicDNS name");
    }

    #[test]
    fn syncthing_names_a_wrong_key_apart_from_an_unreachable_one() {
        let url = "http://127.0.0.1:8384";
        let wrong = syncthing_verdict(url, "set SYNCTHING_API_KEY in .env to", &Err(SyncthingProblem::WrongKey));
        assert_eq!(
            render(&[wrong]),
            "fail  syncthing      Syncthing at http://127.0.0.1:8384 refused the API key — fix: set SYNCTHING_API_KEY in .env to the key in Syncthing's GUI (Actions > Settings > API Key)\n"
        );
        let down = syncthing_verdict(url, "", &Err(SyncthingProblem::Unreachable("refused".into())));
        assert_eq!(
            (down.status, down.message.as_str()),
            (Status::Fail, "Syncthing at http://127.0.0.1:8384 is not reachable: refused")
        );
        let ok = syncthing_verdict(url, "", &Ok("ABCDEFG-HIJKLMN".into()));
        assert_eq!(
            (ok.status, ok.message.as_str()),
            (Status::Pass, "Syncthing at http://127.0.0.1:8384 answers with the key (device ABCDEFG)")
        );
    }

    #[test]
    fn a_services_program_passes_where_it_is_found_and_fails_named_where_not() {
        let owner = "the LaunchAgent's PATH";
        let path = "/usr/bin:/bin";
        let table = [
            (
                "ollama",
                Some("/opt/homebrew/bin/ollama"),
                Status::Pass,
                "Service/ollama: `ollama` is /opt/homebrew/bin/ollama on the LaunchAgent's PATH",
            ),
            (
                "ollama",
                None,
                Status::Fail,
                "Service/ollama: `ollama` not found on the LaunchAgent's PATH (/usr/bin:/bin)",
            ),
            ("/opt/ollama", Some("/opt/ollama"), Status::Pass, "Service/ollama: `/opt/ollama` is there"),
            ("/opt/ollama", None, Status::Fail, "Service/ollama: `/opt/ollama` does not exist or is not executable"),
        ];
        for (program, found, status, message) in table {
            let check = program_verdict("ollama", program, found.map(Path::new), owner, path);
            assert_eq!(check.name, "service/ollama");
            assert_eq!((check.status, check.message.as_str()), (status, message));
            assert_eq!(check.fix.is_some(), status == Status::Fail, "{check:?}");
        }
    }

    #[test]
    fn syncthing_is_checked_for_the_node_or_wherever_a_key_is_set() {
        use crate::manifest::Located;
        let settings = NodeSyncthing {
            api_url: Located::new("http://127.0.0.1:9000".into(), Default::default()),
            api_key: SecretRef::File("~/st.key".into()),
            device_address: Located::new("dynamic".into(), Default::default()),
        };
        let target = |url: &str, key: SecretRef| Some(SyncthingTarget { api_url: url.into(), api_key: key });
        let env_key = || SecretRef::Env("SYNCTHING_API_KEY".into());
        let table = [
            (Some(&settings), false, None, target("http://127.0.0.1:9000", SecretRef::File("~/st.key".into()))),
            (
                Some(&settings),
                true,
                Some("127.0.0.1:1"),
                target("http://127.0.0.1:9000", SecretRef::File("~/st.key".into())),
            ),
            (None, true, None, target("http://127.0.0.1:8384", env_key())),
            (None, true, Some(""), target("http://127.0.0.1:8384", env_key())),
            (None, true, Some("127.0.0.1:28384"), target("http://127.0.0.1:28384", env_key())),
            (None, true, Some("https://st.local:8384"), target("https://st.local:8384", env_key())),
            (None, false, Some("127.0.0.1:28384"), None),
        ];
        for (node, key_set, gui, expected) in table {
            assert_eq!(syncthing_target(node, key_set, gui), expected, "{node:?} {key_set} {gui:?}");
        }
    }
}
