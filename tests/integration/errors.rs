//! `meshctl validate` on malformed manifests: the exact rendered error, with file,
//! line and column, for every rule of the manifest checks (design section 3), run
//! as a user runs it, on files in a temporary folder.

use std::time::{Duration, Instant};

use crate::support::{Run, Workspace};

/// Two valid Nodes, the base every case adds its one defect to. Cases add files
/// beside it, or replace it by writing the same path.
const NODES: &str = "
    apiVersion: agentmesh/v1alpha1
    kind: Node
    metadata:
      name: agent-home-mini
    spec:
      role: primary
      address: agent-home-mini
    ---
    apiVersion: agentmesh/v1alpha1
    kind: Node
    metadata:
      name: agent-work-laptop
    spec:
      role: satellite
      address: agent-work-laptop
";

/// A valid SyncFolder shared by both nodes, for the HandoffPolicy cases.
const FOLDER: &str = "
    apiVersion: agentmesh/v1alpha1
    kind: SyncFolder
    metadata:
      name: agent_data
    spec:
      paths:
        agent-home-mini: ~/agent_data
        agent-work-laptop: ~/agent_data
";

/// A valid Service on both nodes, for the Capability cases.
const OLLAMA: &str = "
    apiVersion: agentmesh/v1alpha1
    kind: Service
    metadata:
      name: ollama
    spec:
      nodes: [agent-home-mini, agent-work-laptop]
      command: [ollama, serve]
";

/// Removes the common indentation of `text` and its first (empty) line, so
/// manifests can be written indented in the table and still start at line 1.
fn dedent(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or("").trim_end());
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// A workspace holding the base Nodes plus `files` (dedented).
fn workspace(files: &[(&str, &str)]) -> Workspace {
    let mut workspace = Workspace::new().file("manifests/nodes.yaml", &dedent(NODES));
    for (path, text) in files {
        workspace = workspace.file(path, &dedent(text));
    }
    workspace
}

/// One malformed input and every diagnostic it must render, each as its lines
/// (first line, source line, caret, help).
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    expect: &'static [&'static [&'static str]],
}

/// Each diagnostic of `blocks` and a blank line, as stderr shows them.
fn rendered(blocks: &[&[&str]]) -> String {
    blocks.iter().map(|block| format!("{}\n\n", block.join("\n"))).collect()
}

/// The whole of stderr a failing run prints for `blocks`: each diagnostic and a
/// blank line, then the summary.
fn expected_stderr(blocks: &[&[&str]]) -> String {
    let errors = match blocks.len() {
        1 => "1 error".to_owned(),
        n => format!("{n} errors"),
    };
    format!("{}manifests: {errors}\n", rendered(blocks))
}

const CASES: &[Case] = &[
    // --- YAML itself ---------------------------------------------------------
    Case {
        name: "yaml syntax error: unclosed flow sequence",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: [x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:7:12: document 1: unclosed bracket '['",
            " 7 |   address: [x",
            "   |            ^",
        ]],
    },
    Case {
        name: "yaml syntax error: a mapping value where none may be",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: a: b
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:7:13: document 1: mapping values are not allowed in this context",
            " 7 |   address: a: b",
            "   |             ^",
        ]],
    },
    Case {
        name: "yaml syntax error in the second document of a file",
        files: &[(
            "manifests/t.yaml",
            r#"
            apiVersion: agentmesh/v1alpha1
            kind: Mesh
            metadata:
              name: home
            spec: {}
            ---
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: "x
        "#,
        )],
        expect: &[&[
            r#"manifests/t.yaml:10:9: document 2: unclosed quote"#,
            r#" 10 |   name: "x"#,
            r#"    |         ^"#,
        ]],
    },
    Case {
        name: "duplicate key",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              role: satellite
              address: x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:7:3: document 1: duplicate mapping key `role` is not allowed here",
            " 7 |   role: satellite",
            "   |   ^^^^",
        ]],
    },
    Case {
        name: "a document that is a list, not a mapping",
        files: &[(
            "manifests/t.yaml",
            "
            - apiVersion: agentmesh/v1alpha1
              kind: Node
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:1:1: document 1: a manifest must be a mapping with apiVersion, kind, metadata and spec",
            " 1 | - apiVersion: agentmesh/v1alpha1",
            "   | ^",
        ]],
    },
    Case {
        name: "a document that is a scalar, not a mapping",
        files: &[(
            "manifests/t.yaml",
            "
            # just a word
            hello
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:2:1: document 1: a manifest must be a mapping with apiVersion, kind, metadata and spec",
            " 2 | hello",
            "   | ^^^^^",
        ]],
    },
    // --- unknown fields, types, enums, values ---------------------------------
    Case {
        name: "unknown field in spec, with did-you-mean",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
              apiPrt: 8000
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:8:3: Node/x: unknown field `apiPrt`, expected one of role, address, apiPort, syncthing, wake",
            " 8 |   apiPrt: 8000",
            "   |   ^^^^^^",
            r#"   = help: did you mean "apiPort"?"#,
        ]],
    },
    Case {
        name: "unknown field in metadata, with did-you-mean",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
              lables: {gpu: none}
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:5:3: Node/x: unknown field `lables`, expected one of name, labels",
            " 5 |   lables: {gpu: none}",
            "   |   ^^^^^^",
            r#"   = help: did you mean "labels"?"#,
        ]],
    },
    Case {
        name: "unknown top-level field",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
            status: {}
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:8:1: Node/x: unknown field `status`, expected one of apiVersion, kind, metadata, spec",
            " 8 | status: {}",
            "   | ^^^^^^",
        ]],
    },
    Case {
        name: "wrong type: a quoted string where a port belongs points at the value",
        files: &[(
            "manifests/t.yaml",
            r#"
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
              apiPort: "8000"
        "#,
        )],
        expect: &[&[
            r#"manifests/t.yaml:8:12: Node/x: invalid type: string "8000", expected a port number 1-65535"#,
            r#" 8 |   apiPort: "8000""#,
            r#"   |            ^^^^^^"#,
        ]],
    },
    Case {
        name: "wrong type: a string where a list belongs",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              command: ollama serve
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:7:12: Service/ollama: expected sequence start",
            " 7 |   command: ollama serve",
            "   |            ^^^^^^^^^^^^",
        ]],
    },
    Case {
        name: "wrong type: not a boolean",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Mesh
            metadata:
              name: home
            spec:
              auth:
                tailscaleIdentity:
                  enabled: maybe
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:8:16: Mesh/home: invalid boolean",
            " 8 |       enabled: maybe",
            "   |                ^^^^^",
        ]],
    },
    Case {
        name: "bad enum value, with did-you-mean",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primry
              address: x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:6:9: Node/x: unknown variant `primry`, expected one of primary, satellite",
            " 6 |   role: primry",
            "   |         ^^^^^^",
            r#"   = help: did you mean "primary"?"#,
        ]],
    },
    Case {
        name: "bad kebab-case enum value, with did-you-mean",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              command: [ollama, serve]
              restart: on_failure
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:8:12: Service/ollama: unknown variant `on_failure`, expected one of always, on-failure, never",
            " 8 |   restart: on_failure",
            "   |            ^^^^^^^^^^",
            r#"   = help: did you mean "on-failure"?"#,
        ]],
    },
    Case {
        name: "port 0 is out of range",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
              apiPort: 0
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:8:12: Node/x: port 0 is out of range 1-65535",
            " 8 |   apiPort: 0",
            "   |            ^",
        ]],
    },
    Case {
        name: "port 70000 is out of range",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: chroma
            spec:
              nodes: [agent-home-mini]
              command: [chroma, run]
              healthCheck:
                tcp: {port: 70000}
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:9:17: Service/chroma: port 70000 is out of range 1-65535",
            " 9 |     tcp: {port: 70000}",
            "   |                 ^^^^^",
        ]],
    },
    Case {
        name: "bad duration: unknown unit",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Mesh
            metadata:
              name: home
            spec:
              reconcile:
                resyncInterval: 5 minutes
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:7:21: Mesh/home: duration "5 minutes" has an unknown unit: use whole numbers with units ms, s, m, h or d, e.g. "10s", "5m" or "1h30m""#,
            " 7 |     resyncInterval: 5 minutes",
            "   |                     ^^^^^^^^^",
        ]],
    },
    Case {
        name: "bad duration: zero",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              command: [ollama, serve]
              stopGracePeriod: 0s
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:8:20: Service/ollama: duration "0s" must be longer than zero"#,
            " 8 |   stopGracePeriod: 0s",
            "   |                    ^^",
        ]],
    },
    Case {
        name: "wake: a MAC address with five pairs and mixed separators",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
              wake:
                mac: aa:bb-cc:dd:ee
                address: 192.168.1.255
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:9:10: Node/x: MAC address "aa:bb-cc:dd:ee" must be six hex pairs joined by ':' or '-', e.g. "aa:bb:cc:dd:ee:ff""#,
            " 9 |     mac: aa:bb-cc:dd:ee",
            "   |          ^^^^^^^^^^^^^^",
        ]],
    },
    Case {
        name: "wake: an address that is a URL",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
              wake: {mac: \"aa-bb-cc-dd-ee-ff\", address: \"udp://192.168.1.255\", port: 7}
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:8:45: Node/x: wake.address "udp://192.168.1.255" must be an IPv4 or IPv6 address or a host name, e.g. "192.168.1.255""#,
            r#" 8 |   wake: {mac: "aa-bb-cc-dd-ee-ff", address: "udp://192.168.1.255", port: 7}"#,
            "   |                                             ^^^^^^^^^^^^^^^^^^^^^",
        ]],
    },
    Case {
        name: "wake: a timeout that is not a duration",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
              wake: {mac: aa:bb:cc:dd:ee:ff, address: mini.local, timeout: 15sec}
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:8:64: Node/x: invalid duration "15sec": use whole numbers with units ms, s, m, h or d, e.g. "10s", "5m" or "1h30m""#,
            " 8 |   wake: {mac: aa:bb:cc:dd:ee:ff, address: mini.local, timeout: 15sec}",
            "   |                                                                ^^^^^",
        ]],
    },
    Case {
        name: "bad name: uppercase and a dot",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: Agent.Home
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:4:9: Node/Agent.Home: metadata.name \"Agent.Home\" may only hold lowercase letters, digits, '-' and '_'",
            " 4 |   name: Agent.Home",
            "   |         ^^^^^^^^^^",
        ]],
    },
    Case {
        name: "bad name: starts with a dash",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: SyncFolder
            metadata:
              name: _data
            spec:
              paths:
                agent-home-mini: ~/data
                agent-work-laptop: ~/data
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:4:9: SyncFolder/_data: metadata.name "_data" must start and end with a letter or digit"#,
            " 4 |   name: _data",
            "   |         ^^^^^",
        ]],
    },
    Case {
        name: "plaintext secret in a Node's syncthing apiKey",
        files: &[(
            "manifests/nodes.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: agent-home-mini
            spec:
              role: primary
              address: agent-home-mini
              syncthing:
                apiKey: hunter2
        ",
        )],
        expect: &[&[
            "manifests/nodes.yaml:9:13: Node/agent-home-mini: a secret must not be written in a manifest: use {env: NAME} or {file: PATH}",
            " 9 |     apiKey: hunter2",
            "   |             ^^^^^^^",
        ]],
    },
    Case {
        name: "plaintext secret in the Mesh's apiKey",
        files: &[(
            "manifests/t.yaml",
            r#"
            apiVersion: agentmesh/v1alpha1
            kind: Mesh
            metadata:
              name: home
            spec:
              auth:
                apiKey: "s3cr3t-k3y"
        "#,
        )],
        expect: &[&[
            "manifests/t.yaml:7:13: Mesh/home: a secret must not be written in a manifest: use {env: NAME} or {file: PATH}",
            r#" 7 |     apiKey: "s3cr3t-k3y""#,
            r#"   |             ^^^^^^^^^^^^"#,
        ]],
    },
    // --- the envelope ---------------------------------------------------------
    Case {
        name: "unknown apiVersion",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:1:13: Node/x: unknown apiVersion "agentmesh/v1", expected "agentmesh/v1alpha1""#,
            " 1 | apiVersion: agentmesh/v1",
            "   |             ^^^^^^^^^^^^",
        ]],
    },
    Case {
        name: "unknown kind, with did-you-mean",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Nod
            metadata:
              name: x
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:2:7: Nod/x: unknown kind "Nod", expected one of Node, Service, Capability, SyncFolder, HandoffPolicy, Mesh"#,
            " 2 | kind: Nod",
            "   |       ^^^",
            r#"   = help: did you mean "Node"?"#,
        ]],
    },
    Case {
        name: "missing apiVersion",
        files: &[(
            "manifests/t.yaml",
            "
            # no apiVersion
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:2:1: Node/x: missing field `apiVersion` (expected "agentmesh/v1alpha1")"#,
            " 2 | kind: Node",
            "   | ^",
        ]],
    },
    Case {
        name: "missing kind",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            metadata:
              name: x
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:1:1: document 1: missing field `kind` (one of Node, Service, Capability, SyncFolder, HandoffPolicy, Mesh)",
            " 1 | apiVersion: agentmesh/v1alpha1",
            "   | ^",
        ]],
    },
    Case {
        name: "missing metadata points at the document",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:1:1: Node/<unnamed>: missing field `metadata`",
            " 1 | apiVersion: agentmesh/v1alpha1",
            "   | ^",
        ]],
    },
    Case {
        name: "missing metadata.name points at the metadata line",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              labels: {gpu: none}
            spec:
              role: primary
              address: x
        ",
        )],
        expect: &[&["manifests/t.yaml:3:1: Node/<unnamed>: missing field `name`", " 3 | metadata:", "   | ^^^^^^^^"]],
    },
    Case {
        name: "missing spec points at the document",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:1:1: Node/x: missing field `spec`",
            " 1 | apiVersion: agentmesh/v1alpha1",
            "   | ^",
        ]],
    },
    Case {
        name: "missing required spec field points at the spec line, not its last key",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: x
            spec:
              role: primary
        ",
        )],
        expect: &[&["manifests/t.yaml:5:1: Node/x: missing field `address`", " 5 | spec:", "   | ^^^^"]],
    },
    // --- every problem of a document in one run, and no cascade ---------------
    Case {
        name: "an unknown field, a bad enum value and a bad duration in one Service are three errors",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              command: [ollama, serve]
              restrat: always
              restart: sometimes
              stopGracePeriod: 10 s
        ",
        )],
        expect: &[
            &[
                "manifests/t.yaml:8:3: Service/ollama: unknown field `restrat`, expected one of nodes, nodeSelector, command, env, workingDir, healthCheck, restart, backoff, stopGracePeriod",
                " 8 |   restrat: always",
                "   |   ^^^^^^^",
                r#"   = help: did you mean "restart"?"#,
            ],
            &[
                "manifests/t.yaml:9:12: Service/ollama: unknown variant `sometimes`, expected one of always, on-failure, never",
                " 9 |   restart: sometimes",
                "   |            ^^^^^^^^^",
            ],
            &[
                r#"manifests/t.yaml:10:20: Service/ollama: duration "10 s" has an unknown unit: use whole numbers with units ms, s, m, h or d, e.g. "10s", "5m" or "1h30m""#,
                " 10 |   stopGracePeriod: 10 s",
                "    |                    ^^^^",
            ],
        ],
    },
    Case {
        name: "http and tcp together are reported with the other problems of a document that did not parse",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              command: [ollama, serve]
              healthCheck:
                http: {port: 11434}
                tcp: {port: 0}
        ",
        )],
        expect: &[
            &[
                "manifests/t.yaml:8:3: Service/ollama: healthCheck takes http or tcp, not both",
                " 8 |   healthCheck:",
                "   |   ^^^^^^^^^^^",
            ],
            &[
                "manifests/t.yaml:10:17: Service/ollama: port 0 is out of range 1-65535",
                " 10 |     tcp: {port: 0}",
                "    |                 ^",
            ],
        ],
    },
    Case {
        name: "objects that did not parse are not reported again as unknown by the objects naming them",
        files: &[
            (
                "manifests/svc.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Service
                metadata:
                  name: chroma
                spec:
                  nodes: [agent-home-mini]
                  comand: [chroma, run]
            ",
            ),
            (
                "manifests/llm.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Capability
                metadata:
                  name: vectors
                spec:
                  provider: http
                  service: chroma
                  placement: {prefer: [agent-gpu]}
                  endpoint: {port: 8000}
                ---
                apiVersion: agentmesh/v1alpha1
                kind: Node
                metadata:
                  name: agent-gpu
                spec:
                  role: leader
                  address: agent-gpu
            ",
            ),
        ],
        expect: &[
            &[
                "manifests/llm.yaml:16:9: Node/agent-gpu: unknown variant `leader`, expected one of primary, satellite",
                " 16 |   role: leader",
                "    |         ^^^^^^",
            ],
            &["manifests/svc.yaml:5:1: Service/chroma: missing field `command`", " 5 | spec:", "   | ^^^^"],
            &[
                "manifests/svc.yaml:7:3: Service/chroma: unknown field `comand`, expected one of nodes, nodeSelector, command, env, workingDir, healthCheck, restart, backoff, stopGracePeriod",
                " 7 |   comand: [chroma, run]",
                "   |   ^^^^^^",
                r#"   = help: did you mean "command"?"#,
            ],
        ],
    },
    // --- one object per kind and name, one Mesh -------------------------------
    Case {
        name: "two objects of one kind with one name in one file",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Mesh
            metadata:
              name: home
            spec: {}
            ---
            apiVersion: agentmesh/v1alpha1
            kind: SyncFolder
            metadata:
              name: data
            spec:
              paths: {agent-home-mini: ~/a, agent-work-laptop: ~/a}
            ---
            apiVersion: agentmesh/v1alpha1
            kind: SyncFolder
            metadata:
              name: data
            spec:
              folderId: data-2
              paths: {agent-home-mini: ~/b, agent-work-laptop: ~/b}
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:17:9: SyncFolder/data: SyncFolder/data is declared twice; first at manifests/t.yaml:10:9",
            " 17 |   name: data",
            "    |         ^^^^",
        ]],
    },
    Case {
        name: "two objects of one kind with one name across files names the first",
        files: &[(
            "manifests/other/laptop.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Node
            metadata:
              name: agent-work-laptop
            spec:
              role: satellite
              address: laptop.tailnet.ts.net
        ",
        )],
        expect: &[&[
            "manifests/other/laptop.yaml:4:9: Node/agent-work-laptop: Node/agent-work-laptop is declared twice; first at manifests/nodes.yaml:12:9",
            " 4 |   name: agent-work-laptop",
            "   |         ^^^^^^^^^^^^^^^^^",
        ]],
    },
    Case {
        name: "more than one Mesh",
        files: &[
            (
                "manifests/a-mesh.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Mesh
                metadata:
                  name: home
                spec: {}
            ",
            ),
            (
                "manifests/b-mesh.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Mesh
                metadata:
                  name: office
                spec: {}
            ",
            ),
        ],
        expect: &[&[
            "manifests/b-mesh.yaml:4:9: Mesh/office: only one Mesh is allowed; another is declared at manifests/a-mesh.yaml:4:9",
            " 4 |   name: office",
            "   |         ^^^^^^",
        ]],
    },
    // --- cross-references: at the line of the offending value -----------------
    Case {
        name: "placement.prefer names an unknown node",
        files: &[(
            "manifests/llm.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Capability
            metadata:
              name: llm_inference
            spec:
              provider: ollama
              placement:
                prefer: [agent-home-mac]
              endpoint:
                port: 11434
        ",
        )],
        expect: &[&[
            r#"manifests/llm.yaml:8:14: Capability/llm_inference: placement.prefer names unknown node "agent-home-mac""#,
            " 8 |     prefer: [agent-home-mac]",
            "   |              ^^^^^^^^^^^^^^",
            r#"   = help: did you mean "agent-home-mini"?"#,
        ]],
    },
    Case {
        name: "placement.fallback names an unknown node",
        files: &[(
            "manifests/llm.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Capability
            metadata:
              name: llm_inference
            spec:
              provider: ollama
              placement:
                prefer: [agent-home-mini]
                fallback:
                  - agent-work-laptp
              endpoint:
                port: 11434
        ",
        )],
        expect: &[&[
            r#"manifests/llm.yaml:10:9: Capability/llm_inference: placement.fallback names unknown node "agent-work-laptp""#,
            " 10 |       - agent-work-laptp",
            "    |         ^^^^^^^^^^^^^^^^",
            r#"    = help: did you mean "agent-work-laptop"?"#,
        ]],
    },
    Case {
        name: "Capability service names an unknown Service",
        files: &[
            ("manifests/ollama.yaml", OLLAMA),
            (
                "manifests/llm.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Capability
                metadata:
                  name: llm_inference
                spec:
                  provider: ollama
                  service: olama
                  placement: {prefer: [agent-home-mini]}
                  endpoint: {port: 11434}
            ",
            ),
        ],
        expect: &[&[
            r#"manifests/llm.yaml:7:12: Capability/llm_inference: service names unknown Service "olama""#,
            " 7 |   service: olama",
            "   |            ^^^^^",
            r#"   = help: did you mean "ollama"?"#,
        ]],
    },
    Case {
        name: "Service nodes names an unknown node",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini, agent-home-mac]
              command: [ollama, serve]
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:6:28: Service/ollama: nodes names unknown node "agent-home-mac""#,
            " 6 |   nodes: [agent-home-mini, agent-home-mac]",
            "   |                            ^^^^^^^^^^^^^^",
            r#"   = help: did you mean "agent-home-mini"?"#,
        ]],
    },
    Case {
        name: "Service with both nodes and nodeSelector",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              nodeSelector: {role: primary}
              command: [ollama, serve]
        ",
        )],
        expect: &[&[
            "manifests/t.yaml:6:3: Service/ollama: give either nodes or nodeSelector, not both",
            " 6 |   nodes: [agent-home-mini]",
            "   |   ^",
        ]],
    },
    Case {
        name: "SyncFolder paths key names an unknown node",
        files: &[(
            "manifests/sync.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: SyncFolder
            metadata:
              name: agent_data
            spec:
              paths:
                agent-home-mini: ~/agent_data
                agent-work-laptp: ~/agent_data
        ",
        )],
        expect: &[&[
            r#"manifests/sync.yaml:8:5: SyncFolder/agent_data: paths names unknown node "agent-work-laptp""#,
            " 8 |     agent-work-laptp: ~/agent_data",
            "   |     ^^^^^^^^^^^^^^^^",
            r#"   = help: did you mean "agent-work-laptop"?"#,
        ]],
    },
    Case {
        name: "SyncFolder relative path",
        files: &[(
            "manifests/sync.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: SyncFolder
            metadata:
              name: agent_data
            spec:
              paths:
                agent-home-mini: agent_data
                agent-work-laptop: /srv/agent_data
        ",
        )],
        expect: &[&[
            r#"manifests/sync.yaml:7:22: SyncFolder/agent_data: paths.agent-home-mini "agent_data" must be absolute or start with "~/""#,
            " 7 |     agent-home-mini: agent_data",
            "   |                      ^^^^^^^^^^",
        ]],
    },
    Case {
        name: "two SyncFolders with one folderId",
        files: &[
            ("manifests/sync.yaml", FOLDER),
            (
                "manifests/sync2.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: SyncFolder
                metadata:
                  name: backup
                spec:
                  folderId: agent_data
                  paths: {agent-home-mini: ~/backup, agent-work-laptop: ~/backup}
            ",
            ),
        ],
        expect: &[&[
            r#"manifests/sync2.yaml:6:13: SyncFolder/backup: folderId "agent_data" is also used by SyncFolder/agent_data at manifests/sync.yaml:4:9"#,
            " 6 |   folderId: agent_data",
            "   |             ^^^^^^^^^^",
        ]],
    },
    Case {
        name: "HandoffPolicy syncFolder names an unknown SyncFolder",
        files: &[
            ("manifests/sync.yaml", FOLDER),
            (
                "manifests/handoff.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: HandoffPolicy
                metadata:
                  name: conversations
                spec:
                  syncFolder: agent-data
            ",
            ),
        ],
        expect: &[&[
            r#"manifests/handoff.yaml:6:15: HandoffPolicy/conversations: syncFolder names unknown SyncFolder "agent-data""#,
            " 6 |   syncFolder: agent-data",
            "   |               ^^^^^^^^^^",
            r#"   = help: did you mean "agent_data"?"#,
        ]],
    },
    Case {
        name: "HandoffPolicy defaultTarget names an unknown node",
        files: &[
            ("manifests/sync.yaml", FOLDER),
            (
                "manifests/handoff.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: HandoffPolicy
                metadata:
                  name: conversations
                spec:
                  syncFolder: agent_data
                  defaultTarget: agent-home-mac
            ",
            ),
        ],
        expect: &[&[
            r#"manifests/handoff.yaml:7:18: HandoffPolicy/conversations: defaultTarget names unknown node "agent-home-mac""#,
            " 7 |   defaultTarget: agent-home-mac",
            "   |                  ^^^^^^^^^^^^^^",
            r#"   = help: did you mean "agent-home-mini"?"#,
        ]],
    },
    Case {
        name: "HandoffPolicy defaultTarget does not share the folder",
        files: &[
            (
                "manifests/desk.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Node
                metadata:
                  name: agent-desk
                spec:
                  role: satellite
                  address: agent-desk
            ",
            ),
            (
                "manifests/sync.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: SyncFolder
                metadata:
                  name: agent_data
                spec:
                  paths:
                    agent-home-mini: ~/agent_data
                    agent-desk: ~/agent_data
            ",
            ),
            (
                "manifests/handoff.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: HandoffPolicy
                metadata:
                  name: conversations
                spec:
                  syncFolder: agent_data
                  defaultTarget: agent-work-laptop
            ",
            ),
        ],
        expect: &[&[
            r#"manifests/handoff.yaml:7:18: HandoffPolicy/conversations: defaultTarget "agent-work-laptop" does not share SyncFolder/agent_data"#,
            " 7 |   defaultTarget: agent-work-laptop",
            "   |                  ^^^^^^^^^^^^^^^^^",
        ]],
    },
    Case {
        name: "sessionsDir escapes its folder",
        files: &[
            ("manifests/sync.yaml", FOLDER),
            (
                "manifests/handoff.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: HandoffPolicy
                metadata:
                  name: conversations
                spec:
                  syncFolder: agent_data
                  sessionsDir: sessions/../../x
            ",
            ),
        ],
        expect: &[&[
            r#"manifests/handoff.yaml:7:16: HandoffPolicy/conversations: sessionsDir "sessions/../../x" escapes its SyncFolder"#,
            " 7 |   sessionsDir: sessions/../../x",
            "   |                ^^^^^^^^^^^^^^^^",
        ]],
    },
    Case {
        name: "sessionsDir is an absolute path",
        files: &[
            ("manifests/sync.yaml", FOLDER),
            (
                "manifests/handoff.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: HandoffPolicy
                metadata:
                  name: conversations
                spec:
                  syncFolder: agent_data
                  sessionsDir: /tmp/sessions
            ",
            ),
        ],
        expect: &[&[
            r#"manifests/handoff.yaml:7:16: HandoffPolicy/conversations: sessionsDir "/tmp/sessions" must be relative to its SyncFolder"#,
            " 7 |   sessionsDir: /tmp/sessions",
            "   |                ^^^^^^^^^^^^^",
        ]],
    },
    // --- templates and tags ---------------------------------------------------
    Case {
        name: "unknown placeholder in a Service env value",
        files: &[(
            "manifests/t.yaml",
            r#"
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              command: [ollama, serve]
              env:
                OLLAMA_HOST: "{{node.adress}}:11434"
        "#,
        )],
        expect: &[&[
            "manifests/t.yaml:9:18: Service/ollama: env.OLLAMA_HOST uses unknown placeholder {{node.adress}} (known: {{node.name}}, {{node.address}})",
            r#" 9 |     OLLAMA_HOST: "{{node.adress}}:11434""#,
            "   |                  ^^^^^^^^^^^^^^^^^^^^^^^",
            "   = help: did you mean {{node.address}}?",
        ]],
    },
    Case {
        name: "unknown placeholder in a Capability clientEnv value",
        files: &[(
            "manifests/t.yaml",
            r#"
            apiVersion: agentmesh/v1alpha1
            kind: Capability
            metadata:
              name: llm_inference
            spec:
              provider: ollama
              placement: {prefer: [agent-home-mini]}
              endpoint: {port: 11434}
              clientEnv:
                OLLAMA_HOST: "http://{{hots}}:{{port}}"
        "#,
        )],
        expect: &[&[
            "manifests/t.yaml:10:18: Capability/llm_inference: clientEnv.OLLAMA_HOST uses unknown placeholder {{hots}} (known: {{host}}, {{port}}, {{path}}, {{node}}, {{api}}, {{apiKey}})",
            r#" 10 |     OLLAMA_HOST: "http://{{hots}}:{{port}}""#,
            "    |                  ^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "    = help: did you mean {{host}}?",
        ]],
    },
    Case {
        name: "allowTags entry without tag:",
        files: &[(
            "manifests/t.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Mesh
            metadata:
              name: home
            spec:
              auth:
                tailscaleIdentity:
                  enabled: true
                  allowTags: [tag:agent, agent]
        ",
        )],
        expect: &[&[
            r#"manifests/t.yaml:9:30: Mesh/home: allowTags entry "agent" must look like "tag:name""#,
            " 9 |       allowTags: [tag:agent, agent]",
            "   |                              ^^^^^",
        ]],
    },
    // --- many problems in one run, across files, in file and line order ----
    Case {
        name: "one run reports every problem across files, in file and line order",
        files: &[
            (
                "manifests/b.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Capability
                metadata:
                  name: llm_inference
                spec:
                  provider: ollama
                  placement:
                    prefer: [agent-home-mac]
                    fallback: [agent-work-laptp]
                  endpoint: {port: 0}
            ",
            ),
            (
                "manifests/a.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: Node
                metadata:
                  name: Bad_Name
                spec:
                  role: primary
                  address: x
                ---
                apiVersion: agentmesh/v1alpha1
                kind: Servce
                metadata:
                  name: s
                spec: {}
            ",
            ),
            (
                "manifests/c/handoff.yaml",
                "
                apiVersion: agentmesh/v1alpha1
                kind: HandoffPolicy
                metadata:
                  name: conversations
                spec:
                  syncFolder: nowhere
                  sessionsDir: ../x
            ",
            ),
        ],
        expect: &[
            &[
                r#"manifests/a.yaml:4:9: Node/Bad_Name: metadata.name "Bad_Name" may only hold lowercase letters, digits, '-' and '_'"#,
                " 4 |   name: Bad_Name",
                "   |         ^^^^^^^^",
            ],
            &[
                r#"manifests/a.yaml:10:7: Servce/s: unknown kind "Servce", expected one of Node, Service, Capability, SyncFolder, HandoffPolicy, Mesh"#,
                " 10 | kind: Servce",
                "    |       ^^^^^^",
                r#"    = help: did you mean "Service"?"#,
            ],
            &[
                "manifests/b.yaml:10:20: Capability/llm_inference: port 0 is out of range 1-65535",
                " 10 |   endpoint: {port: 0}",
                "    |                    ^",
            ],
            &[
                r#"manifests/c/handoff.yaml:6:15: HandoffPolicy/conversations: syncFolder names unknown SyncFolder "nowhere""#,
                " 6 |   syncFolder: nowhere",
                "   |               ^^^^^^^",
            ],
            &[
                r#"manifests/c/handoff.yaml:7:16: HandoffPolicy/conversations: sessionsDir "../x" escapes its SyncFolder"#,
                " 7 |   sessionsDir: ../x",
                "   |                ^^^^",
            ],
        ],
    },
    Case {
        name: "cross-reference errors in a valid document are all reported together",
        files: &[(
            "manifests/llm.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Capability
            metadata:
              name: llm_inference
            spec:
              provider: ollama
              service: olama
              placement:
                prefer: [agent-home-mac]
                fallback: [agent-work-laptp]
              endpoint: {port: 11434}
        ",
        )],
        expect: &[
            &[
                r#"manifests/llm.yaml:7:12: Capability/llm_inference: service names unknown Service "olama""#,
                " 7 |   service: olama",
                "   |            ^^^^^",
            ],
            &[
                r#"manifests/llm.yaml:9:14: Capability/llm_inference: placement.prefer names unknown node "agent-home-mac""#,
                " 9 |     prefer: [agent-home-mac]",
                "   |              ^^^^^^^^^^^^^^",
                r#"   = help: did you mean "agent-home-mini"?"#,
            ],
            &[
                r#"manifests/llm.yaml:10:16: Capability/llm_inference: placement.fallback names unknown node "agent-work-laptp""#,
                " 10 |     fallback: [agent-work-laptp]",
                "    |                ^^^^^^^^^^^^^^^^",
                r#"    = help: did you mean "agent-work-laptop"?"#,
            ],
        ],
    },
];

#[test]
fn the_base_set_of_the_table_is_valid() {
    let run = workspace(&[]).run(&["validate", "manifests"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "manifests: 2 objects in 1 file are valid\n");
    assert_eq!(run.stderr, "");
}

#[test]
fn every_rule_renders_its_exact_error_with_file_line_and_column() {
    assert!(CASES.len() >= 25, "the table holds {} cases", CASES.len());
    let mut failures = Vec::new();
    for case in CASES {
        let run = workspace(case.files).run(&["validate", "manifests"]);
        let expected = expected_stderr(case.expect);
        if run.code != 1 || run.stderr != expected || !run.stdout.is_empty() {
            failures.push(format!(
                "--- case: {}\nexit code: {} (expected 1)\n--- expected stderr:\n{expected}--- actual stderr:\n{}--- actual stdout:\n{}",
                case.name, run.code, run.stderr, run.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

// --- hostile input: refused quickly, with a clear message -----------------------

/// Runs `validate` on `text` as `manifests/hostile.yaml`, and checks it fails
/// within a generous bound (the point is "does not hang or exhaust memory", not
/// a benchmark).
fn validate_hostile(text: &str) -> Run {
    let workspace = workspace(&[]).file("manifests/hostile.yaml", text);
    let started = Instant::now();
    let run = workspace.run(&["validate", "manifests"]);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "validate took {elapsed:?}");
    assert_eq!(run.code, 1, "{run:?}");
    run
}

const REFUSED: &str = "document refused: it is nested deeper than 64 levels, or expands to more than \
                       20000 values or 1000 aliases (an alias bomb?)";

#[test]
fn an_alias_bomb_is_refused_quickly_with_a_clear_error() {
    // A billion laughs: nine levels of nine aliases each.
    let mut text = String::from(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: bomb\n  labels:\n    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    let levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in levels.windows(2) {
        let (previous, name) = (pair[0], pair[1]);
        let refs = vec![format!("*{previous}"); 9].join(", ");
        text.push_str(&format!("    {name}: &{name} [{refs}]\n"));
    }
    text.push_str("spec:\n  role: primary\n  address: bomb\n");
    let run = validate_hostile(&text);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("manifests/hostile.yaml:"), "stderr:\n{}", run.stderr);
    assert!(first.ends_with(&format!(": document 1: {REFUSED}")), "stderr:\n{}", run.stderr);
    assert!(run.stderr.ends_with("\nmanifests: 1 error\n"), "stderr:\n{}", run.stderr);
}

#[test]
fn many_aliases_of_one_small_value_are_refused() {
    let mut text =
        String::from("apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: x\n  labels:\n    a: &a x\n");
    for i in 0..1500 {
        text.push_str(&format!("    k{i}: *a\n"));
    }
    text.push_str("spec:\n  role: primary\n  address: x\n");
    let run = validate_hostile(&text);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert_eq!(first, format!("manifests/hostile.yaml:1007:12: document 1: {REFUSED}"), "stderr:\n{}", run.stderr);
}

#[test]
fn a_hundred_thousand_open_brackets_are_refused_quickly() {
    let run = validate_hostile(&"[".repeat(100_000));
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("manifests/hostile.yaml:1:"), "stderr: {first}");
    assert!(first.ends_with(": document 1: document refused: it is nested too deeply"), "stderr: {first}");
}

#[test]
fn deeply_nested_flow_mappings_are_refused_quickly() {
    let text = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: deep\n  labels:\n    x: {}{}\n",
        "{a: ".repeat(100_000),
        "}".repeat(100_000)
    );
    let run = validate_hostile(&text);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("manifests/hostile.yaml:6:"), "stderr: {first}");
    assert!(first.ends_with(&format!(": document 1: {REFUSED}")), "stderr: {first}");
}

#[test]
fn deeply_indented_block_mappings_are_refused_at_the_first_line_too_deep() {
    let mut text = String::from("apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: deep\nspec:\n");
    for depth in 1..=300 {
        text.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
    }
    let run = validate_hostile(&text);
    let first = run.stderr.lines().next().unwrap_or_default();
    // Line 69 holds key 64, the 65th level counting `spec`.
    assert_eq!(first, format!("manifests/hostile.yaml:69:129: document 1: {REFUSED}"), "stderr:\n{}", run.stderr);
}

// --- warnings -----------------------------------------------------------------

/// One valid input with a warning: the run exits 0, renders the warning with
/// its place on stderr, and counts it in the summary on stdout.
struct Warned {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    expect: &'static [&'static [&'static str]],
    stdout: &'static str,
}

const WARNINGS: &[Warned] = &[
    Warned {
        name: "a SyncFolder on a single node",
        files: &[(
            "manifests/sync.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: SyncFolder
            metadata:
              name: scratch
            spec:
              paths:
                agent-home-mini: ~/scratch
        ",
        )],
        expect: &[&[
            "manifests/sync.yaml:7:5: SyncFolder/scratch: warning: paths names a single node: nothing is shared",
            " 7 |     agent-home-mini: ~/scratch",
            "   |     ^",
        ]],
        stdout: "manifests: 3 objects in 2 files are valid, 1 warning\n",
    },
    Warned {
        name: "a placement on a node the Service skips, at the value",
        files: &[(
            "manifests/llm.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Service
            metadata:
              name: ollama
            spec:
              nodes: [agent-home-mini]
              command: [ollama, serve]
            ---
            apiVersion: agentmesh/v1alpha1
            kind: Capability
            metadata:
              name: llm_inference
            spec:
              provider: ollama
              service: ollama
              placement:
                prefer: [agent-home-mini]
                fallback: [agent-work-laptop]
              endpoint: {port: 11434}
        ",
        )],
        expect: &[&[
            "manifests/llm.yaml:18:16: Capability/llm_inference: warning: node \"agent-work-laptop\" is in the \
             placement but Service/ollama does not run there",
            " 18 |     fallback: [agent-work-laptop]",
            "    |                ^^^^^^^^^^^^^^^^^",
        ]],
        stdout: "manifests: 4 objects in 2 files are valid, 1 warning\n",
    },
    Warned {
        name: "a loopback endpoints host in the client env, at the value",
        files: &[(
            "manifests/vector-db.yaml",
            "
            apiVersion: agentmesh/v1alpha1
            kind: Capability
            metadata:
              name: vector_db
            spec:
              provider: http
              placement:
                prefer: [agent-home-mini]
              endpoint: {host: 127.0.0.1, port: 8001}
              clientEnv:
                CHROMA_HOST: \"{{host}}\"
                CHROMA_URL: \"{{api}}/cap/vector_db\"
        ",
        )],
        expect: &[&[
            "manifests/vector-db.yaml:11:18: Capability/vector_db: warning: clientEnv.CHROMA_HOST uses {{host}}, \
             which is 127.0.0.1: a client on another node cannot reach it there; use \"{{api}}/cap/vector_db\" \
             (through its own node's mesh API, with {{apiKey}})",
            " 11 |     CHROMA_HOST: \"{{host}}\"",
            "    |                  ^^^^^^^^^^",
        ]],
        stdout: "manifests: 3 objects in 2 files are valid, 1 warning\n",
    },
];

#[test]
fn every_warning_alone_keeps_exit_zero_and_renders_with_its_place() {
    let mut failures = Vec::new();
    for case in WARNINGS {
        let run = workspace(case.files).run(&["validate", "manifests"]);
        let expected = rendered(case.expect);
        if run.code != 0 || run.stderr != expected || run.stdout != case.stdout {
            failures.push(format!(
                "--- case: {}\nexit code: {} (expected 0)\n--- expected stderr:\n{expected}--- actual stderr:\n{}\
                 --- expected stdout:\n{}--- actual stdout:\n{}",
                case.name, run.code, run.stderr, case.stdout, run.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), WARNINGS.len(), failures.join("\n"));
}

#[test]
fn errors_and_warnings_are_both_counted_in_the_summary() {
    let run = workspace(&[(
        "manifests/sync.yaml",
        "
        apiVersion: agentmesh/v1alpha1
        kind: SyncFolder
        metadata:
          name: scratch
        spec:
          paths:
            agent-home-mini: scratch
    ",
    )])
    .run(&["validate", "manifests"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains(": SyncFolder/scratch: warning: paths names a single node"), "{}", run.stderr);
    assert!(run.stderr.ends_with("\nmanifests: 1 error, 1 warning\n"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn dedent_strips_the_table_indentation() {
    assert_eq!(dedent("\n    a:\n      b: 1\n    c: 2\n  "), "a:\n  b: 1\nc: 2\n");
}
