//! `meshctl schema [--out DIR]`.

use std::path::PathBuf;

use anyhow::Context;

use super::Outcome;
use crate::manifest::schema::{ANY_SCHEMA_FILE, schema_files};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Write one file per kind and manifest.schema.json into DIR; without it,
    /// print manifest.schema.json.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(super) fn run(args: Args) -> anyhow::Result<Outcome> {
    let files = schema_files();
    let Some(dir) = args.out else {
        let (_, any) = files.iter().find(|(name, _)| name == ANY_SCHEMA_FILE).expect("the any-document schema exists");
        print!("{any}");
        return Ok(Outcome::Success);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(Outcome::Success)
}
