//! `meshctl completion bash|zsh|fish`: the shell's completion script on
//! standard output, generated from the same command definition clap parses.

use clap::ValueEnum;

use super::Outcome;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    shell: Shell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub(super) fn run(args: Args) -> anyhow::Result<Outcome> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = super::command();
    clap_complete::generate(shell, &mut command, "meshctl", &mut std::io::stdout());
    Ok(Outcome::Success)
}
