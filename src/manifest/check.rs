//! Set-level checks: names, duplicates, cross-references, paths and templates.
//! Every problem is collected; nothing stops at the first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::Scope;
use super::kinds::{
    CapabilitySpec, EnvValue, HandoffPolicySpec, MeshSpec, NodeSelector, NodeSpec, Provider, Role, ServiceSpec,
    SyncFolderSpec, is_loopback_host,
};
use super::object::{Kind, Manifest, Object, Spec};
use super::set::{ManifestSet, selects};
use super::values::{Located, env_name_problem, http_url_problem, name_problem, tag_problem, url_path_problem};
use crate::diagnostic::{Diagnostic, Pos, closest, did_you_mean};
use crate::template;

/// Builds the set from parsed objects, reporting bad names, duplicates and more
/// than one Mesh, then checks every object against the whole set. `unparsed`
/// holds the objects declared in documents that did not parse: their problems
/// are reported already, so a reference to one is not reported again. `scope`
/// says whether a reference to an object in none of the files is an error.
pub(super) fn check(
    objects: Vec<Manifest>,
    unparsed: &HashSet<(Kind, String)>,
    scope: Scope,
    diagnostics: &mut Vec<Diagnostic>,
) -> ManifestSet {
    let mut set = ManifestSet::default();
    for manifest in objects {
        let name = &manifest.metadata().name;
        if let Some(problem) = name_problem(&name.value) {
            diagnostics.push(Diagnostic::error(
                &manifest.origin().file,
                name.at,
                manifest.key(),
                format!("metadata.name \"{}\" {problem}", name.value),
            ));
        }
        if let Err(duplicate) = set.insert(manifest) {
            diagnostics.push(duplicate_diagnostic(&set, &duplicate));
        }
    }
    let mut checker = Checker {
        set: &set,
        unparsed,
        scope,
        out: diagnostics,
        nodes: NodeIndex::new(&set),
        suggestion_budget: SUGGESTION_BUDGET,
    };
    set.nodes.values().for_each(|o| checker.node(o));
    set.services.values().for_each(|o| checker.service(o));
    set.capabilities.values().for_each(|o| checker.capability(o));
    checker.sync_folders();
    set.handoff_policies.values().for_each(|o| checker.handoff_policy(o));
    if let Some(mesh) = &set.mesh {
        checker.mesh(mesh);
    }
    set
}

fn duplicate_diagnostic(set: &ManifestSet, duplicate: &Manifest) -> Diagnostic {
    let name = duplicate.name();
    let first = match duplicate {
        Manifest::Node(_) => set.nodes.get(name).map(|o| &o.origin),
        Manifest::Service(_) => set.services.get(name).map(|o| &o.origin),
        Manifest::Capability(_) => set.capabilities.get(name).map(|o| &o.origin),
        Manifest::SyncFolder(_) => set.sync_folders.get(name).map(|o| &o.origin),
        Manifest::HandoffPolicy(_) => set.handoff_policies.get(name).map(|o| &o.origin),
        Manifest::Mesh(_) => set.mesh.as_ref().map(|o| &o.origin),
    };
    let first = first.map(ToString::to_string).unwrap_or_default();
    let message = match duplicate {
        Manifest::Mesh(_) => format!("only one Mesh is allowed; another is declared at {first}"),
        _ => format!("{} is declared twice; first at {first}", duplicate.key()),
    };
    Diagnostic::error(&duplicate.origin().file, duplicate.metadata().name.at, duplicate.key(), message)
}

/// How many characters a validation may compare to find "did you mean"
/// suggestions for unknown names (each suggestion compares the name with every
/// candidate). Past it, problems come without one: many typos among many names
/// stay linear in time.
const SUGGESTION_BUDGET: usize = 100_000;

struct Checker<'a> {
    set: &'a ManifestSet,
    unparsed: &'a HashSet<(Kind, String)>,
    scope: Scope,
    out: &'a mut Vec<Diagnostic>,
    nodes: NodeIndex<'a>,
    suggestion_budget: usize,
}

/// The Nodes by role and label, so that whether a selector matches any Node is
/// found without trying every Node for every Service.
struct NodeIndex<'a> {
    all: Vec<&'a Object<NodeSpec>>,
    by_role: HashMap<Role, Vec<&'a Object<NodeSpec>>>,
    by_label: HashMap<(&'a str, &'a str), Vec<&'a Object<NodeSpec>>>,
    /// Answers already found, for Services that share a selector.
    matches_any: HashMap<&'a NodeSelector, bool>,
}

impl<'a> NodeIndex<'a> {
    fn new(set: &'a ManifestSet) -> Self {
        let mut index = NodeIndex {
            all: Vec::new(),
            by_role: HashMap::new(),
            by_label: HashMap::new(),
            matches_any: HashMap::new(),
        };
        for node in set.nodes.values() {
            index.all.push(node);
            index.by_role.entry(node.spec.role).or_default().push(node);
            for (key, value) in &node.metadata.labels {
                index.by_label.entry((key, value)).or_default().push(node);
            }
        }
        index
    }

    /// Whether `selector` matches at least one Node: only the Nodes that meet its
    /// rarest condition are tried.
    fn matches_any(&mut self, selector: &'a NodeSelector) -> bool {
        if let Some(&answer) = self.matches_any.get(selector) {
            return answer;
        }
        let none = Vec::new();
        let role = selector.role.map(|role| self.by_role.get(&role).unwrap_or(&none));
        let labels =
            selector.match_labels.iter().map(|(k, v)| self.by_label.get(&(k.as_str(), v.as_str())).unwrap_or(&none));
        let rarest = role.into_iter().chain(labels).min_by_key(|nodes| nodes.len()).unwrap_or(&self.all);
        let answer = rarest.iter().any(|node| selects(selector, node));
        self.matches_any.insert(selector, answer);
        answer
    }
}

/// The object a check is about: where its file is and how errors name it.
struct Subject<'a> {
    file: &'a Arc<str>,
    key: String,
}

impl Subject<'_> {
    fn of<S: Spec>(object: &Object<S>) -> Subject<'_> {
        Subject { file: &object.origin.file, key: format!("{}/{}", S::KIND, object.name()) }
    }
}

const SERVICE_PLACEHOLDERS: [&str; 2] = ["node.name", "node.address"];
const CLIENT_ENV_PLACEHOLDERS: [&str; 6] = ["host", "port", "path", "node", "api", "apiKey"];

impl<'a> Checker<'a> {
    fn error(&mut self, subject: &Subject<'_>, at: Pos, message: String, help: Option<String>) {
        self.out.push(Diagnostic::error(subject.file, at, subject.key.clone(), message).with_help(help));
    }

    fn warning(&mut self, subject: &Subject<'_>, at: Pos, message: String) {
        self.out.push(Diagnostic::warning(subject.file, at, subject.key.clone(), message));
    }

    /// The closest of `candidates` to `wanted`, while the suggestion budget lasts.
    fn did_you_mean<'n>(&mut self, wanted: &str, candidates: impl ExactSizeIterator<Item = &'n str>) -> Option<String> {
        let cost = candidates.len().saturating_mul(wanted.chars().count() + 1);
        self.suggestion_budget = self.suggestion_budget.checked_sub(cost)?;
        did_you_mean(wanted, candidates)
    }

    /// Whether a `kind` named `name` is declared in a document that did not
    /// parse: a reference to it is not reported as unknown.
    fn unparsed(&self, kind: Kind, name: &str) -> bool {
        self.unparsed.contains(&(kind, name.to_owned()))
    }

    /// Reports `name` when no Node has it.
    fn node_ref(&mut self, subject: &Subject<'_>, field: &str, name: &Located<String>) -> bool {
        if self.set.nodes.contains_key(&name.value) {
            return true;
        }
        if self.unparsed(Kind::Node, &name.value) {
            return false;
        }
        let help = self.did_you_mean(&name.value, self.set.nodes.keys().map(String::as_str));
        self.dangling(subject, field, "node", name, help);
        false
    }

    /// Reports `field`'s reference to a `kind` named `name` that no file
    /// declares: an error in a whole set, a warning in a part of one.
    fn dangling(
        &mut self,
        subject: &Subject<'_>,
        field: &str,
        kind: &str,
        name: &Located<String>,
        help: Option<String>,
    ) {
        let value = &name.value;
        match self.scope {
            Scope::Whole => self.error(subject, name.at, format!("{field} names unknown {kind} \"{value}\""), help),
            Scope::Part => {
                let message = format!("{field} names {kind} \"{value}\", which is in none of the given files");
                self.out.push(Diagnostic::warning(subject.file, name.at, subject.key.clone(), message).with_help(help));
            }
        }
    }

    /// Reports placeholders other than `allowed`, and unclosed ones.
    fn template(&mut self, subject: &Subject<'_>, field: &str, text: &Located<String>, allowed: &[&str]) {
        let Ok(pieces) = template::parse(&text.value) else {
            self.error(subject, text.at, format!("{field} has an unclosed \"{{{{\""), None);
            return;
        };
        for piece in pieces {
            let template::Piece::Placeholder(placeholder) = piece else { continue };
            if allowed.contains(&placeholder) {
                continue;
            }
            let known = allowed.iter().map(|p| format!("{{{{{p}}}}}")).collect::<Vec<_>>().join(", ");
            let help =
                closest(placeholder, allowed.iter().copied()).map(|near| format!("did you mean {{{{{near}}}}}?"));
            self.error(
                subject,
                text.at,
                format!("{field} uses unknown placeholder {{{{{placeholder}}}}} (known: {known})"),
                help,
            );
        }
    }

    fn url_path(&mut self, subject: &Subject<'_>, field: &str, path: &Located<String>) {
        if let Some(problem) = url_path_problem(&path.value) {
            self.error(subject, path.at, format!("{field} \"{}\" {problem}", path.value), None);
        }
    }

    fn node(&mut self, object: &Object<NodeSpec>) {
        let subject = Subject::of(object);
        let address = &object.spec.address;
        if address.value.trim().is_empty() {
            self.error(&subject, address.at, "address must not be empty".into(), None);
        } else if address.value.contains("://") || address.value.contains('/') {
            self.error(
                &subject,
                address.at,
                format!("address \"{}\" must be a host name or IP address, not a URL", address.value),
                None,
            );
        }
        if let Some(wake) = &object.spec.wake
            && let Some(problem) = wake_address_problem(&wake.address.value)
        {
            self.error(&subject, wake.address.at, format!("wake.address \"{}\" {problem}", wake.address.value), None);
        }
        if let Some(syncthing) = &object.spec.syncthing {
            let url = &syncthing.api_url;
            if let Some(problem) = http_url_problem(&url.value) {
                self.error(&subject, url.at, format!("syncthing.apiUrl \"{}\" {problem}", url.value), None);
            }
            let device = &syncthing.device_address;
            let schemes = ["tcp://", "tcp4://", "tcp6://", "quic://", "quic4://", "quic6://", "relay://"];
            if device.value != "dynamic" && !schemes.iter().any(|s| device.value.starts_with(s)) {
                self.error(
                    &subject,
                    device.at,
                    format!(
                        "syncthing.deviceAddress \"{}\" must be \"dynamic\" or a Syncthing address such as tcp://host:22000",
                        device.value
                    ),
                    None,
                );
            }
        }
    }

    fn service(&mut self, object: &'a Object<ServiceSpec>) {
        let subject = Subject::of(object);
        let spec = &object.spec;
        match (spec.nodes.is_empty(), &spec.node_selector) {
            (true, None) => {
                self.error(&subject, object.spec_at, "give nodes or nodeSelector to place the Service".into(), None);
            }
            (false, Some(_)) => {
                self.error(&subject, object.spec_at, "give either nodes or nodeSelector, not both".into(), None);
            }
            _ => {}
        }
        let mut seen = BTreeSet::new();
        for node in &spec.nodes {
            if self.node_ref(&subject, "nodes", node) && !seen.insert(&node.value) {
                self.error(&subject, node.at, format!("nodes names \"{}\" twice", node.value), None);
            }
        }
        if let Some(selector) = &spec.node_selector
            && !self.nodes.matches_any(selector)
            && !self.unparsed.iter().any(|(kind, _)| *kind == Kind::Node)
        {
            let message = match self.scope {
                Scope::Whole => "nodeSelector matches no Node: the Service runs nowhere",
                Scope::Part => "nodeSelector matches no Node in the given files",
            };
            self.warning(&subject, object.spec_at, message.into());
        }
        match spec.command.first() {
            None => self.error(&subject, object.spec_at, "command must name a program".into(), None),
            Some(program) if program.value.trim().is_empty() => {
                self.error(&subject, program.at, "command must name a program".into(), None);
            }
            Some(_) => {}
        }
        for argument in &spec.command {
            self.template(&subject, "command", argument, &SERVICE_PLACEHOLDERS);
        }
        for (name, value) in &spec.env {
            self.env_name(&subject, "env", name, value.at);
            if let EnvValue::Text(text) = &value.value {
                let text = Located::new(text.clone(), value.at);
                self.template(&subject, &format!("env.{name}"), &text, &SERVICE_PLACEHOLDERS);
            }
        }
        if let Some(check) = &spec.health_check {
            match (&check.http, &check.tcp) {
                (None, None) => self.error(&subject, object.spec_at, "healthCheck needs http or tcp".into(), None),
                (Some(_), Some(_)) => {
                    self.error(&subject, object.spec_at, "healthCheck takes http or tcp, not both".into(), None);
                }
                (Some(http), None) => self.url_path(&subject, "healthCheck.http.path", &http.path),
                (None, Some(_)) => {}
            }
            if check.timeout.duration > check.interval.duration {
                self.warning(
                    &subject,
                    object.spec_at,
                    format!("healthCheck.timeout {} is longer than its interval {}", check.timeout, check.interval),
                );
            }
        }
        if spec.backoff.initial.duration > spec.backoff.max.duration {
            self.error(
                &subject,
                spec.backoff.max.at,
                format!(
                    "backoff.max {} is shorter than backoff.initial {}",
                    spec.backoff.max.value, spec.backoff.initial
                ),
                None,
            );
        }
    }

    fn env_name(&mut self, subject: &Subject<'_>, field: &str, name: &str, at: Pos) {
        if let Some(problem) = env_name_problem(name) {
            self.error(subject, at, format!("{field} name \"{name}\" {problem}"), None);
        }
    }

    fn capability(&mut self, object: &Object<CapabilitySpec>) {
        let subject = Subject::of(object);
        let spec = &object.spec;
        if spec.placement.prefer.is_empty() {
            self.error(&subject, spec.placement.prefer.at, "placement.prefer must name at least one node".into(), None);
        }
        let mut placed = BTreeSet::new();
        for (field, name) in spec
            .placement
            .prefer
            .iter()
            .map(|n| ("placement.prefer", n))
            .chain(spec.placement.fallback.iter().map(|n| ("placement.fallback", n)))
        {
            if self.node_ref(&subject, field, name) && !placed.insert(&name.value) {
                self.error(
                    &subject,
                    name.at,
                    format!("{field} names \"{}\" again: placement is an order, each node once", name.value),
                    None,
                );
            }
        }
        if let Some(service_name) = &spec.service {
            match self.set.services.get(&service_name.value) {
                None if self.unparsed(Kind::Service, &service_name.value) => {}
                None => {
                    let help = self.did_you_mean(&service_name.value, self.set.services.keys().map(String::as_str));
                    self.dangling(&subject, "service", "Service", service_name, help);
                }
                Some(service) => {
                    for name in spec.placement.order().filter(|n| self.set.nodes.contains_key(&n.value)) {
                        if !self.set.runs_on(&service.spec, &name.value) {
                            self.warning(
                                &subject,
                                name.at,
                                format!(
                                    "node \"{}\" is in the placement but Service/{} does not run there",
                                    name.value, service_name.value
                                ),
                            );
                        }
                    }
                }
            }
        }
        self.url_path(&subject, "endpoint.path", &spec.endpoint.path);
        if let Some(health_path) = &spec.endpoint.health_path {
            self.url_path(&subject, "endpoint.healthPath", health_path);
        }
        let loopback = spec.endpoint.host.as_deref().filter(|host| is_loopback_host(host));
        for (name, value) in &spec.client_env {
            self.env_name(&subject, "clientEnv", name, value.at);
            self.template(&subject, &format!("clientEnv.{name}"), value, &CLIENT_ENV_PLACEHOLDERS);
            let uses_host = || {
                template::parse(&value.value).is_ok_and(|pieces| pieces.contains(&template::Piece::Placeholder("host")))
            };
            if let Some(host) = loopback.filter(|_| uses_host()) {
                let message = format!(
                    "clientEnv.{name} uses {{{{host}}}}, which is {host}: a client on another node cannot reach it \
                     there; use \"{{{{api}}}}/cap/{}\" (through its own node's mesh API, with {{{{apiKey}}}})",
                    object.name()
                );
                self.warning(&subject, value.at, message);
            }
        }
        if let Some(ollama) = &spec.ollama {
            if spec.provider != Provider::Ollama {
                self.error(&subject, ollama.at, "ollama settings need provider: ollama".into(), None);
            }
            for model in ollama.models.iter().filter(|m| m.value.trim().is_empty()) {
                self.error(&subject, model.at, "ollama.models holds an empty model name".into(), None);
            }
        }
    }

    fn sync_folders(&mut self) {
        let mut ids: BTreeMap<&str, &Object<SyncFolderSpec>> = BTreeMap::new();
        for object in self.set.sync_folders.values() {
            let subject = Subject::of(object);
            let spec = &object.spec;
            let id = spec.folder_id_or(object.name());
            let id_at = spec.folder_id.as_ref().map_or(object.metadata.name.at, |id| id.at);
            if id.trim().is_empty() || id.trim() != id {
                self.error(
                    &subject,
                    id_at,
                    format!("folderId \"{id}\" must not be empty or start or end with spaces"),
                    None,
                );
            }
            if let Some(first) = ids.insert(id, object) {
                ids.insert(id, first);
                self.error(
                    &subject,
                    id_at,
                    format!("folderId \"{id}\" is also used by SyncFolder/{} at {}", first.name(), first.origin),
                    None,
                );
            }
            if spec.paths.is_empty() {
                self.error(&subject, spec.paths.at, "paths must name at least one node".into(), None);
            } else if spec.paths.len() == 1 {
                self.warning(&subject, spec.paths.at, "paths names a single node: nothing is shared".into());
            }
            for (node, path) in spec.paths.iter() {
                self.node_ref(&subject, "paths", node);
                let value = path.value.as_str();
                if !(value.starts_with('/') || value == "~" || value.starts_with("~/")) {
                    self.error(
                        &subject,
                        path.at,
                        format!("paths.{} \"{value}\" must be absolute or start with \"~/\"", node.value),
                        None,
                    );
                }
            }
        }
    }

    fn handoff_policy(&mut self, object: &Object<HandoffPolicySpec>) {
        let subject = Subject::of(object);
        let spec = &object.spec;
        let folder = self.set.sync_folders.get(&spec.sync_folder.value);
        if folder.is_none() && !self.unparsed(Kind::SyncFolder, &spec.sync_folder.value) {
            let help = self.did_you_mean(&spec.sync_folder.value, self.set.sync_folders.keys().map(String::as_str));
            self.dangling(&subject, "syncFolder", "SyncFolder", &spec.sync_folder, help);
        }
        if let Some(problem) = relative_path_problem(&spec.sessions_dir.value) {
            self.error(
                &subject,
                spec.sessions_dir.at,
                format!("sessionsDir \"{}\" {problem}", spec.sessions_dir.value),
                None,
            );
        }
        if let Some(target) = &spec.default_target
            && self.node_ref(&subject, "defaultTarget", target)
            && let Some(folder) = folder
            && !folder.spec.paths.keys().any(|node| node.value == target.value)
        {
            self.error(
                &subject,
                target.at,
                format!("defaultTarget \"{}\" does not share SyncFolder/{}", target.value, folder.name()),
                None,
            );
        }
    }

    fn mesh(&mut self, object: &Object<MeshSpec>) {
        let subject = Subject::of(object);
        let identity = &object.spec.auth.tailscale_identity;
        for tag in &identity.allow_tags {
            if let Some(problem) = tag_problem(&tag.value) {
                self.error(&subject, tag.at, format!("allowTags entry \"{}\" {problem}", tag.value), None);
            }
        }
        if identity.enabled && identity.allow_users.is_empty() && identity.allow_tags.is_empty() {
            self.warning(
                &subject,
                object.spec_at,
                "auth.tailscaleIdentity is enabled but allows no users or tags: it lets no one in".into(),
            );
        }
    }
}

/// Why `path` is not a folder strictly inside its parent, if it is not.
fn relative_path_problem(path: &str) -> Option<&'static str> {
    if path.trim().is_empty() {
        return Some("must not be empty");
    }
    if path.starts_with('/') || path.starts_with('~') || path.contains('\\') {
        return Some("must be relative to its SyncFolder");
    }
    let mut depth: usize = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return Some("escapes its SyncFolder"),
            },
            _ => depth += 1,
        }
    }
    None
}

/// Why `address` cannot be where a magic packet goes: it must be an IPv4 or
/// IPv6 literal or a host name (letters, digits, `-` and `.`).
fn wake_address_problem(address: &str) -> Option<&'static str> {
    if address.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let host_name = !address.is_empty()
        && address.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    (!host_name).then_some("must be an IPv4 or IPv6 address or a host name, e.g. \"192.168.1.255\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Severity;
    use crate::manifest::{SourceFile, validate, validate_as};

    #[test]
    fn a_wake_address_is_an_ip_literal_or_a_host_name() {
        let cases = [
            ("192.168.1.255", true),
            ("127.0.0.1", true),
            ("fe80::1", true),
            ("::1", true),
            ("mini.local", true),
            ("agent-home-mini", true),
            ("", false),
            ("192.168.1.255:9", false),
            ("http://mini", false),
            ("mini..local", false),
            ("-mini", false),
            ("[::1]", false),
            ("mini local", false),
        ];
        for (address, valid) in cases {
            assert_eq!(wake_address_problem(address).is_none(), valid, "{address:?}");
        }
    }

    #[test]
    fn a_selector_matches_any_node_when_one_node_meets_every_condition() {
        let node = |name: &str, role: &str, labels: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec: {{role: {role}, address: {name}}}\n"
            )
        };
        let text = [
            node("a", "primary", "zone: home, gpu: \"true\""),
            node("b", "satellite", "zone: home"),
            node("c", "satellite", "zone: work, gpu: \"true\""),
        ]
        .join("---\n");
        let set = validate(&[SourceFile { path: "nodes.yaml".into(), text }], Vec::new()).set;
        let selector = |role: Option<Role>, labels: &[(&str, &str)]| NodeSelector {
            role,
            match_labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let table = [
            (selector(None, &[]), true),
            (selector(Some(Role::Primary), &[]), true),
            (selector(None, &[("zone", "home"), ("gpu", "true")]), true),
            (selector(Some(Role::Satellite), &[("gpu", "true")]), true),
            (selector(Some(Role::Primary), &[("zone", "work")]), false),
            (selector(Some(Role::Satellite), &[("zone", "home"), ("gpu", "true")]), false),
            (selector(None, &[("zone", "nowhere")]), false),
        ];
        let mut index = NodeIndex::new(&set);
        for (selector, expected) in &table {
            assert_eq!(index.matches_any(selector), *expected, "{selector:?}");
            // Asked again, the remembered answer is the same.
            assert_eq!(index.matches_any(selector), *expected, "{selector:?}");
        }
    }

    #[test]
    fn suggestions_stop_when_their_budget_is_spent() {
        let text =
            "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: primary, address: a}\n";
        let set = validate(&[SourceFile { path: "nodes.yaml".into(), text: text.into() }], Vec::new()).set;
        let mut out = Vec::new();
        // "laptp" against one candidate costs 6; the budget covers one such look.
        let unparsed = HashSet::new();
        let mut checker = Checker {
            set: &set,
            unparsed: &unparsed,
            scope: Scope::Whole,
            out: &mut out,
            nodes: NodeIndex::new(&set),
            suggestion_budget: 11,
        };
        let file: Arc<str> = "s.yaml".into();
        let subject = Subject { file: &file, key: "Service/s".into() };
        let typo = Located::new("laptp".to_owned(), Pos::default());
        assert!(!checker.node_ref(&subject, "nodes", &typo));
        assert!(!checker.node_ref(&subject, "nodes", &typo));
        let helps: Vec<Option<&str>> = out.iter().map(|d| d.help.as_deref()).collect();
        assert_eq!(helps, [Some("did you mean \"laptop\"?"), None]);
    }

    #[test]
    fn sessions_dir_must_stay_inside_its_folder() {
        let table = [
            ("sessions", None),
            ("agent/sessions", None),
            ("a/../b", None),
            (".", None),
            ("..", Some("escapes its SyncFolder")),
            ("a/../../b", Some("escapes its SyncFolder")),
            ("/abs", Some("must be relative to its SyncFolder")),
            ("~/x", Some("must be relative to its SyncFolder")),
            ("", Some("must not be empty")),
        ];
        for (path, expected) in table {
            assert_eq!(relative_path_problem(path), expected, "{path:?}");
        }
    }

    #[test]
    fn references_outside_the_files_are_errors_in_a_whole_set_and_warnings_in_a_part() {
        let capability = "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {name: llm}\n\
            spec: {service: ollama, provider: ollama, placement: {prefer: [mini]}, endpoint: {port: 11434}}\n---\n\
            apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata: {name: h}\nspec: {syncFolder: data}\n";
        let files = [SourceFile { path: "cap.yaml".into(), text: capability.into() }];
        let expected = [
            "service names Service \"ollama\"",
            "placement.prefer names node \"mini\"",
            "syncFolder names SyncFolder \"data\"",
        ];
        for (scope, severity, unknown, suffix) in [
            (Scope::Whole, Severity::Error, "unknown ", ""),
            (Scope::Part, Severity::Warning, "", ", which is in none of the given files"),
        ] {
            let validation = validate_as(&files, Vec::new(), scope);
            let found: Vec<(Severity, &str)> =
                validation.diagnostics.iter().map(|d| (d.severity, d.message.as_str())).collect();
            let wanted: Vec<String> = expected
                .iter()
                .map(|e| format!("{}{suffix}", e.replacen("names ", &format!("names {unknown}"), 1)))
                .collect();
            let wanted: Vec<(Severity, &str)> = wanted.iter().map(|w| (severity, w.as_str())).collect();
            assert_eq!(found, wanted, "{scope:?}");
        }
    }
}
