//! The `Examples:` section of each main verb's help (and man page), kept in
//! one table beside the command definition they are added to.

/// Each verb and the examples its `--help` ends with.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "validate",
        "  meshctl validate                  # the manifests folder of this node
  meshctl validate manifests/ -o json
  meshctl validate staged.yaml      # a file alone: a reference elsewhere warns
  cat m.yaml | meshctl validate - --strict",
    ),
    ("schema", "  meshctl schema --out schemas/"),
    ("openapi", "  meshctl openapi --out docs/openapi.json\n  meshctl openapi > openapi.json"),
    (
        "status",
        "  meshctl status
  meshctl status -o json
  meshctl status --on mini           # as the node mini sees the mesh",
    ),
    (
        "handoff",
        "  meshctl handoff chat-42 --to mini
  meshctl handoff chat-42 --to mini --timeout 2m",
    ),
    ("sessions", "  meshctl sessions\n  meshctl sessions -o json"),
    (
        "apply",
        "  meshctl apply                     # the manifests folder of this node
  meshctl apply -f manifests/ --dry-run
  meshctl apply -f mesh.yaml        # the file is the whole set: it replaces what runs",
    ),
    ("diff", "  meshctl diff\n  meshctl diff -f manifests/\n  cat mesh.yaml | meshctl diff -f -"),
    (
        "get",
        "  meshctl get svc                    # every node's Services
  meshctl get cap llm_inference -o yaml
  meshctl get nodes -w               # list again on every change",
    ),
    ("describe", "  meshctl describe svc/ollama\n  meshctl describe Node mini --on mini"),
    ("logs", "  meshctl logs service/ollama\n  meshctl logs svc/ollama -f"),
    (
        "events",
        "  meshctl events
  meshctl events -f                 # follow events and Service output
  meshctl events --send pause       # stop reconciling until --send resume",
    ),
    ("route", "  meshctl route llm_inference --data '{\"model\":\"llama3\",\"prompt\":\"hi\"}'"),
    ("doctor", "  meshctl doctor\n  meshctl doctor -o json"),
    ("env", "  meshctl env\n  eval \"$(meshctl env)\""),
    ("exec", "  meshctl exec -- python agent.py"),
    (
        "init",
        "  meshctl init --node laptop --role primary     # the first node
  meshctl init --node mini --join -              # paste the token of `meshctl join-token`",
    ),
    ("join-token", "  meshctl join-token                # then, on the other machine: meshctl init --join -"),
    ("install-service", "  meshctl install-service --dry-run\n  meshctl install-service"),
    ("service", "  meshctl service status\n  meshctl service logs -f"),
    (
        "ui",
        "  meshctl ui                        # this node's status page, signed in with a one-time ticket\n  meshctl ui --print                # print the URL instead (the ticket works once, for 60 s)",
    ),
    ("wake", "  meshctl wake mini                 # the magic packet of the Node mini's `wake`"),
    ("version", "  meshctl version\n  meshctl version -o json\n  meshctl version --client"),
    (
        "completion",
        "  meshctl completion bash > ~/.local/share/bash-completion/completions/meshctl
  meshctl completion zsh > \"${fpath[1]}/_meshctl\"
  meshctl completion fish > ~/.config/fish/completions/meshctl.fish",
    ),
];

/// `command` with each verb's examples as its `after_help`.
pub(super) fn add(mut command: clap::Command) -> clap::Command {
    for (verb, examples) in EXAMPLES {
        command = command.mut_subcommand(*verb, |sub| sub.after_help(format!("Examples:\n{examples}")));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_with_examples_exists_and_each_example_parses() {
        let command = super::super::command();
        for (verb, examples) in EXAMPLES {
            let sub = command.find_subcommand(verb).unwrap_or_else(|| panic!("no verb {verb}"));
            assert!(sub.get_after_help().is_some(), "{verb}");
            for line in examples.lines().map(str::trim).filter(|line| line.starts_with("meshctl ")) {
                let words: Vec<&str> = line.split("  #").next().unwrap_or(line).split_whitespace().collect();
                let words: Vec<&str> = words
                    .into_iter()
                    .take_while(|word| !word.starts_with('>'))
                    .map(|word| word.trim_matches('\''))
                    .collect();
                command.clone().try_get_matches_from(&words).unwrap_or_else(|error| panic!("{line}: {error}"));
            }
        }
    }
}
