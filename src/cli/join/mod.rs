//! Joining a mesh: `meshctl join-token` on a node of it, and the joining side
//! of `meshctl init --join` — the token read from standard input, a file or a
//! prompt (never the command line), checked against the node that made it,
//! and this node registered there and at every node that node knows of. The
//! files are `init`'s to write.

mod token;

use std::io::{IsTerminal as _, Read as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

pub(super) use self::token::JoinToken;
use super::Outcome;
use crate::api::wire::{MeshNode, PeerRegistration};
use crate::client::{ApiClient, ClientError};
use crate::identity::{NODE_ID, NodeEnv, ROLE};
use crate::manifest::Object;
use crate::manifest::kinds::{NodeSpec, Role};
use crate::net::host_port;

#[derive(Debug, clap::Args)]
pub(super) struct TokenArgs {
    /// The host a joining node dials this one at (default: the address this
    /// node's Node manifest declares, which the whole mesh dials; without one,
    /// the host of MESH_LISTEN when it is not 0.0.0.0 or ::, else this node's
    /// Tailscale IP, else its host name).
    #[arg(long, value_name = "HOST")]
    address: Option<String>,
}

/// `meshctl join-token`: prints this node's token, one line on stdout.
pub(super) fn token(args: TokenArgs, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = NodeEnv::load(env_file)?;
    let from = env.env_file().map_or_else(|| "the environment".to_owned(), |path| path.display().to_string());
    let node = env
        .value(NODE_ID)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("{NODE_ID} is not set in {from}: run `meshctl init` on this node first"))?;
    let listen = listen_of(&env)?;
    let declared = declared_node(&env, &node);
    let address = match (args.address, &declared) {
        (Some(address), _) => address,
        (None, Some(declared)) => declared.spec.address.value.clone(),
        (None, None) => reachable_host(listen, tailnet_ipv4, &host_name),
    };
    let key = super::cli_api_key(&env)?.ok_or_else(|| {
        anyhow::anyhow!(
            "this node has no mesh API key (MESH_API_KEY in {from}, or the Mesh's auth.apiKey): a joining node \
             could not be let in; run `meshctl init` first"
        )
    })?;
    let token = JoinToken {
        role: role_of(&env, declared.as_ref()),
        api_port: listen.map_or(crate::config::DEFAULT_PORT, |listen| listen.port()),
        node,
        address,
        key,
    };
    let line = token.encode();
    // The same checks a joining node makes, so a bad --address fails here.
    JoinToken::decode(&line).map_err(|error| anyhow::anyhow!("cannot make a join token: {error}"))?;
    println!("{line}");
    eprintln!(
        "This token holds the mesh key: pass it to the new machine over a safe channel, and there run\n\
         `meshctl init --join -` with it on standard input (or `--join` alone to paste it)."
    );
    Ok(Outcome::Success)
}

/// Where `init --join` reads the token.
pub(super) enum TokenInput {
    Stdin,
    File(PathBuf),
    /// Prompted for on a terminal (echo off); read from stdin when there is none.
    Prompt,
}

/// The input `--join [-]` and `--join-file F` ask for; an error when a token
/// was given on the command line, where `ps` and the shell history show it.
pub(super) fn token_input(join: Option<&Option<String>>, file: Option<&Path>) -> Result<Option<TokenInput>, String> {
    match (join, file) {
        (_, Some(file)) => Ok(Some(TokenInput::File(file.to_owned()))),
        (Some(Some(dash)), None) if dash == "-" => Ok(Some(TokenInput::Stdin)),
        (Some(Some(_)), None) => Err("--join takes no token on the command line (`ps` and the shell history would \
                                      show the key): use `--join -` with the token on standard input, \
                                      `--join-file FILE`, or `--join` alone to be prompted"
            .into()),
        (Some(None), None) => Ok(Some(TokenInput::Prompt)),
        (None, None) => Ok(None),
    }
}

/// The longest text read as a token: a real one is a few hundred bytes.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// Reads and decodes the token; a malformed one is refused with the reason.
pub(super) fn read_token(input: TokenInput) -> anyhow::Result<JoinToken> {
    let (text, from) = match input {
        TokenInput::File(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            (text, path.display().to_string())
        }
        TokenInput::Prompt if std::io::stdin().is_terminal() => (prompt()?, "what was typed".to_owned()),
        TokenInput::Stdin | TokenInput::Prompt => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_TOKEN_BYTES)
                .read_to_string(&mut text)
                .context("cannot read the join token from standard input")?;
            (text, "standard input".to_owned())
        }
    };
    JoinToken::decode(&text).map_err(|error| {
        anyhow::anyhow!(
            "the join token from {from} is malformed: {error}. Copy the whole line that `meshctl join-token` \
             printed on a node of the mesh; nothing was written"
        )
    })
}

/// Asks for the token on the terminal, echo off.
fn prompt() -> anyhow::Result<String> {
    // Off before the prompt shows: what is typed after it is never echoed.
    let _echo_off = crate::sys::stdin_echo_off().context("cannot turn off the terminal's echo")?;
    eprint!("Join token (from `meshctl join-token` on a node of the mesh; not shown): ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read the join token")?;
    Ok(line)
}

/// A node of the mesh this node joins, as the token's node knows it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Member {
    pub name: String,
    pub role: Role,
    pub address: String,
    pub api_port: u16,
}

/// How long the join waits for a node of the mesh.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the token against its node (it answers, as that node, and takes
/// the key), registers `this` node there and at every other node it knows
/// of, and returns those nodes, the token's first. Any refusal by the token's
/// node is an error that says which.
pub(super) fn join(token: &JoinToken, this: &PeerRegistration) -> anyhow::Result<Vec<Member>> {
    if this.name == token.node {
        anyhow::bail!(
            "this node would be named {0}, as the node that made the token: give it another name with --node; \
             nothing was written",
            this.name
        );
    }
    super::runtime()?.block_on(async {
        let at = host_port(&token.address, token.api_port);
        let unkeyed = ApiClient::new(&at, None, JOIN_TIMEOUT);
        let health = unkeyed.health().await.map_err(|error| match error {
            ClientError::Unreachable { reason, .. } => anyhow::anyhow!(
                "cannot reach {node} at {at}, the address in the join token ({reason}): is its daemon running, and \
                 does this machine reach that address? (`meshctl join-token --address HOST` on {node} puts another \
                 in the token); nothing was written",
                node = token.node
            ),
            other => anyhow::anyhow!("{at} does not answer as an agentmesh node: {other}; nothing was written"),
        })?;
        if health.node != token.node {
            anyhow::bail!(
                "{at} answers as node {}, not {}, the node that made the token; nothing was written",
                health.node,
                token.node
            );
        }
        let first = ApiClient::new(&at, Some(&token.key), JOIN_TIMEOUT);
        first.register_peer(this).await.map_err(|error| match error {
            ClientError::Api { status, .. } if status.as_u16() == 401 => anyhow::anyhow!(
                "{node} at {at} refused the join token's key: the mesh key changed since the token was made; run \
                 `meshctl join-token` on {node} again; nothing was written",
                node = token.node
            ),
            other => anyhow::anyhow!("{} did not take this node: {other}; nothing was written", token.node),
        })?;
        let mesh = first.mesh().await.with_context(|| format!("cannot list the nodes {} knows", token.node))?;
        let mut members = vec![Member {
            name: token.node.clone(),
            role: token.role,
            address: token.address.clone(),
            api_port: token.api_port,
        }];
        for node in mesh.into_iter().filter(|node| !node.this_node && node.name != this.name) {
            register_at(&node, &token.key, this).await;
            members.push(Member {
                role: Role::parse(&node.role).unwrap_or(Role::Satellite),
                name: node.name,
                address: node.address,
                api_port: node.api_port,
            });
        }
        Ok(members)
    })
}

/// Registers `this` at another node of the mesh; one that does not take it
/// learns of this node when the manifests declare it, so that is a warning.
async fn register_at(node: &MeshNode, key: &str, this: &PeerRegistration) {
    let authority = node.authority();
    let client = ApiClient::new(&authority, Some(key), JOIN_TIMEOUT);
    if let Err(error) = client.register_peer(this).await {
        eprintln!(
            "warning: {} (at {authority}) did not take this node: {error}; it sees this node once its manifests declare it",
            node.name
        );
    }
}

/// An existing manifests folder is left as it is: says which nodes of the
/// mesh it does not declare, since this node stops probing them once it loads.
pub(super) fn warn_undeclared(manifests: &Path, members: &[Member]) {
    let Ok((files, problems)) = crate::manifest::loader::load_dir(manifests) else { return };
    let set = crate::manifest::validate(&files, problems).set;
    for member in members.iter().filter(|member| !set.nodes.contains_key(&member.name)) {
        eprintln!(
            "warning: {} does not declare Node/{} (role {}, address {}, apiPort {}): add it, or this node stops \
             probing it once the manifests load",
            manifests.display(),
            member.name,
            member.role.as_str(),
            member.address,
            member.api_port
        );
    }
}

/// The host a peer dials this node at: the listen address's host unless it
/// is unspecified (0.0.0.0 or ::), else the tailnet IP, else the host name.
pub(super) fn reachable_host(
    listen: Option<SocketAddr>,
    tailnet: impl FnOnce() -> Option<Ipv4Addr>,
    host_name: &dyn Fn() -> String,
) -> String {
    match listen.map(|listen| listen.ip()).filter(|ip| !ip.is_unspecified()) {
        Some(ip) => ip.to_string(),
        None => tailnet().map_or_else(host_name, |ip| IpAddr::V4(ip).to_string()),
    }
}

/// `MESH_LISTEN`, when set.
fn listen_of(env: &NodeEnv) -> anyhow::Result<Option<SocketAddr>> {
    env.listen().map_err(anyhow::Error::msg)
}

/// This node's Node in the local manifests, when they declare it.
fn declared_node(env: &NodeEnv, node: &str) -> Option<Object<NodeSpec>> {
    let (files, problems) = crate::manifest::loader::load_dir(&env.manifests_dir()).ok()?;
    crate::manifest::validate(&files, problems).set.nodes.get(node).cloned()
}

/// This node's role: its Node manifest's, else `AGENT_ROLE`, else satellite.
fn role_of(env: &NodeEnv, declared: Option<&Object<NodeSpec>>) -> Role {
    declared.map(|node| node.spec.role).or_else(|| env.value(ROLE).and_then(Role::parse)).unwrap_or(Role::Satellite)
}

/// This machine's Tailscale IP, when Tailscale is up.
pub(super) fn tailnet_ipv4() -> Option<Ipv4Addr> {
    super::runtime().ok().and_then(|rt| rt.block_on(crate::tailscale::local_tailnet_ipv4()))
}

/// This machine's host name, as the network may know it.
pub(super) fn host_name() -> String {
    crate::sys::hostname().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reachable_host_is_the_listen_host_else_the_tailnet_ip_else_the_host_name() {
        let tailnet = Some(Ipv4Addr::new(100, 64, 0, 2));
        let host = || "mini.local".to_owned();
        let table: [(Option<&str>, Option<Ipv4Addr>, &str); 6] = [
            (Some("127.0.0.3:8100"), tailnet, "127.0.0.3"),
            (Some("[fd7a:115c:a1e0::1]:8000"), None, "fd7a:115c:a1e0::1"),
            (Some("0.0.0.0:8000"), tailnet, "100.64.0.2"),
            (Some("[::]:8000"), None, "mini.local"),
            (None, tailnet, "100.64.0.2"),
            (None, None, "mini.local"),
        ];
        for (listen, tailnet, expected) in table {
            let listen = listen.map(|l| l.parse().unwrap());
            assert_eq!(reachable_host(listen, || tailnet, &host), expected, "{listen:?}");
        }
    }

    #[test]
    fn a_token_is_never_taken_from_the_command_line() {
        assert!(matches!(token_input(Some(&Some("-".into())), None), Ok(Some(TokenInput::Stdin))));
        assert!(matches!(token_input(Some(&None), None), Ok(Some(TokenInput::Prompt))));
        assert!(matches!(token_input(None, Some(Path::new("t"))), Ok(Some(TokenInput::File(_)))));
        assert!(matches!(token_input(None, None), Ok(None)));
        let refused = token_input(Some(&Some("meshjoin1:abc".into())), None).err().unwrap();
        assert!(refused.contains("--join -") && !refused.contains("abc"), "{refused}");
    }
}
