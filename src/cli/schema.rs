//! `meshctl schema [--out DIR]`.

use std::path::{Path, PathBuf};

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
    let written = write_schemas(&dir)?;
    for (name, _) in &files {
        let path = dir.join(name);
        let done = if written.contains(&path) { "wrote" } else { "unchanged" };
        println!("{done} {}", path.display());
    }
    Ok(Outcome::Success)
}

/// Writes each schema file into `dir` unless it holds that text already
/// (so an editor watching the folder sees no change); returns the files it wrote.
pub(super) fn write_schemas(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, text) in schema_files() {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            continue;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
