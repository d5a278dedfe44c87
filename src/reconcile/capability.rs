//! The Capability reconciler: which node serves each capability, and the client
//! env every node renders from that choice (design section 3, Capability).
//!
//! A capability is served by the first node, in `prefer` then `fallback` order,
//! that is online (this node always is) and whose endpoint answers its health
//! path with 2xx. An endpoint on its node's loopback (`endpoint.host:
//! 127.0.0.1`, Ollama.app's) cannot be reached from a peer: its node checks
//! it and peers take that node's word, asking through its `/cap/<name>/`
//! pass-through ([`health_check`]). `decide` and `render_client_env` are pure
//! and table-tested; `reconcile` probes the candidates in order until one is
//! healthy, records the decision in the shared `Placements`, writes
//! `client.env` in the state folder and comes back after [`RECHECK`] so a
//! change of health moves the capability.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::context::{Context, Outcome, ReconcileError};
use crate::api_key::ApiKey;
use crate::controller::status::{ConditionType, Observed};
use crate::event::Event;
use crate::manifest::ManifestSet;
use crate::manifest::kinds::{CapabilitySpec, Provider, is_loopback_host};
use crate::mesh::absence::Absence;
use crate::mesh::failover::{HEALTH_CHECK_HOP, HOP_HEADER};
use crate::mesh::peers::{PeerState, Peers};
use crate::mesh::placement::Served;
use crate::net::{self, host_port, root_cause};
use crate::ollama::OllamaClient;
use crate::ollama::pulls::PullState;
use crate::template;

/// How often a capability's placement is decided again without a trigger:
/// the bound on how long a dead endpoint keeps clients pointed at it.
pub(crate) const RECHECK: Duration = Duration::from_secs(5);

/// How long an endpoint's health path gets to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// While a model is being pulled, its progress is read this often.
const PULL_RECHECK: Duration = Duration::from_secs(2);

/// What the last health probe of a node's endpoint found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    Healthy,
    /// Why it is not: the probe's error or the status it answered.
    Unhealthy(String),
    /// Not probed: a node before it was healthy.
    Unknown,
}

/// Who serves a capability, and why each node before it does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub served: Option<Served>,
    /// The nodes passed over, in order, with why.
    pub tried: Vec<(String, PassedOver)>,
}

/// Why a node was passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PassedOver {
    /// This node cannot reach it.
    Away(Absence),
    /// Its endpoint could not be placed or checked, or failed its check.
    Because(String),
}

/// The first node of `spec`'s placement that is not away (`this_node` never
/// is; `away` says how a peer is) and whose endpoint is `Healthy` in
/// `health`. `addresses` holds each Node's `address`, the endpoint's host
/// unless `endpoint.host` says otherwise.
pub(crate) fn decide(
    spec: &CapabilitySpec,
    this_node: &str,
    addresses: &BTreeMap<String, String>,
    health: &BTreeMap<String, Health>,
    away: impl Fn(&str) -> Option<Absence>,
) -> Decision {
    let mut tried = Vec::new();
    let because = |why: String| PassedOver::Because(why);
    for node in spec.placement.order().map(|n| n.value.as_str()) {
        let Some(host) = spec.endpoint_host(addresses.get(node).map(String::as_str)) else {
            tried.push((node.to_owned(), because("no Node manifest gives its address".to_owned())));
            continue;
        };
        if let Some(absence) = away(node).filter(|_| node != this_node) {
            tried.push((node.to_owned(), PassedOver::Away(absence)));
            continue;
        }
        match health.get(node).unwrap_or(&Health::Unknown) {
            Health::Healthy => {
                let served = Served { node: node.to_owned(), host: host.to_owned(), port: spec.endpoint.port.0 };
                return Decision { served: Some(served), tried };
            }
            Health::Unhealthy(why) => tried.push((node.to_owned(), because(format!("endpoint unhealthy: {why}")))),
            Health::Unknown => tried.push((node.to_owned(), because("endpoint not probed".to_owned()))),
        }
    }
    Decision { served: None, tried }
}

/// The URL a node's endpoint is health-checked at: `healthPath`, else `path`.
pub(crate) fn health_url(spec: &CapabilitySpec, host: &str) -> String {
    format!("http://{}{}", host_port(host, spec.endpoint.port.0), health_path(spec))
}

fn health_path(spec: &CapabilitySpec) -> &str {
    &spec.endpoint.health_path.as_ref().unwrap_or(&spec.endpoint.path).value
}

/// How this node learns whether `node`'s endpoint at `host` is healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HealthCheck {
    /// It probes the endpoint itself: its own, or a peer's it can reach.
    Direct,
    /// It takes the node's word: a peer's endpoint on that peer's loopback,
    /// which only the peer can reach.
    ByItsNode,
}

/// Direct for this node's endpoint and for a peer's at a host others can
/// reach (what a client given `{{host}}` would call, so the probe checks
/// what such a client meets); by its node for a peer's loopback endpoint.
pub(crate) fn health_check(host: &str, node: &str, this_node: &str) -> HealthCheck {
    if node != this_node && is_loopback_host(host) { HealthCheck::ByItsNode } else { HealthCheck::Direct }
}

/// The URL at which a peer (its mesh API at `authority`) checks its own
/// endpoint of `capability` for this node: its pass-through, which stands
/// for the endpoint's root, then the health path.
pub(crate) fn health_url_by_node(authority: &str, capability: &str, spec: &CapabilitySpec) -> String {
    format!("http://{authority}{}/{capability}{}", crate::api::wire::CAP_PREFIX, health_path(spec))
}

/// Why the capability is served where it is, times of day read on `clock`:
/// the nodes passed over because they are away first (`agent-home-mini
/// asleep since 09:12; served by agent-work-laptop`), then `served by …`,
/// then why the other nodes before it were passed over (`(fallback; node-c:
/// endpoint unhealthy: …)`).
fn served_message(spec: &CapabilitySpec, decision: &Decision, clock: impl Fn(SystemTime) -> String + Copy) -> String {
    let Some(served) = &decision.served else {
        return format!("no node can serve it: {}", reasons(decision.tried.iter(), clock));
    };
    let (away, others): (Vec<_>, Vec<_>) =
        decision.tried.iter().partition(|(_, why)| matches!(why, PassedOver::Away(_)));
    let mut message = format!("served by {}", served.node);
    if !others.is_empty() {
        let fallback = spec.placement.fallback.iter().any(|n| n.value == served.node);
        let note = if fallback { "fallback; " } else { "" };
        message.push_str(&format!(" ({note}{})", reasons(others.into_iter(), clock)));
    }
    if away.is_empty() { message } else { format!("{}; {message}", reasons(away.into_iter(), clock)) }
}

/// "node-b unreachable since 09:12, node-c: endpoint unhealthy: …".
fn reasons<'a>(
    tried: impl ExactSizeIterator<Item = &'a (String, PassedOver)>,
    clock: impl Fn(SystemTime) -> String + Copy,
) -> String {
    if tried.len() == 0 {
        return "its placement names no node".into();
    }
    let reason = |(node, why): &(String, PassedOver)| match why {
        PassedOver::Away(absence) => format!("{node} {}", absence.words(clock)),
        PassedOver::Because(why) => format!("{node}: {why}"),
    };
    tried.map(reason).collect::<Vec<_>>().join(", ")
}

/// The conditions and details of a capability from its decision, times of
/// day read on `clock`.
pub(crate) fn status(
    spec: &CapabilitySpec,
    decision: &Decision,
    clock: impl Fn(SystemTime) -> String + Copy,
) -> (Vec<Observed>, BTreeMap<String, String>) {
    let message = served_message(spec, decision, clock);
    let mut details = BTreeMap::new();
    let conditions = match &decision.served {
        Some(served) => {
            details.insert("servedBy".into(), served.node.clone());
            details.insert("endpoint".into(), endpoint_url(spec, served));
            vec![Observed::ready("Served", message), Observed::stable(), Observed::as_expected()]
        }
        None => vec![
            Observed::not_ready("NoNodeAvailable", message.clone()),
            Observed::stable(),
            Observed::degraded("NoNodeAvailable", message),
        ],
    };
    (conditions, details)
}

/// `http://host:port/path` of the serving node's endpoint.
fn endpoint_url(spec: &CapabilitySpec, served: &Served) -> String {
    format!("http://{}{}", host_port(&served.host, served.port), spec.endpoint.path.value)
}

/// The client env of every Capability of `set` for the nodes that serve them
/// (`placements`), in dotenv form: a header naming `node` and `revision`, one
/// comment per capability saying who serves it, then the variables sorted by
/// name. A capability no node serves leaves its variables out; of two
/// capabilities setting one variable, the first by name wins.
pub(crate) fn render_client_env(
    set: &ManifestSet,
    placements: &BTreeMap<String, Served>,
    node: &str,
    revision: &str,
    api_key: Option<&str>,
) -> String {
    // This node's own mesh API, for clients that go through its proxy.
    let api = set.nodes.get(node).map_or_else(String::new, |this| {
        format!("http://{}", host_port(&this.spec.address.value, this.spec.api_port.0))
    });
    let mut out = format!(
        "# Generated by the agentmesh controller of {node} from revision {revision}; do not edit.\n\
         # `meshctl env` prints it, `meshctl exec -- CMD` runs CMD with it.\n"
    );
    let mut variables: BTreeMap<&str, (String, &str)> = BTreeMap::new();
    for (name, capability) in &set.capabilities {
        let spec = &capability.spec;
        let names: Vec<&str> = spec.client_env.keys().map(String::as_str).collect();
        let Some(served) = placements.get(name) else {
            let left_out = if names.is_empty() { String::new() } else { format!("; left out: {}", names.join(", ")) };
            out.push_str(&format!("# {name}: no node serves it now{left_out}\n"));
            continue;
        };
        out.push_str(&format!("# {name}: served by {}\n", served.node));
        let port = served.port.to_string();
        let values = [
            ("host", served.host.as_str()),
            ("port", port.as_str()),
            ("path", spec.endpoint.path.value.as_str()),
            ("node", served.node.as_str()),
            ("api", api.as_str()),
            ("apiKey", api_key.unwrap_or_default()),
        ];
        for (variable, text) in &spec.client_env {
            match variables.get(variable.as_str()) {
                Some((_, owner)) => {
                    out.push_str(&format!("# {name}: {variable} is left to {owner}, which sets it too\n"));
                }
                None => {
                    variables.insert(variable, (template::render(&text.value, &values), name));
                }
            }
        }
    }
    for (variable, (value, _)) in variables {
        out.push_str(&format!("{variable}={}\n", quote(&value)));
    }
    out
}

/// A dotenv value that reads the same to a shell (`set -a; . client.env`) and
/// to dotenv libraries: bare when it holds only plain characters, else in
/// single quotes, else (a `'` or a line break in it) in double quotes with
/// `\`, `"`, `$`, `` ` `` escaped and line breaks as `\n`.
pub(crate) fn quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+,=".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_owned();
    }
    if !value.contains(['\'', '\n', '\r']) {
        return format!("'{value}'");
    }
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The variables of a client env file, as [`render_client_env`] writes them
/// (comments and blank lines skipped, values unquoted). Err names the first
/// line that is not `NAME=value`.
pub(crate) fn parse_client_env(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut variables = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: not NAME=value: {line}", index + 1);
        let (name, value) = line.split_once('=').ok_or_else(bad)?;
        let value = unquote(value).ok_or_else(bad)?;
        variables.insert(name.to_owned(), value);
    }
    Ok(variables)
}

fn unquote(value: &str) -> Option<String> {
    if let Some(inner) = value.strip_prefix('\'') {
        return inner.strip_suffix('\'').map(str::to_owned);
    }
    let Some(inner) = value.strip_prefix('"') else { return Some(value.to_owned()) };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            other => out.push(other),
        }
    }
    Some(out)
}

pub(crate) async fn reconcile(name: &str, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let mut outcome = Outcome::default();
    let Some(capability) = ctx.set.capabilities.get(name) else {
        // Removed: nobody serves it, its variables leave the client env, and
        // the model pulls only it wanted are cancelled.
        ctx.handles.placements.set(name, None);
        ctx.handles.pulls.forget(name);
        write_client_env(ctx, &mut outcome).await;
        outcome.tracked = false;
        return Ok(outcome);
    };
    let spec = &capability.spec;
    let addresses: BTreeMap<String, String> =
        ctx.set.nodes.iter().map(|(name, node)| (name.clone(), node.spec.address.value.clone())).collect();
    let away = |node: &str| ctx.handles.peers.absence(node).filter(|_| node != ctx.handles.node);
    let online = |node: &str| away(node).is_none();
    let mut health = BTreeMap::new();
    for node in spec.placement.order().map(|n| n.value.as_str()) {
        let Some(host) = spec.endpoint_host(addresses.get(node).map(String::as_str)) else { continue };
        if !online(node) {
            continue;
        }
        let check = async {
            match health_check(host, node, &ctx.handles.node) {
                HealthCheck::Direct => probe(&health_url(spec, host), None).await,
                HealthCheck::ByItsNode => match ctx.handles.peers.authority_of(&ctx.set, node) {
                    Some(authority) => {
                        probe(&health_url_by_node(&authority, name, spec), Some(&ctx.handles.api_key)).await
                    }
                    None => Health::Unhealthy(format!("no Node manifest says where \"{node}\" is")),
                },
            }
        };
        let Some(found) = unless_down(&ctx.handles.peers, node, check).await else {
            continue;
        };
        let healthy = found == Health::Healthy;
        health.insert(node.to_owned(), found);
        if healthy {
            break;
        }
    }
    let decision = decide(spec, &ctx.handles.node, &addresses, &health, away);
    let before = ctx.handles.placements.set(name, decision.served.clone());
    if before.as_ref().map(|s| &s.node) != decision.served.as_ref().map(|s| &s.node) {
        let from = before.map_or_else(|| "none".to_owned(), |s| s.node);
        let to = decision.served.as_ref().map_or_else(|| "none".to_owned(), |s| s.node.clone());
        let why = served_message(spec, &decision, crate::clock::local_hh_mm);
        let message = format!("{name}: {from} -> {to} ({why})");
        // Moving to no node at all is worth a look; moving to another is failover working.
        let event = if decision.served.is_none() { Event::warning } else { Event::normal };
        outcome.event(event("PlacementChanged", message));
    }
    let (conditions, details) = status(spec, &decision, crate::clock::local_hh_mm);
    outcome.conditions = conditions;
    outcome.details = details;
    ensure_models(ctx, name, spec, addresses.get(&ctx.handles.node).map(String::as_str), &mut outcome).await;
    write_client_env(ctx, &mut outcome).await;
    outcome.requeue_after = Some(outcome.requeue_after.map_or(RECHECK, |sooner| sooner.min(RECHECK)));
    Ok(outcome)
}

/// On a node that may serve an `ollama` capability (named in its placement),
/// the declared models are present: the missing ones are pulled in the
/// background, their progress shown in details and as Progressing, a failing
/// pull as Degraded (retried with backoff); a pull of a model it no longer
/// declares, or on a node it no longer names, is cancelled. An Ollama that
/// does not answer is the health probe's to report.
async fn ensure_models(ctx: &Context, name: &str, spec: &CapabilitySpec, address: Option<&str>, outcome: &mut Outcome) {
    let wanted: Vec<String> =
        spec.ollama.iter().flat_map(|ollama| ollama.value.models.iter().map(|m| m.value.clone())).collect();
    let here = spec.placement.order().any(|node| node.value == ctx.handles.node);
    let wants_models_here = here && spec.provider == Provider::Ollama && !wanted.is_empty();
    let Some(host) = spec.endpoint_host(address).filter(|_| wants_models_here) else {
        ctx.handles.pulls.forget(name);
        return;
    };
    let client = OllamaClient::new(&format!("http://{}", host_port(host, spec.endpoint.port.0)));
    let present = match client.models().await {
        Ok(present) => present,
        Err(error) => {
            outcome.details.insert("models".into(), format!("cannot list them: {error}"));
            return;
        }
    };
    let missing = ctx.handles.pulls.ensure(name, &client, &present, &wanted);
    let now = tokio::time::Instant::now();
    outcome.details.insert("models".into(), format!("{} of {} present", wanted.len() - missing.len(), wanted.len()));
    for (model, state) in &missing {
        outcome.details.insert(format!("model/{model}"), state.describe(now));
    }
    let failed: Vec<String> = missing
        .iter()
        .filter(|(_, state)| matches!(state, PullState::Failed { .. }))
        .map(|(model, state)| format!("{model}: {}", state.describe(now)))
        .collect();
    let pulling: Vec<String> = missing
        .iter()
        .filter(|(_, state)| !matches!(state, PullState::Failed { .. }))
        .map(|(model, state)| format!("{model}: {}", state.describe(now)))
        .collect();
    let degraded = outcome.conditions.iter().any(|c| c.holds(ConditionType::Degraded));
    if !failed.is_empty() && !degraded {
        outcome.conditions.retain(|c| c.condition_type != ConditionType::Degraded);
        outcome.conditions.push(Observed::degraded("ModelPullFailed", failed.join("; ")));
    }
    if !pulling.is_empty() {
        outcome.conditions.retain(|c| c.condition_type != ConditionType::Progressing);
        outcome.conditions.push(Observed::progressing("PullingModels", pulling.join("; ")));
        outcome.requeue_after = Some(PULL_RECHECK);
    }
}

/// Writes the client env; a failure is a warning and shows as Degraded.
async fn write_client_env(ctx: &Context, outcome: &mut Outcome) {
    // Rendered under the file's lock, so the last writer always wrote the newest table.
    let (set, handles, revision) = (ctx.set.clone(), ctx.handles.clone(), ctx.revision.clone());
    let render = move || {
        let key = handles.api_key.get();
        render_client_env(&set, &handles.placements.all(), &handles.node, &revision, key.as_deref())
    };
    if let Err(error) = ctx.handles.client_env.write(render).await {
        let message = format!("cannot write {}: {error}", ctx.handles.client_env.path().display());
        outcome.event(Event::warning("ClientEnvNotWritten", message.clone()));
        outcome.conditions.retain(|c| c.condition_type != ConditionType::Degraded);
        outcome.conditions.push(Observed::degraded("ClientEnvNotWritten", message));
    }
}

/// What `check` finds of `node`'s endpoint, or None as soon as the prober
/// knows `node` is down: the endpoint of a node that went silent answers no
/// check, which would hold this reconcile for [`HEALTH_TIMEOUT`], and with it
/// the one the prober's news asks for (queued behind it), so the fallback.
async fn unless_down(peers: &Peers, node: &str, check: impl Future<Output = Health>) -> Option<Health> {
    // Biased, news first: a node already known down is not checked at all.
    tokio::select! {
        biased;
        () = peers.until(node, PeerState::known_down) => None,
        found = check => Some(found),
    }
}

/// GETs `url`: Healthy on a 2xx answer within [`HEALTH_TIMEOUT`]. With
/// `by_node`, `url` is a peer's pass-through, asked with the mesh key and the
/// router's hop header so the peer answers for its own endpoint only; its
/// refusal says why.
async fn probe(url: &str, by_node: Option<&ApiKey>) -> Health {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let http = HTTP.get_or_init(|| {
        net::http_client(HEALTH_TIMEOUT.min(net::CONNECT_TIMEOUT))
            .timeout(HEALTH_TIMEOUT)
            .build()
            .expect("a plain HTTP client builds")
    });
    let mut request = http.get(url);
    if let Some(api_key) = by_node {
        request = request.header(HOP_HEADER, HEALTH_CHECK_HOP);
        // Without a key, the peer lets this node in by its Tailscale identity.
        if let Some(key) = api_key.get() {
            request = request.bearer_auth(key);
        }
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Health::Healthy,
        Ok(response) if by_node.is_some() => {
            let status = response.status();
            #[derive(serde::Deserialize)]
            struct Refusal {
                message: String,
            }
            match response.json::<Refusal>().await {
                Ok(refusal) => Health::Unhealthy(format!("its node says: {}", refusal.message)),
                Err(_) => Health::Unhealthy(format!("{url} answered {status}")),
            }
        }
        Ok(response) => Health::Unhealthy(format!("{url} answered {}", response.status())),
        Err(error) if error.is_timeout() => {
            Health::Unhealthy(format!("{url} did not answer within {}", humantime::format_duration(HEALTH_TIMEOUT)))
        }
        Err(error) => Health::Unhealthy(format!("{url}: {}", root_cause(&error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{SourceFile, validate};
    use crate::mesh::peers::PeerState;

    /// Nodes a (10.0.0.1), b (10.0.0.2) and c (10.0.0.3); Capabilities `llm`
    /// (prefer [b], fallback [a, c], port 11434) and `db` (prefer [b], with
    /// `host` set), plus `extra` as given.
    fn set(extra: &str) -> ManifestSet {
        let node = |name: &str, ip: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{role: satellite, address: {ip}}}\n---\n"
            )
        };
        let text = format!(
            "{}{}{}\
             apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm}}\n\
             spec:\n  provider: ollama\n  placement: {{prefer: [b], fallback: [a, c]}}\n  endpoint: {{port: 11434, path: /v1}}\n  \
             clientEnv: {{LLM_URL: 'http://{{{{host}}}}:{{{{port}}}}{{{{path}}}}', LLM_NODE: '{{{{ node }}}}'}}\n---\n\
             apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: db}}\n\
             spec:\n  provider: http\n  placement: {{prefer: [b]}}\n  endpoint: {{port: 8001, host: db.lan}}\n  \
             clientEnv: {{DB_HOST: '{{{{host}}}}', DB_PORT: '{{{{port}}}}'}}\n{extra}",
            node("a", "10.0.0.1"),
            node("b", "10.0.0.2"),
            node("c", "10.0.0.3"),
        );
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        validation.set
    }

    fn addresses(set: &ManifestSet) -> BTreeMap<String, String> {
        set.nodes.iter().map(|(n, o)| (n.clone(), o.spec.address.value.clone())).collect()
    }

    fn served(node: &str, host: &str, port: u16) -> Option<Served> {
        Some(Served { node: node.into(), host: host.into(), port })
    }

    /// A peer away since a time not known.
    const ABSENT: Absence = Absence { since: None, asleep: false };

    /// "offline" for a node away ([`ABSENT`]), else the reason as written.
    fn passed(why: &str) -> PassedOver {
        match why {
            "offline" => PassedOver::Away(ABSENT),
            why => PassedOver::Because(why.to_owned()),
        }
    }

    /// 09:12:59 on 2026-12-06, UTC.
    fn nine_twelve() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_548_379)
    }

    fn utc(at: SystemTime) -> String {
        crate::clock::hh_mm(at, 0)
    }

    #[test]
    fn decide_takes_the_first_online_healthy_node_in_prefer_then_fallback_order() {
        use Health::*;
        let set = set("");
        let llm = &set.capabilities["llm"].spec;
        let sick = || Unhealthy("refused".into());
        type Case<'a> =
            (&'a str, &'a str, &'a [&'a str], Vec<(&'a str, Health)>, Option<Served>, &'a [(&'a str, &'a str)]);
        let table: Vec<Case<'_>> = vec![
            // case, this node, offline peers, health, served, passed over
            ("preferred healthy", "a", &[], vec![("b", Healthy)], served("b", "10.0.0.2", 11434), &[]),
            (
                "preferred offline: the fallback",
                "a",
                &["b"],
                vec![("a", Healthy)],
                served("a", "10.0.0.1", 11434),
                &[("b", "offline")],
            ),
            (
                "preferred unhealthy, first fallback unhealthy",
                "c",
                &[],
                vec![("b", sick()), ("a", sick()), ("c", Healthy)],
                served("c", "10.0.0.3", 11434),
                &[("b", "endpoint unhealthy: refused"), ("a", "endpoint unhealthy: refused")],
            ),
            (
                "this node counts as online even when a peer thinks not",
                "b",
                &["b"],
                vec![("b", Healthy)],
                served("b", "10.0.0.2", 11434),
                &[],
            ),
            (
                "an offline node is passed over even when it looked healthy",
                "a",
                &["b"],
                vec![("b", Healthy), ("a", Healthy)],
                served("a", "10.0.0.1", 11434),
                &[("b", "offline")],
            ),
            (
                "nobody",
                "a",
                &["b", "c"],
                vec![("a", sick())],
                None,
                &[("b", "offline"), ("a", "endpoint unhealthy: refused"), ("c", "offline")],
            ),
            (
                "not probed is not healthy",
                "a",
                &[],
                vec![],
                None,
                &[("b", "endpoint not probed"), ("a", "endpoint not probed"), ("c", "endpoint not probed")],
            ),
        ];
        for (case, this_node, offline, health, expected, passed_over) in table {
            let health: BTreeMap<String, Health> = health.into_iter().map(|(n, h)| (n.to_owned(), h)).collect();
            let away = |n: &str| offline.contains(&n).then_some(ABSENT);
            let decision = decide(llm, this_node, &addresses(&set), &health, away);
            let tried: Vec<(String, PassedOver)> =
                passed_over.iter().map(|(n, why)| ((*n).to_owned(), passed(why))).collect();
            assert_eq!(decision, Decision { served: expected, tried }, "{case}");
        }
        let db = &set.capabilities["db"].spec;
        let health = BTreeMap::from([("b".to_owned(), Healthy)]);
        let decision = decide(db, "a", &addresses(&set), &health, |_| None);
        assert_eq!(decision.served, served("b", "db.lan", 8001), "endpoint.host wins over the address");
    }

    #[test]
    fn a_peers_loopback_endpoint_is_checked_by_its_node_every_other_one_directly() {
        use HealthCheck::*;
        let table = [
            // host, node, this node, how
            ("127.0.0.1", "mini", "laptop", ByItsNode),
            ("127.0.0.2", "mini", "laptop", ByItsNode),
            ("::1", "mini", "laptop", ByItsNode),
            ("[::1]", "mini", "laptop", ByItsNode),
            ("localhost", "mini", "laptop", ByItsNode),
            ("LocalHost.", "mini", "laptop", ByItsNode),
            ("ollama.localhost", "mini", "laptop", ByItsNode),
            // This node's own endpoint: probed here, loopback or not.
            ("127.0.0.1", "mini", "mini", Direct),
            ("100.64.0.5", "mini", "mini", Direct),
            // A peer's endpoint others can reach: probed as a client would call it.
            ("100.64.0.5", "mini", "laptop", Direct),
            ("fd7a:115c:a1e0::1", "mini", "laptop", Direct),
            ("agent-home-mini", "mini", "laptop", Direct),
            ("notlocalhost", "mini", "laptop", Direct),
            ("128.0.0.1", "mini", "laptop", Direct),
        ];
        for (host, node, this_node, expected) in table {
            assert_eq!(health_check(host, node, this_node), expected, "{host} of {node} seen from {this_node}");
        }
        let set = set("");
        assert_eq!(
            health_url_by_node("10.0.0.2:8000", "llm", &set.capabilities["llm"].spec),
            "http://10.0.0.2:8000/cap/llm/v1"
        );
    }

    #[test]
    fn messages_name_the_fallback_and_why_the_others_were_passed_over() {
        let set = set("");
        let llm = &set.capabilities["llm"].spec;
        let unreachable = PassedOver::Away(Absence { since: Some(nine_twelve()), asleep: false });
        let asleep = PassedOver::Away(Absence { since: Some(nine_twelve()), asleep: true });
        let unhealthy = |why: &str| PassedOver::Because(format!("endpoint unhealthy: {why}"));
        let decision = |served: Option<Served>, tried: &[(&str, &PassedOver)]| Decision {
            served,
            tried: tried.iter().map(|(n, w)| ((*n).to_owned(), (*w).clone())).collect(),
        };
        let table = [
            (decision(served("b", "10.0.0.2", 1), &[]), (true, "Served", "served by b")),
            (
                decision(served("a", "10.0.0.1", 1), &[("b", &unreachable)]),
                (true, "Served", "b unreachable since 09:12; served by a"),
            ),
            (
                decision(served("a", "10.0.0.1", 1), &[("b", &asleep)]),
                (true, "Served", "b asleep since 09:12; served by a"),
            ),
            (
                decision(served("a", "10.0.0.1", 1), &[("b", &PassedOver::Away(ABSENT))]),
                (true, "Served", "b unreachable; served by a"),
            ),
            (
                decision(served("a", "10.0.0.1", 1), &[("b", &unhealthy("x"))]),
                (true, "Served", "served by a (fallback; b: endpoint unhealthy: x)"),
            ),
            (
                decision(served("c", "10.0.0.3", 1), &[("b", &asleep), ("a", &unhealthy("x"))]),
                (true, "Served", "b asleep since 09:12; served by c (fallback; a: endpoint unhealthy: x)"),
            ),
            (
                decision(None, &[("b", &unreachable), ("a", &unhealthy("x"))]),
                (false, "NoNodeAvailable", "no node can serve it: b unreachable since 09:12, a: endpoint unhealthy: x"),
            ),
            (
                decision(None, &[("b", &asleep), ("a", &unhealthy("x"))]),
                (false, "NoNodeAvailable", "no node can serve it: b asleep since 09:12, a: endpoint unhealthy: x"),
            ),
        ];
        for (decision, (ready, reason, message)) in table {
            let (conditions, details) = status(llm, &decision, utc);
            assert_eq!(
                (conditions[0].status, conditions[0].reason.as_str(), conditions[0].message.as_str()),
                (ready, reason, message)
            );
            assert_eq!(conditions[2].status, !ready, "Degraded when no node serves it");
            assert_eq!(details.get("servedBy"), decision.served.as_ref().map(|s| &s.node));
        }
        let (_, details) = status(llm, &decision(served("a", "10.0.0.1", 11434), &[]), utc);
        assert_eq!(details["endpoint"], "http://10.0.0.1:11434/v1");
        assert_eq!(health_url(llm, "fd7a::1"), "http://[fd7a::1]:11434/v1");
    }

    #[test]
    fn the_client_env_follows_the_placements_and_leaves_out_what_nobody_serves() {
        let set = set("");
        let placements = BTreeMap::from([("llm".to_owned(), served("a", "10.0.0.1", 11434).unwrap())]);
        let text = render_client_env(&set, &placements, "c", "r1", None);
        assert_eq!(
            text,
            "# Generated by the agentmesh controller of c from revision r1; do not edit.\n\
             # `meshctl env` prints it, `meshctl exec -- CMD` runs CMD with it.\n\
             # db: no node serves it now; left out: DB_HOST, DB_PORT\n\
             # llm: served by a\n\
             LLM_NODE=a\n\
             LLM_URL=http://10.0.0.1:11434/v1\n"
        );
        let both = BTreeMap::from([
            ("llm".to_owned(), served("b", "10.0.0.2", 11434).unwrap()),
            ("db".to_owned(), served("b", "db.lan", 8001).unwrap()),
        ]);
        let variables = parse_client_env(&render_client_env(&set, &both, "c", "r1", None)).unwrap();
        let expected =
            [("DB_HOST", "db.lan"), ("DB_PORT", "8001"), ("LLM_NODE", "b"), ("LLM_URL", "http://10.0.0.2:11434/v1")];
        assert_eq!(variables, expected.map(|(k, v)| (k.to_owned(), v.to_owned())).into());
    }

    #[test]
    fn a_variable_two_capabilities_set_goes_to_the_first_by_name() {
        let extra = "---\napiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {name: ann}\n\
                     spec:\n  provider: http\n  placement: {prefer: [c]}\n  endpoint: {port: 9}\n  clientEnv: {LLM_NODE: 'ann-{{node}}'}\n";
        let set = set(extra);
        let placements = BTreeMap::from([
            ("llm".to_owned(), served("a", "10.0.0.1", 11434).unwrap()),
            ("ann".to_owned(), served("c", "10.0.0.3", 9).unwrap()),
        ]);
        let text = render_client_env(&set, &placements, "c", "r1", None);
        assert!(text.contains("# llm: LLM_NODE is left to ann, which sets it too\n"), "{text}");
        assert_eq!(parse_client_env(&text).unwrap()["LLM_NODE"], "ann-c");
    }

    #[test]
    fn values_are_quoted_so_shells_and_dotenv_read_them_back() {
        let table = [
            ("http://10.0.0.1:11434/v1", "http://10.0.0.1:11434/v1"),
            ("", "''"),
            ("two words", "'two words'"),
            ("$HOME and `cmd`", "'$HOME and `cmd`'"),
            ("it's", "\"it's\""),
            ("a'b\"c$d`e\\f\ng", "\"a'b\\\"c\\$d\\`e\\\\f\\ng\""),
        ];
        for (value, quoted) in table {
            assert_eq!(quote(value), quoted, "{value:?}");
            let parsed = parse_client_env(&format!("X={quoted}\n")).unwrap();
            assert_eq!(parsed["X"], value, "{quoted} reads back");
        }
        assert_eq!(parse_client_env("# c\n\nA=1\nnot a line\n"), Err("line 4: not NAME=value: not a line".into()));
        assert!(parse_client_env("A='open\n").is_err());
    }

    #[test]
    fn quoted_values_read_the_same_to_a_shell() {
        let values = ["two words", "$HOME and `cmd`", "it's", "a'b\"c$d`e\\f"];
        let file: String = values.iter().enumerate().map(|(i, v)| format!("V{i}={}\n", quote(v))).collect();
        let script = format!("{file}printf '%s\\n' \"$V0\" \"$V1\" \"$V2\" \"$V3\"");
        let output = std::process::Command::new("sh").args(["-c", &script]).output().expect("sh runs");
        assert_eq!(String::from_utf8(output.stdout).unwrap(), values.map(|v| format!("{v}\n")).concat());
    }

    /// A table where peer `c` is online and `b` is not probed yet.
    fn peers() -> Peers {
        let peers = Peers::default();
        peers.set_members(vec![
            PeerState::new("b", None, "10.0.0.2", 7420),
            PeerState::new("c", None, "10.0.0.3", 7420),
        ]);
        peers.update("c", |c| c.online = true);
        peers
    }

    fn goes_down(peers: &Peers, node: &str) {
        peers.update(node, |peer| {
            peer.online = false;
            peer.last_error = Some("timed out".into());
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_health_check_ends_as_soon_as_the_prober_knows_its_node_is_down() {
        let peers = peers();
        let started = tokio::time::Instant::now();
        let prober = peers.clone();
        let news = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Another peer's news does not end the check; its own node's does.
            prober.update("b", |b| b.online = true);
            tokio::time::sleep(Duration::from_millis(200)).await;
            goes_down(&prober, "c");
        });
        // An endpoint that does not answer, as one on a node that hung: the
        // probe would give up at its timeout.
        let hung = async {
            tokio::time::sleep(HEALTH_TIMEOUT).await;
            Health::Unhealthy("timed out".into())
        };
        assert_eq!(unless_down(&peers, "c", hung).await, None);
        assert_eq!(started.elapsed(), Duration::from_millis(500), "ended at the news, not at a timeout");
        news.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_health_check_of_a_node_up_is_what_it_finds_and_one_known_down_is_not_made() {
        let peers = peers();
        let slow = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Health::Healthy
        };
        assert_eq!(unless_down(&peers, "c", slow).await, Some(Health::Healthy));
        goes_down(&peers, "c");
        let made = std::sync::atomic::AtomicBool::new(false);
        let check = async {
            made.store(true, std::sync::atomic::Ordering::SeqCst);
            Health::Healthy
        };
        assert_eq!(unless_down(&peers, "c", check).await, None);
        assert!(!made.load(std::sync::atomic::Ordering::SeqCst), "no check of a node known down");
    }
}
