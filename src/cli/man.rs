//! `meshctl man --out DIR`: man pages generated from the command definition,
//! `meshctl.1` and one `meshctl-VERB.1` per verb (and per nested verb).

use std::path::PathBuf;

use anyhow::Context as _;

use super::Outcome;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Write the pages into this folder (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub(super) fn run(args: Args) -> anyhow::Result<Outcome> {
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    clap_mangen::generate_to(super::command(), out)
        .with_context(|| format!("cannot write the man pages into {}", out.display()))?;
    println!("wrote the man pages into {}", out.display());
    Ok(Outcome::Success)
}
