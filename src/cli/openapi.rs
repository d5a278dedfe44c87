//! `meshctl openapi [--out FILE]`: the OpenAPI 3.1 description of the mesh
//! API, as a daemon of this version serves it at `/api/v1/openapi.json`.

use std::path::PathBuf;

use anyhow::Context;

use super::Outcome;
use crate::api::openapi::document_text;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Write the document to FILE (e.g. docs/openapi.json) instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(super) fn run(args: Args) -> anyhow::Result<Outcome> {
    let text = document_text();
    let Some(path) = args.out else {
        print!("{text}");
        return Ok(Outcome::Success);
    };
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        println!("unchanged {}", path.display());
        return Ok(Outcome::Success);
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(Outcome::Success)
}
