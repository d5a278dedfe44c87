//! `meshctl init`: sets this node up. Writes `.env` (owner-only, atomically) and,
//! when there is no manifests folder, a starter set that `meshctl validate`
//! accepts with that `.env`. A second run with the same inputs changes nothing;
//! different inputs are refused unless `--force`, and a key is never replaced
//! unless one is given.
//!
//! A flag left out keeps the value an existing `.env` holds; the defaults (the
//! host name, `satellite`, a new key, the Tailscale IP) apply only to settings
//! the file does not have.
//!
//! With `--join`, the key and the first peer come from a join token, which
//! `join` reads and checks against its node before anything is written here.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Outcome;
use super::join::{self, JoinToken, Member};
use super::schema::write_schemas;
use crate::api::wire::PeerRegistration;
use crate::atomic_file::write_atomic;
use crate::env_location;
use crate::identity::{DEFAULT_MANIFESTS, LISTEN, MANIFESTS, NODE_ID, NodeEnv, ROLE};
use crate::manifest::Kind;
use crate::manifest::kinds::Role;
use crate::manifest::name_problem;
use crate::manifest::schema::schema_file;

const API_KEY: &str = "MESH_API_KEY";
const SYNCTHING_API_KEY: &str = "SYNCTHING_API_KEY";
/// The peers before any set loads: a join writes the token's node there.
const PEERS: &str = "MESH_PEERS";

/// The settings `init` always writes (`MESH_PEERS` too once a join set it);
/// any other variable of an existing `.env` is kept.
const MANAGED: [&str; 6] = [NODE_ID, ROLE, API_KEY, LISTEN, MANIFESTS, SYNCTHING_API_KEY];

/// Settings whose values are never printed.
const SECRETS: [&str; 2] = [API_KEY, SYNCTHING_API_KEY];

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// This node's name (default: the host name, made a valid name).
    #[arg(long, value_name = "NAME", value_parser = parse_node_name)]
    node: Option<String>,
    /// This node's role (default: satellite).
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    /// The mesh API key, the same on every node (default: 32 new random bytes,
    /// hex). `ps` and the shell history show it: prefer --api-key-file or --join.
    #[arg(long, value_name = "KEY", value_parser = parse_api_key)]
    api_key: Option<String>,
    /// Read the mesh API key from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "api_key")]
    api_key_file: Option<PathBuf>,
    /// Join a mesh with the token `meshctl join-token` prints on one of its
    /// nodes: `--join -` reads it from standard input; `--join` alone prompts
    /// for it (not shown) on a terminal. Never the token itself: `ps` would
    /// show its key.
    #[arg(long, value_name = "-", num_args = 0..=1, conflicts_with_all = ["api_key", "api_key_file"])]
    join: Option<Option<String>>,
    /// Join a mesh with the token in this file (see --join).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["join", "api_key", "api_key_file"])]
    join_file: Option<PathBuf>,
    /// Where the mesh API listens (default: the Tailscale IP, port 8000, when
    /// Tailscale is up; else left to the daemon).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Read the local Syncthing API key from Syncthing's config.xml (default:
    /// the platform's locations).
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    syncthing_from_config: Option<Option<PathBuf>>,
    /// Overwrite settings of an existing .env that differ.
    #[arg(long)]
    force: bool,
    /// The folder to set up: .env and manifests/ go there (with --env-file,
    /// next to that file).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    Primary,
    Satellite,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Primary => Role::Primary,
            RoleArg::Satellite => Role::Satellite,
        }
    }
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env_path = env_file.map_or_else(|| args.dir.join(".env"), Path::to_path_buf);
    let base = env_path.parent().map_or_else(|| args.dir.clone(), Path::to_path_buf);
    let existing = read_existing(&env_path)?;
    let syncthing_key = match &args.syncthing_from_config {
        Some(path) => Some(syncthing_api_key(path.as_deref())?),
        None => None,
    };
    let token = match join::token_input(args.join.as_ref(), args.join_file.as_deref()) {
        Ok(input) => input.map(join::read_token).transpose()?,
        Err(usage) => {
            eprintln!("error: {usage}");
            return Ok(Outcome::Code(2));
        }
    };
    let api_key = match (&args.api_key, &args.api_key_file, &token) {
        (Some(key), _, _) => {
            eprintln!(
                "warning: a key given with --api-key is visible to every user of this machine in `ps`, and stays in \
                 the shell history: prefer --api-key-file FILE or --join"
            );
            Some(key.clone())
        }
        (None, Some(file), _) => Some(read_api_key_file(file)?),
        (None, None, Some(token)) => Some(token.key.clone()),
        (None, None, None) => None,
    };
    let tailnet_ip = std::cell::OnceCell::new();
    let tailnet = || *tailnet_ip.get_or_init(join::tailnet_ipv4);
    let wanted = Wanted {
        node: args.node.clone(),
        role: args.role.map(Role::from),
        api_key,
        listen: args.listen.map(|a| a.to_string()),
        syncthing_key,
        peers: token.as_ref().map(peers_json),
    };
    let settings = settings(&wanted, existing.as_ref(), &tailnet, &hostname_node_name, &generate_api_key)?;
    // Where peers dial this node: a joining node is registered where it
    // listens; a first node is declared at the IP `--listen` gives, else by
    // its name (MagicDNS). `join-token` hands out what the Node declares.
    let listen: Option<SocketAddr> = settings.get(LISTEN).and_then(|listen| listen.parse().ok());
    let this_address = match &token {
        Some(_) => join::reachable_host(listen, tailnet, &join::host_name),
        None => match args.listen.map(|listen| listen.ip()).filter(|ip| !ip.is_unspecified()) {
            Some(ip) => ip.to_string(),
            None => settings.get(NODE_ID).unwrap_or_default().to_owned(),
        },
    };

    if refuses_differences(&env_path, existing.as_ref(), &settings, args.force) {
        return Ok(Outcome::Failure);
    }
    let members = match &token {
        Some(token) => join::join(token, &registration(&settings, &this_address, &env_path)?)?,
        None => Vec::new(),
    };

    let mut changed = Vec::new();
    match &existing {
        Some(old) => {
            let differences = differences(old, &settings);
            if !differences.is_empty() {
                write_env(&env_path, &settings, old)?;
                changed.push(format!("updated {} ({})", env_path.display(), differences.join("; ")));
            }
        }
        None => {
            write_env(&env_path, &settings, &Existing::default())?;
            changed.push(format!("wrote {} (mode 0600)", env_path.display()));
        }
    }

    let manifests = base.join(settings.get(MANIFESTS).unwrap_or(DEFAULT_MANIFESTS));
    if manifests.exists() {
        check_manifests(&env_path);
        join::warn_undeclared(&manifests, &members);
    } else {
        let files = starter_manifests(&settings, tailnet().is_some(), &this_address, &members);
        for (relative, text) in &files {
            let path = manifests.join(relative);
            std::fs::create_dir_all(path.parent().unwrap_or(&manifests))
                .with_context(|| format!("cannot create {}", manifests.display()))?;
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        }
        let nodes = if members.is_empty() { "this Node" } else { "every Node" };
        changed.push(format!("wrote a starter set in {} ({nodes} and a Mesh)", manifests.display()));
    }
    let schemas = schemas_dir(&manifests);
    if !write_schemas(&schemas)?.is_empty() {
        changed.push(format!("wrote the manifests' JSON Schemas in {}", schemas.display()));
    }

    match env_location::write_context(&env_path) {
        Ok(Some(context)) => {
            changed.push(format!("wrote {} (meshctl in any folder uses this node)", context.display()));
        }
        Ok(None) => {}
        Err(error) => eprintln!("warning: {error:#}; meshctl finds this node from its folder or with --env-file"),
    }
    for warning in warnings(&env_path, &settings) {
        eprintln!("warning: {warning}");
    }
    if changed.is_empty() {
        println!("already set up: nothing changed");
    } else {
        for line in &changed {
            println!("{line}");
        }
    }
    match members.first() {
        Some(first) => print!("{}", joined_next_steps(&settings, &this_address, first)),
        None => print!("{}", next_steps(&settings)),
    }
    Ok(Outcome::Success)
}

/// Whether to refuse (having said why) settings that differ from an existing
/// `.env`'s, as without `force`: checked before a join registers this node
/// anywhere.
fn refuses_differences(env_path: &Path, old: Option<&Existing>, settings: &Settings, force: bool) -> bool {
    let Some(old) = old else { return false };
    let differences = differences(old, settings);
    if differences.is_empty() || force {
        return false;
    }
    eprintln!("error: {} already holds other settings; nothing changed:", env_path.display());
    for difference in &differences {
        eprintln!("  {difference}");
    }
    eprintln!("Run again with --force to write the new settings (an existing key is kept unless --api-key is given).");
    true
}

/// `MESH_PEERS` of a joining node: the token's node.
fn peers_json(token: &JoinToken) -> String {
    serde_json::to_string(&[crate::net::host_port(&token.address, token.api_port)]).expect("strings serialize")
}

/// How the nodes of the mesh reach this one. An `AGENT_ROLE` kept from
/// `env_path` that names no role is refused here, before any node is told.
fn registration(settings: &Settings, address: &str, env_path: &Path) -> anyhow::Result<PeerRegistration> {
    let role = match settings.get(ROLE) {
        Some(text) => Some(Role::parse(text).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: AGENT_ROLE \"{text}\" is not a role: use primary or satellite (or --role); nothing was written",
                env_path.display()
            )
        })?),
        None => None,
    };
    Ok(PeerRegistration {
        name: settings.get(NODE_ID).unwrap_or_default().to_owned(),
        role,
        address: address.to_owned(),
        api_port: listen_port(settings),
    })
}

fn listen_port(settings: &Settings) -> u16 {
    settings.get(LISTEN).and_then(|l| l.parse::<SocketAddr>().ok()).map_or(crate::config::DEFAULT_PORT, |a| a.port())
}

/// `--api-key-file`: the key on the file's first line.
fn read_api_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let key = text.lines().next().unwrap_or_default().trim();
    parse_api_key(key).map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))
}

/// What the user asked for; None where a flag was left out.
#[derive(Debug, Default)]
struct Wanted {
    node: Option<String>,
    role: Option<Role>,
    api_key: Option<String>,
    listen: Option<String>,
    syncthing_key: Option<String>,
    /// `MESH_PEERS`, a JSON list.
    peers: Option<String>,
}

/// The variables of an existing `.env`, in the file's order.
#[derive(Debug, Default)]
struct Existing {
    vars: Vec<(String, String)>,
}

impl Existing {
    fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

/// The managed settings to write, in order; a setting that is None is left out.
#[derive(Debug, PartialEq)]
struct Settings {
    values: Vec<(&'static str, Option<String>)>,
}

impl Settings {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| *n == name).and_then(|(_, v)| v.as_deref())
    }
}

fn read_existing(path: &Path) -> anyhow::Result<Option<Existing>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let env = NodeEnv::from_parts(Some((path.to_owned(), text.clone())), std::iter::empty())?;
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (name, _) = item.with_context(|| format!("cannot parse {}", path.display()))?;
        let value = env.get(&name).map(|s| s.value.clone()).unwrap_or_default();
        vars.push((name, value));
    }
    Ok(Some(Existing { vars }))
}

/// The settings to write: what was asked, else what the file holds, else the
/// defaults.
fn settings(
    wanted: &Wanted,
    existing: Option<&Existing>,
    tailnet: &dyn Fn() -> Option<std::net::Ipv4Addr>,
    hostname: &dyn Fn() -> String,
    new_key: &dyn Fn() -> anyhow::Result<String>,
) -> anyhow::Result<Settings> {
    let old = |name: &str| existing.and_then(|e| e.get(name)).map(str::to_owned);
    let node = wanted.node.clone().or_else(|| old(NODE_ID)).unwrap_or_else(hostname);
    let role = match wanted.role {
        Some(role) => role.as_str().to_owned(),
        None => old(ROLE).unwrap_or_else(|| Role::Satellite.as_str().to_owned()),
    };
    let api_key = match wanted.api_key.clone().or_else(|| old(API_KEY)) {
        Some(key) => key,
        None => new_key()?,
    };
    let listen = match (&wanted.listen, existing) {
        (Some(listen), _) => Some(listen.clone()),
        (None, Some(_)) => old(LISTEN),
        (None, None) => tailnet().map(|ip| SocketAddr::from((ip, crate::config::DEFAULT_PORT)).to_string()),
    };
    // An existing file without it means the same default: leave it so.
    let manifests = match existing {
        Some(_) => old(MANIFESTS),
        None => Some(DEFAULT_MANIFESTS.to_owned()),
    };
    let syncthing = wanted.syncthing_key.clone().or_else(|| old(SYNCTHING_API_KEY));
    let peers = wanted.peers.clone().or_else(|| old(PEERS));
    Ok(Settings {
        values: vec![
            (NODE_ID, Some(node)),
            (ROLE, Some(role)),
            (API_KEY, Some(api_key)),
            (LISTEN, listen),
            (MANIFESTS, manifests),
            (SYNCTHING_API_KEY, syncthing),
            (PEERS, peers),
        ],
    })
}

/// How the settings differ from the file's, one line each; secrets not shown.
fn differences(old: &Existing, new: &Settings) -> Vec<String> {
    let show = |name: &str, value: Option<&str>| match value {
        None => "unset".to_owned(),
        Some(_) if SECRETS.contains(&name) => "set".to_owned(),
        Some(value) => format!("\"{value}\""),
    };
    new.values
        .iter()
        .filter(|(name, value)| old.get(name) != value.as_deref())
        .map(|(name, value)| {
            if SECRETS.contains(name) && old.get(name).is_some() && value.is_some() {
                format!("{name} differs (values not shown)")
            } else {
                format!("{name}: {} in the file, {} asked", show(name, old.get(name)), show(name, value.as_deref()))
            }
        })
        .collect()
}

fn write_env(path: &Path, settings: &Settings, old: &Existing) -> anyhow::Result<()> {
    write_atomic(path, render_env(settings, old).as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

/// The `.env` text, commented like `.env.example`; the other variables of the
/// previous file are kept at the end.
fn render_env(settings: &Settings, old: &Existing) -> String {
    let mut out = String::new();
    let line = |out: &mut String, name: &str, comment: &str| {
        out.push('\n');
        out.push_str(comment);
        match settings.get(name) {
            Some(value) => {
                let _ = writeln!(out, "{name}={}", quote(value));
            }
            None => {
                let _ = writeln!(out, "#{name}=");
            }
        }
    };
    out.push_str(
        "# agentmesh node settings, written by `meshctl init` (mode 0600: it holds secrets).\n\
         # Variables set in the process environment win over this file. .env.example in the\n\
         # agentmesh repository describes every setting.\n",
    );
    line(&mut out, NODE_ID, "# This node's name: must match a Node manifest's metadata.name.\n");
    line(
        &mut out,
        ROLE,
        "# primary or satellite. Only used until the manifests load: the Node manifest's\n\
         # spec.role wins, and a mismatch is reported, not fatal.\n",
    );
    line(
        &mut out,
        API_KEY,
        "# The shared secret of the mesh API: the same on every node. Another node gets it\n\
         # in a join token: `meshctl join-token` here, `meshctl init --join` there.\n",
    );
    line(
        &mut out,
        LISTEN,
        "# Where the mesh API listens. Unset: this node's Tailscale IP when Tailscale is up,\n\
         # else 127.0.0.1:8000. Never 0.0.0.0 unless you set it so.\n",
    );
    line(&mut out, MANIFESTS, "# The manifests folder, relative to this file.\n");
    line(
        &mut out,
        SYNCTHING_API_KEY,
        "# The local Syncthing REST API key, referenced from the Node manifest as\n\
         # apiKey: {env: SYNCTHING_API_KEY}. `meshctl init --syncthing-from-config` reads it\n\
         # from Syncthing's config.xml.\n",
    );
    if settings.get(PEERS).is_some() {
        line(
            &mut out,
            PEERS,
            "# The peers to probe before the manifests load (`meshctl init --join` writes the\n\
             # node that made the token), as a JSON list of host:port.\n",
        );
    }
    let written = |name: &str| MANAGED.contains(&name) || settings.get(name).is_some();
    let others: Vec<_> = old.vars.iter().filter(|(name, _)| !written(name)).collect();
    if !others.is_empty() {
        out.push_str("\n# Kept from the previous .env.\n");
        for (name, value) in others {
            let _ = writeln!(out, "{name}={}", quote(value));
        }
    }
    out
}

/// A value as dotenv reads it back unchanged.
fn quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:/@,+=[]".contains(c);
    if value.chars().all(plain) {
        value.to_owned()
    } else if !value.contains('\'') && !value.contains('\n') {
        format!("'{value}'")
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('\n', "\\n");
        format!("\"{escaped}\"")
    }
}

/// The starter set: this node's Node (dialled at `address`), the Nodes of
/// the mesh it joins, and a Mesh whose key is `MESH_API_KEY`.
fn starter_manifests(settings: &Settings, tailscale: bool, address: &str, members: &[Member]) -> Vec<(String, String)> {
    let node = settings.get(NODE_ID).unwrap_or_default();
    let mesh_yaml = format!(
        "# Settings for the whole mesh (at most one Mesh), written by `meshctl init`.\n\
         apiVersion: agentmesh/v1alpha1\n\
         kind: Mesh\n\
         metadata:\n  name: mesh\n\
         spec:\n  auth:\n    \
         # The shared key of the mesh API; each node reads it from its own .env.\n    \
         apiKey: {{env: MESH_API_KEY}}\n  \
         discovery:\n    tailscale: {tailscale}\n"
    );
    let mut files = vec![(format!("nodes/{node}.yaml"), this_node_manifest(settings, address))];
    for member in members {
        let Member { name, role, address, api_port } = member;
        let role = role.as_str();
        let yaml = format!(
            "# A node of the mesh this one joined, as `meshctl init --join` learned it.\n\
             apiVersion: agentmesh/v1alpha1\n\
             kind: Node\n\
             metadata:\n  name: {name}\n\
             spec:\n  role: {role}\n  address: {address}\n  apiPort: {api_port}\n"
        );
        files.push((format!("nodes/{name}.yaml"), yaml));
    }
    files.push(("mesh.yaml".to_owned(), mesh_yaml));
    files
        .into_iter()
        .map(|(relative, text)| {
            let kind = if relative.starts_with("nodes/") { Kind::Node } else { Kind::Mesh };
            let text = format!("{}{text}", modeline(&relative, kind));
            (relative, text)
        })
        .collect()
}

/// This node's Node manifest, dialled at `address`.
fn this_node_manifest(settings: &Settings, address: &str) -> String {
    let node = settings.get(NODE_ID).unwrap_or_default();
    let role = settings.get(ROLE).unwrap_or_default();
    let port = listen_port(settings);
    let syncthing = if settings.get(SYNCTHING_API_KEY).is_some() {
        format!(
            "  syncthing:\n    apiUrl: http://127.0.0.1:8384\n    apiKey: {{env: SYNCTHING_API_KEY}}\n    \
             deviceAddress: tcp://{node}:22000\n"
        )
    } else {
        format!(
            "  # To take part in folder sync, set SYNCTHING_API_KEY in .env and uncomment:\n  \
             # syncthing:\n  #   apiUrl: http://127.0.0.1:8384\n  #   apiKey: {{env: SYNCTHING_API_KEY}}\n  \
             #   deviceAddress: tcp://{node}:22000\n"
        )
    };
    format!(
        "# This node, written by `meshctl init`. Describe the other node in a file like\n\
         # this one (its name, role and address) and keep this folder in Git.\n\
         apiVersion: agentmesh/v1alpha1\n\
         kind: Node\n\
         metadata:\n  name: {node}\n\
         spec:\n  role: {role}\n  \
         # How peers reach this node: its tailnet name or an address.\n  \
         address: {address}\n  apiPort: {port}\n{syncthing}"
    )
}

/// After a join: this node's manifest for the shared set, and what to run.
fn joined_next_steps(settings: &Settings, address: &str, first: &Member) -> String {
    let node = settings.get(NODE_ID).unwrap_or_default();
    let role = settings.get(ROLE).unwrap_or_default();
    let first = &first.name;
    let mut out = format!(
        "\nThis node: {node} ({role}), joined to {first}, which probes it from now on.\n\
         Add this Node to the shared manifests (as nodes/{node}.yaml, beside the other nodes'):\n\n"
    );
    out.push_str(&this_node_manifest(settings, address));
    out.push_str(
        "\nNext steps:\n  1. Run the controller at login: `meshctl install-service` (`--dry-run` shows what it does).\n",
    );
    let _ = writeln!(out, "  2. `meshctl status`: {first} and {node} see each other online within seconds.");
    out
}

/// Where `init` writes the JSON Schemas: `schemas/` beside the manifests folder,
/// where the starter files' modelines point.
fn schemas_dir(manifests: &Path) -> PathBuf {
    manifests.parent().unwrap_or(Path::new(".")).join("schemas")
}

/// The first line of a starter file at `relative` (inside the manifests folder):
/// it points editors using the YAML language server at its kind's schema in
/// [`schemas_dir`], by a relative path, so the folder can move.
fn modeline(relative: &str, kind: Kind) -> String {
    let up = "../".repeat(Path::new(relative).components().count());
    format!("# yaml-language-server: $schema={up}schemas/{}\n", schema_file(kind))
}

/// What a kept `.env` may have wrong that `init` does not change by itself.
fn warnings(env_path: &Path, settings: &Settings) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    if let Ok(metadata) = std::fs::metadata(env_path) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(format!("{} is readable by others (mode {mode:o}): chmod 600 it", env_path.display()));
        }
    }
    if settings.get(API_KEY).is_some_and(|key| key.len() < 32) {
        out.push("MESH_API_KEY is shorter than 32 characters: give a longer one with --api-key and --force".into());
    }
    out
}

/// An existing manifests folder is left alone; say when it lacks this node.
fn check_manifests(env_path: &Path) {
    let Ok(env) = NodeEnv::load(Some(env_path)) else { return };
    let Ok((files, problems)) = crate::manifest::loader::load_dir(&env.manifests_dir()) else { return };
    let validation = crate::manifest::validate(&files, problems);
    for diagnostic in env.check_identity(&validation.set) {
        let (object, message) = (&diagnostic.object, &diagnostic.message);
        eprintln!("warning: {object} {message} (the existing manifests folder was left as it is)");
    }
}

fn next_steps(settings: &Settings) -> String {
    let node = settings.get(NODE_ID).unwrap_or_default();
    let role = settings.get(ROLE).unwrap_or_default();
    let mut out = format!("\nThis node: {node} ({role}).\nNext steps:\n");
    out.push_str("  1. Run the controller at login: `meshctl install-service` (`--dry-run` shows what it does).\n");
    let _ = writeln!(
        out,
        "  2. Add another machine: `meshctl join-token` here prints one line; there, run\n     \
         `meshctl init --join` and paste it (the key in it never goes on a command line).\n  \
         3. Keep {} in Git, shared by every node: add the Node each joining machine prints.",
        settings.get(MANIFESTS).unwrap_or(DEFAULT_MANIFESTS)
    );
    out.push_str("  4. `meshctl status`.\n");
    out
}

/// `--node`: the name rule of every object.
fn parse_node_name(name: &str) -> Result<String, String> {
    match name_problem(name) {
        None => Ok(name.to_owned()),
        Some(problem) => Err(format!("a node name {problem} (1-63 of a-z 0-9 - _, starting and ending alphanumeric)")),
    }
}

/// `--api-key`: printable, no spaces or quotes, so the `.env` holds it as is.
fn parse_api_key(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    if !key.chars().all(|c| c.is_ascii_graphic() && !"'\"\\$#`".contains(c)) {
        return Err("the key may hold printable ASCII only, without spaces, quotes, \\, $, # or `".into());
    }
    if key.len() < 32 {
        return Err("the key is shorter than 32 characters; make one with `openssl rand -hex 32`".into());
    }
    Ok(key.to_owned())
}

/// This machine's host name as a node name: lowercased, its first label only,
/// other characters made `-`, trimmed to 63 and to alphanumeric ends.
fn hostname_node_name() -> String {
    node_name_from_host(&crate::sys::hostname().unwrap_or_default())
}

fn node_name_from_host(host: &str) -> String {
    let label = host.split('.').next().unwrap_or_default().to_ascii_lowercase();
    let mapped: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect();
    let mut name: String = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric()).chars().take(63).collect();
    while name.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        name.pop();
    }
    if name.is_empty() { "node".to_owned() } else { name }
}

/// 32 bytes from the OS random source, hex-encoded.
fn generate_api_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a new API key")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `<apikey>` of `<gui>` in Syncthing's config.xml, at `path` or the first
/// default location that exists.
fn syncthing_api_key(path: Option<&Path>) -> anyhow::Result<String> {
    let path = match path {
        Some(path) => path.to_owned(),
        None => {
            let candidates = syncthing_config_candidates();
            candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
                let tried: Vec<_> = candidates.iter().map(|p| p.display().to_string()).collect();
                anyhow::anyhow!("found no Syncthing config.xml (tried {}); give its path", tried.join(", "))
            })?
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    gui_api_key(&text).ok_or_else(|| anyhow::anyhow!("{} has no <gui><apikey>", path.display()))
}

fn syncthing_config_candidates() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else { return Vec::new() };
    // An XDG variable that is empty or relative is ignored, as the spec says.
    let xdg = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let state = xdg("XDG_STATE_HOME").unwrap_or_else(|| home.join(".local/state"));
    let config = xdg("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
    vec![
        state.join("syncthing/config.xml"),
        config.join("syncthing/config.xml"),
        home.join("Library/Application Support/Syncthing/config.xml"),
    ]
}

/// A targeted read of `<gui …> … <apikey>KEY</apikey> … </gui>`.
fn gui_api_key(xml: &str) -> Option<String> {
    let mut rest = xml;
    let gui = loop {
        let at = rest.find("<gui")?;
        rest = &rest[at + 4..];
        if rest.starts_with(|c: char| c == '>' || c.is_whitespace()) {
            break rest;
        }
    };
    let gui = &gui[..gui.find("</gui>")?];
    let start = gui.find("<apikey>")? + "<apikey>".len();
    let end = start + gui[start..].find("</apikey>")?;
    let key = gui[start..end]
        .trim()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(key).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(vars: &[(&str, &str)]) -> Existing {
        Existing { vars: vars.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect() }
    }

    fn settings_for(wanted: &Wanted, old: Option<&Existing>) -> Settings {
        settings(wanted, old, &|| None, &|| "host".to_owned(), &|| Ok("k".repeat(64))).expect("settings")
    }

    #[test]
    fn host_names_become_node_names() {
        let cases = [
            ("Johns-MacBook-Pro.local", "johns-macbook-pro"),
            ("agent-home-mini", "agent-home-mini"),
            ("-Weird Host!-", "weird-host"),
            ("", "node"),
            ("...", "node"),
        ];
        for (host, name) in cases {
            assert_eq!(node_name_from_host(host), name, "{host:?}");
            assert_eq!(name_problem(&node_name_from_host(host)), None);
        }
        assert_eq!(node_name_from_host(&"a".repeat(80)).len(), 63);
    }

    #[test]
    fn a_fresh_env_takes_the_defaults() {
        let settings = settings_for(&Wanted::default(), None);
        assert_eq!(settings.get(NODE_ID), Some("host"));
        assert_eq!(settings.get(ROLE), Some("satellite"));
        assert_eq!(settings.get(API_KEY).map(str::len), Some(64));
        assert_eq!(settings.get(LISTEN), None);
        assert_eq!(settings.get(MANIFESTS), Some("manifests"));
    }

    #[test]
    fn left_out_flags_keep_the_file_values_and_the_key() {
        let old = existing(&[(NODE_ID, "mini"), (ROLE, "primary"), (API_KEY, "secret"), (LISTEN, "1.2.3.4:9")]);
        let settings = settings_for(&Wanted::default(), Some(&old));
        assert!(differences(&old, &settings).is_empty(), "{:?}", differences(&old, &settings));
        let asked = Wanted { role: Some(Role::Satellite), api_key: Some("other".into()), ..Wanted::default() };
        let differences = differences(&old, &settings_for(&asked, Some(&old)));
        assert_eq!(
            differences,
            ["AGENT_ROLE: \"primary\" in the file, \"satellite\" asked", "MESH_API_KEY differs (values not shown)"]
        );
    }

    #[test]
    fn rendered_env_reads_back_and_keeps_other_variables() {
        let old = existing(&[("MESH_PEERS", "[\"agent-home-mini:8000\"]"), (NODE_ID, "x")]);
        let settings = settings_for(&Wanted { listen: Some("100.64.0.1:8000".into()), ..Wanted::default() }, None);
        let text = render_env(&settings, &old);
        let env = NodeEnv::from_parts(Some((".env".into(), text.clone())), std::iter::empty()).expect("parses");
        assert_eq!(env.get("MESH_PEERS").map(|s| s.value.as_str()), Some("[\"agent-home-mini:8000\"]"));
        assert_eq!(env.get(LISTEN).map(|s| s.value.as_str()), Some("100.64.0.1:8000"));
        assert_eq!(env.get(NODE_ID).map(|s| s.value.as_str()), Some("host"));
        assert!(text.contains("#SYNCTHING_API_KEY="), "{text}");
    }

    #[test]
    fn quoting_survives_awkward_values() {
        for value in ["plain", "with space", "it's", "a\"b$c\\d", "#hash"] {
            let text = format!("X={}\n", quote(value));
            let env = NodeEnv::from_parts(Some((".env".into(), text)), std::iter::empty()).expect("parses");
            assert_eq!(env.get("X").map(|s| s.value.as_str()), Some(value));
        }
    }

    #[test]
    fn the_gui_api_key_is_found_and_no_other() {
        let xml = r#"<configuration version="37">
    <device id="X"><apikey>not-this</apikey></device>
    <gui enabled="true" tls="false" debugging="false">
        <address>127.0.0.1:8384</address>
        <apikey>aBc&amp;123</apikey>
    </gui>
    <guiSomething><apikey>nope</apikey></guiSomething>
</configuration>"#;
        assert_eq!(gui_api_key(xml).as_deref(), Some("aBc&123"));
        assert_eq!(gui_api_key("<gui></gui>"), None);
        assert_eq!(gui_api_key("<guix><apikey>k</apikey></guix>"), None);
    }

    #[test]
    fn generated_keys_are_64_hex_characters_and_differ() {
        let (a, b) = (generate_api_key().expect("key"), generate_api_key().expect("key"));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn api_keys_must_be_long_and_plain() {
        assert!(parse_api_key(&"a".repeat(32)).is_ok());
        assert!(parse_api_key("short").is_err());
        assert!(parse_api_key(&format!("{} x", "a".repeat(32))).is_err());
    }
}
