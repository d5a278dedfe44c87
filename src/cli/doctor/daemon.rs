//! The API port and the daemon that should answer there as this node.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use super::check::{Check, TIMEOUT};
use crate::api::wire::{API_VERSION, Health};
use crate::client::{ApiClient, ClientError};
use crate::config::default_listen;
use crate::controller::status::NodeStatus;
use crate::identity::NodeEnv;

/// Where the daemon listens: `MESH_LISTEN`, else the address it would pick.
pub(in crate::cli) async fn listen_addr(env: &NodeEnv) -> Result<SocketAddr, String> {
    match env.listen()? {
        Some(listen) => Ok(listen),
        None => {
            let tailnet = tokio::time::timeout(TIMEOUT, crate::tailscale::local_tailnet_ipv4()).await.ok().flatten();
            Ok(default_listen(tailnet))
        }
    }
}

/// What binding the listen address found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Bind {
    Free,
    InUse,
    Refused(String),
}

pub(super) fn bind(listen: SocketAddr) -> Bind {
    match TcpListener::bind(listen) {
        Ok(_) => Bind::Free,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => Bind::InUse,
        Err(error) => Bind::Refused(error.to_string()),
    }
}

/// What the daemon's API answered.
pub(super) enum DaemonFound {
    Unreachable(String),
    /// `/mesh/health` answered; `status` is `/api/v1/status` with the key.
    Answered {
        health: Health,
        status: Box<Result<NodeStatus, ClientError>>,
    },
}

impl DaemonFound {
    pub(super) async fn ask(client: &ApiClient) -> DaemonFound {
        match client.health().await {
            Err(error) => DaemonFound::Unreachable(error.to_string()),
            Ok(health) => DaemonFound::Answered { health, status: Box::new(client.status().await) },
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            DaemonFound::Answered { health, .. } => Some(&health.node),
            DaemonFound::Unreachable(_) => None,
        }
    }
}

pub(super) const START_DAEMON: &str = "start it: meshctl daemon or meshctl install-service";

pub(super) fn port_check(listen: SocketAddr, bind: &Bind, daemon: &DaemonFound, node: &str) -> Check {
    const NAME: &str = "api-port";
    match (bind, daemon.node()) {
        (Bind::Free, _) => Check::pass(NAME, format!("{listen} is free for the daemon")),
        (Bind::InUse, Some(answering)) if answering == node => {
            Check::pass(NAME, format!("{listen} is served by this node's daemon ({node})"))
        }
        (Bind::InUse, Some(other)) => Check::fail(
            NAME,
            format!("{listen} is served by the daemon of another node, {other}"),
            "stop that daemon, or give this node another port with MESH_LISTEN in .env",
        ),
        (Bind::InUse, None) => Check::fail(
            NAME,
            format!("{listen} is in use by something that is not a meshctl daemon"),
            format!("stop what listens there (lsof -i :{}), or set MESH_LISTEN in .env", listen.port()),
        ),
        (Bind::Refused(why), Some(answering)) if answering == node => {
            Check::pass(NAME, format!("{listen} is served by this node's daemon ({why} to bind it here)"))
        }
        (Bind::Refused(why), _) => Check::fail(
            NAME,
            format!("cannot listen on {listen}: {why}"),
            "set MESH_LISTEN in .env to an address of this machine",
        ),
    }
}

pub(super) fn daemon_check(base: &str, daemon: &DaemonFound, node: &str) -> Check {
    const NAME: &str = "daemon";
    match daemon {
        DaemonFound::Unreachable(why) => Check::fail(NAME, format!("nothing answers: {why}"), START_DAEMON),
        DaemonFound::Answered { health, .. } if health.node != node => Check::fail(
            NAME,
            format!("the daemon at {base} is Node {}, not {node}", health.node),
            "run this node's daemon with this .env, or point MESH_LISTEN at it",
        ),
        DaemonFound::Answered { health, .. } if health.api_version != API_VERSION => Check::fail(
            NAME,
            format!("the daemon at {base} speaks mesh API {}, this meshctl {API_VERSION}", health.api_version),
            "restart the daemon with this meshctl (meshctl daemon, or restart its service)",
        ),
        DaemonFound::Answered { health, status } => match status.as_ref() {
            Err(ClientError::Api { status, .. }) if status.as_u16() == 401 => Check::fail(
                NAME,
                format!("{base} refused the key: the key in .env is not the daemon's"),
                "set MESH_API_KEY in .env to the daemon's key (restart the daemon after changing its .env)",
            ),
            Err(error) => Check::fail(
                NAME,
                format!("{base} answers its health but not its status: {error}"),
                "look at the daemon's log (RUST_LOG=debug meshctl daemon shows more)",
            ),
            Ok(status) => {
                let revision = health.revision.as_deref().unwrap_or("no revision yet");
                let rejected = status.last_error.is_some();
                let message = format!(
                    "{node} answers at {base}: meshctl {}, API {}, {revision}, up {}",
                    health.version,
                    health.api_version,
                    humantime::format_duration(Duration::from_secs(health.uptime_seconds))
                );
                if rejected {
                    Check::warn(
                        NAME,
                        format!("{message}; it rejected the last snapshot"),
                        "meshctl status shows why; the previous revision keeps running",
                    )
                } else {
                    Check::pass(NAME, message)
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::check::Status;

    fn health(node: &str) -> Health {
        Health {
            node: node.into(),
            role: None,
            version: "0.1.0".into(),
            commit: "1a2b3c4".into(),
            api_version: API_VERSION.into(),
            revision: Some("r1".into()),
            uptime_seconds: 61,
            source: None,
            placements: Default::default(),
        }
    }

    fn answered(node: &str) -> DaemonFound {
        DaemonFound::Answered { health: health(node), status: Box::new(Ok(NodeStatus::fixture(node))) }
    }

    #[test]
    fn the_api_port_is_free_or_served_by_our_daemon_and_anything_else_fails() {
        let listen: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let nobody = DaemonFound::Unreachable("refused".into());
        let refused = Bind::Refused("cannot assign requested address".into());
        let table = [
            (Bind::Free, &nobody, Status::Pass, "is free"),
            (Bind::InUse, &answered("laptop"), Status::Pass, "served by this node's daemon"),
            (Bind::InUse, &answered("mini"), Status::Fail, "another node, mini"),
            (Bind::InUse, &nobody, Status::Fail, "not a meshctl daemon"),
            (refused.clone(), &answered("laptop"), Status::Pass, "served by this node's daemon"),
            (refused, &nobody, Status::Fail, "cannot listen on 127.0.0.1:8000"),
        ];
        for (bind, daemon, status, words) in table {
            let check = port_check(listen, &bind, daemon, "laptop");
            assert_eq!(check.status, status, "{bind:?}: {check:?}");
            assert!(check.message.contains(words), "{bind:?}: {check:?}");
        }
    }

    #[test]
    fn the_daemon_must_answer_as_this_node_and_take_the_key() {
        let unauthorized = ClientError::Api {
            status: reqwest::StatusCode::UNAUTHORIZED,
            error: "unauthorized".into(),
            message: "a valid key is required".into(),
            diagnostics: vec![],
        };
        let newer = match answered("laptop") {
            DaemonFound::Answered { mut health, status } => {
                health.api_version = "v2".into();
                DaemonFound::Answered { health, status }
            }
            unreachable => unreachable,
        };
        let refused = DaemonFound::Answered { health: health("laptop"), status: Box::new(Err(unauthorized)) };
        let table = [
            (answered("laptop"), Status::Pass, "laptop answers at http://x: meshctl 0.1.0, API v1, r1, up 1m 1s"),
            (answered("mini"), Status::Fail, "the daemon at http://x is Node mini, not laptop"),
            (newer, Status::Fail, "the daemon at http://x speaks mesh API v2, this meshctl v1"),
            (refused, Status::Fail, "http://x refused the key: the key in .env is not the daemon's"),
            (DaemonFound::Unreachable("refused".into()), Status::Fail, "nothing answers: refused"),
        ];
        for (found, status, message) in table {
            let check = daemon_check("http://x", &found, "laptop");
            assert_eq!((check.status, check.message.as_str()), (status, message));
        }
        let down = daemon_check("http://x", &DaemonFound::Unreachable("refused".into()), "laptop");
        assert_eq!(down.fix.as_deref(), Some("start it: meshctl daemon or meshctl install-service"));
    }
}
