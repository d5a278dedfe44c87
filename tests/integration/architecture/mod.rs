//! The architecture's rules, checked on the source tree: no import cycles
//! between files, imports only downward through the layers that
//! `docs/ARCHITECTURE.md` names, and a `//!` line atop every module.

mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use self::scan::{Graph, ModulePath, SourceFile, import_graph, read_tree, source_file};

/// The layers, lowest first: a module may import its own layer and the ones
/// below. Each entry is a module path prefix (the longest one that matches
/// places a file); a file that no entry places fails the check, so a new
/// module is placed on purpose. Keep in step with "Layers" in
/// docs/ARCHITECTURE.md.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaf",
        &[
            "diagnostic",
            "event",
            "net",
            "sys",
            "sleep_clock",
            "clock",
            "atomic_file",
            "template",
            "backoff",
            "build_info",
            "metrics",
            "descriptor_limit",
            "state_lock",
            "tasks",
        ],
    ),
    ("model", &["manifest", "identity", "env_location", "api_key", "config", "source_status"]),
    ("system", &["git", "supervisor", "syncthing", "ollama", "tailscale", "wake", "sleep_notice"]),
    ("domain", &["handoff", "controller::status", "controller::state"]),
    ("contract", &["api::wire"]),
    ("client", &["client"]),
    ("mesh", &["mesh", "source", "handoff::io", "handoff::driver"]),
    ("reconcile", &["reconcile"]),
    ("controller", &["controller"]),
    ("serve", &["api", "daemon"]),
    ("cli", &["cli", ""]),
];

/// Imports the layers would allow but the design does not: the mesh, the
/// sources and the handoff protocol know nothing of the controller or of the
/// reconcilers that use them.
const APART: &[(&str, &str)] = &[
    ("mesh", "controller"),
    ("mesh", "reconcile"),
    ("source", "controller"),
    ("source", "reconcile"),
    ("handoff", "controller"),
    ("handoff", "reconcile"),
];

#[test]
fn no_file_imports_another_that_imports_it_back() {
    let graph = import_graph(&crate_files());
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between files (each line: file -> file it imports):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn every_import_points_down_the_layers() {
    let files = crate_files();
    let violations = layer_violations(&files, &import_graph(&files));
    assert!(violations.is_empty(), "imports across a forbidden layer:\n{}", violations.join("\n"));
}

#[test]
fn every_module_says_what_it_is_for() {
    let missing: Vec<String> = crate_files()
        .iter()
        .filter(|file| !file.text.trim_start().starts_with("//!"))
        .map(|file| file.shown.clone())
        .collect();
    assert!(missing.is_empty(), "modules without a `//!` line at the top: {}", missing.join(", "));
}

/// The checks see what they are meant to see: a cycle through `super`, an
/// upward `crate::` path written inline, and an import inside a string, a
/// comment or a test module that is no import.
#[test]
fn the_checks_catch_cycles_and_upward_imports_and_nothing_else() {
    let files = vec![
        source_file("mesh/mod.rs", "//! Mesh.\npub mod router;\nuse self::router::Router;\n".into()),
        source_file("mesh/router.rs", "//! Router.\nuse super::Peers;\nfn f() { crate::controller::run(); }\n".into()),
        source_file(
            "controller/mod.rs",
            "//! Controller.\nconst S: &str = \"crate::cli::x\";\n// use crate::cli::y;\n\
             #[cfg(test)]\nmod tests { use crate::cli::z; }\nuse crate::mesh::{router::{self, Router as R}};\n"
                .into(),
        ),
        source_file("cli/mod.rs", "//! Cli.\nuse crate::controller;\n".into()),
    ];
    let graph = import_graph(&files);
    let path = |text: &str| -> ModulePath { text.split('/').map(str::to_owned).collect() };
    assert_eq!(
        graph[&path("controller")].keys().cloned().collect::<Vec<_>>(),
        vec![path("mesh/router")],
        "the string, the comment and the test module import nothing"
    );
    let cycles = cycles(&graph);
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].contains("mesh -> mesh/router") && cycles[0].contains("mesh/router -> mesh"), "{cycles:?}");
    let violations = layer_violations(&files, &graph);
    assert_eq!(
        violations,
        [
            "src/mesh/router.rs:3 (mesh) imports controller (controller)",
            "src/mesh/router.rs:3 imports controller: mesh stays apart from controller"
        ],
    );
}

fn crate_files() -> Vec<SourceFile> {
    read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// The layer that places `module`, by its longest matching prefix.
fn layer_of(module: &ModulePath) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(rank, (layer, prefixes))| prefixes.iter().map(move |prefix| (rank, *layer, *prefix)))
        .filter(|(_, _, prefix)| within(module, prefix))
        .max_by_key(|(_, _, prefix)| prefix.len())
        .map(|(rank, layer, _)| (rank, layer))
}

/// Whether `module` is `prefix` or inside it.
fn within(module: &ModulePath, prefix: &str) -> bool {
    let name = module.join("::");
    prefix.is_empty() || name == prefix || name.starts_with(&format!("{prefix}::"))
}

/// Each import of a higher layer, each import [`APART`] forbids, and each
/// file no layer places.
fn layer_violations(files: &[SourceFile], graph: &Graph) -> Vec<String> {
    let shown: BTreeMap<&ModulePath, &str> = files.iter().map(|file| (&file.module, file.shown.as_str())).collect();
    let mut violations = Vec::new();
    for (module, imports) in graph {
        let Some((rank, layer)) = layer_of(module) else {
            violations.push(format!("{} is in no layer", shown[module]));
            continue;
        };
        for (target, line) in imports {
            let Some((target_rank, target_layer)) = layer_of(target) else { continue };
            if target_rank > rank {
                violations.push(format!(
                    "{}:{line} ({layer}) imports {} ({target_layer})",
                    shown[module],
                    target.join("/")
                ));
            }
            for (from, to) in APART {
                if within(module, from) && within(target, to) {
                    violations.push(format!(
                        "{}:{line} imports {}: {from} stays apart from {to}",
                        shown[module],
                        target.join("/")
                    ));
                }
            }
        }
    }
    violations
}

/// Each strongly connected group of files, as its import edges.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut tarjan =
        Tarjan { graph, next: 0, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), groups: Vec::new() };
    for module in graph.keys() {
        if !tarjan.index.contains_key(module) {
            tarjan.visit(module);
        }
    }
    tarjan
        .groups
        .into_iter()
        .map(|group| {
            let members: BTreeSet<&ModulePath> = group.iter().collect();
            let mut edges = Vec::new();
            for from in &members {
                for to in graph[*from].keys().filter(|to| members.contains(to)) {
                    edges.push(format!("  {} -> {}", from.join("/"), to.join("/")));
                }
            }
            edges.join("\n")
        })
        .collect()
}

/// Tarjan's strongly connected components, keeping those of two or more files.
struct Tarjan<'a> {
    graph: &'a Graph,
    next: usize,
    index: BTreeMap<ModulePath, usize>,
    low: BTreeMap<ModulePath, usize>,
    stack: Vec<ModulePath>,
    groups: Vec<Vec<ModulePath>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, module: &ModulePath) {
        self.index.insert(module.clone(), self.next);
        self.low.insert(module.clone(), self.next);
        self.next += 1;
        self.stack.push(module.clone());
        let graph = self.graph;
        for target in graph.get(module).into_iter().flat_map(BTreeMap::keys) {
            if !self.index.contains_key(target) {
                self.visit(target);
                let low = self.low[module].min(self.low[target]);
                self.low.insert(module.clone(), low);
            } else if self.stack.contains(target) {
                let low = self.low[module].min(self.index[target]);
                self.low.insert(module.clone(), low);
            }
        }
        if self.low[module] == self.index[module] {
            let at = self.stack.iter().rposition(|member| member == module).expect("on the stack");
            let group = self.stack.split_off(at);
            if group.len() > 1 {
                self.groups.push(group);
            }
        }
    }
}
