//! Manifest sets of many documents in every shape the checks meet: one object
//! duplicated, distinct valid objects that reference each other, invalid
//! documents of many kinds, deep and long values. Shared by the validation
//! bench (`benches/validate.rs` includes this file) and the debug test that
//! checks validation time grows linearly with the count.

use agentmesh::manifest::SourceFile;

/// A shape of set: its name, and the files of a set of `n` documents.
pub(crate) struct Shape {
    pub name: &'static str,
    pub files: fn(usize) -> Vec<SourceFile>,
}

pub(crate) const SHAPES: [Shape; 5] = [
    Shape { name: "one Node duplicated", files: duplicated },
    Shape { name: "distinct valid objects", files: distinct_valid },
    Shape { name: "invalid documents", files: invalid },
    Shape { name: "deep and long values", files: deep_and_long },
    Shape { name: "mixed shapes", files: mixed },
];

/// Documents per file: sets are split into files of this many documents.
const PER_FILE: usize = 100;

fn in_files(documents: Vec<String>) -> Vec<SourceFile> {
    documents
        .chunks(PER_FILE)
        .enumerate()
        .map(|(index, chunk)| SourceFile {
            path: format!("manifests/set-{index:04}.yaml").into(),
            text: chunk.join("---\n"),
        })
        .collect()
}

fn node(name: &str, zone: usize) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{zone: z{zone}}}\nspec:\n  role: satellite\n  address: {name}.tailnet.ts.net\n"
    )
}

/// `n` copies of one Node, all in one file: every copy after the first is a
/// duplicate.
pub(crate) fn duplicated(n: usize) -> Vec<SourceFile> {
    let text = vec![node("home", 0); n].join("---\n");
    vec![SourceFile { path: "manifests/nodes.yaml".into(), text }]
}

/// A quarter each: Nodes, Services placed by selector (half of them matching
/// no Node) and by name, Capabilities on those nodes and Services, SyncFolders
/// with HandoffPolicies.
pub(crate) fn distinct_valid(n: usize) -> Vec<SourceFile> {
    let quarter = (n / 4).max(1);
    let mut documents = Vec::with_capacity(n);
    documents.extend((0..quarter).map(|i| node(&format!("node-{i}"), i % 7)));
    documents.extend((0..quarter).map(|i| {
        let placement = if i % 2 == 0 {
            format!("  nodeSelector:\n    matchLabels: {{zone: z{}}}\n", i % 14)
        } else {
            format!("  nodes: [node-{}, node-{}]\n", i % quarter, (i + 1) % quarter)
        };
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata:\n  name: svc-{i}\nspec:\n{placement}  command: [/bin/server, --name, \"{{{{node.name}}}}\"]\n"
        )
    }));
    documents.extend((0..quarter).map(|i| {
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata:\n  name: cap_{i}\nspec:\n  provider: http\n  service: svc-{i}\n  placement:\n    prefer: [node-{}]\n    fallback: [node-{}]\n  endpoint: {{port: 9000, path: /v1}}\n",
            i % quarter,
            (i + 3) % quarter
        )
    }));
    let folders = quarter / 2;
    documents.extend((0..folders).map(|i| {
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata:\n  name: folder_{i}\nspec:\n  paths:\n    node-{}: ~/f{i}\n    node-{}: ~/f{i}\n",
            i % quarter,
            (i + 1) % quarter
        )
    }));
    documents.extend((0..quarter - folders).map(|i| {
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata:\n  name: handoff-{i}\nspec:\n  syncFolder: folder_{}\n  sessionsDir: sessions/{i}\n",
            i % folders.max(1)
        )
    }));
    in_files(documents)
}

/// Documents wrong in turn in each way: YAML that does not parse, unknown kinds
/// and fields, references to unknown nodes (each with a "did you mean" to look
/// for among many), bad names, values of the wrong type.
pub(crate) fn invalid(n: usize) -> Vec<SourceFile> {
    let documents = (0..n)
        .map(|i| match i % 8 {
            0 => format!("apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: broken-{i}\nspec: [\n"),
            1 => format!("apiVersion: agentmesh/v1alpha1\nkind: Nod\nmetadata: {{name: n-{i}}}\nspec: {{}}\n"),
            2 => format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: n-{i}}}\nspec: {{role: primary, adress: n}}\n"
            ),
            3 => format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: svc-{i}}}\nspec:\n  nodes: [node-{i}, nodx-{i}]\n  command: [run]\n"
            ),
            4 => format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: cap_{i}}}\nspec:\n  provider: http\n  service: svc-{i}\n  placement: {{prefer: [node-{i}]}}\n  endpoint: {{port: 1, path: v1}}\n"
            ),
            5 => format!("apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: Bad_Name_{i}}}\nspec: {{role: primary, address: a}}\n"),
            6 => format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: n-{i}}}\nspec: {{role: primary, address: a, apiPort: {}}}\n",
                70_000 + i
            ),
            _ => format!("apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata: {{name: h-{i}}}\nspec: {{syncFolder: folder_{i}, sessionsDir: ../x}}\n"),
        })
        .collect();
    in_files(documents)
}

/// Nodes whose values are long (a 2,000-character address, many labels) or
/// nested as deep as the parser allows.
pub(crate) fn deep_and_long(n: usize) -> Vec<SourceFile> {
    let documents = (0..n)
        .map(|i| match i % 3 {
            0 => format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: long-{i}}}\nspec: {{role: primary, address: {}}}\n",
                "a".repeat(2_000)
            ),
            1 => {
                let labels: Vec<String> = (0..50).map(|k| format!("k{k}: v{k}")).collect();
                format!(
                    "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: labels-{i}\n  labels: {{{}}}\nspec: {{role: primary, address: a}}\n",
                    labels.join(", ")
                )
            }
            _ => format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: deep-{i}}}\nspec: {{role: primary, address: a, x: {}{}}}\n",
                "[".repeat(60),
                "]".repeat(60)
            ),
        })
        .collect();
    in_files(documents)
}

/// A fifth of each other shape.
pub(crate) fn mixed(n: usize) -> Vec<SourceFile> {
    let fifth = (n / 5).max(1);
    let mut files = Vec::new();
    for (index, shape) in SHAPES.iter().filter(|shape| shape.name != "mixed shapes").enumerate() {
        files.extend((shape.files)(fifth).into_iter().map(|mut file| {
            file.path = format!("manifests/{index}/{}", file.path.trim_start_matches("manifests/")).into();
            file
        }));
    }
    files
}
