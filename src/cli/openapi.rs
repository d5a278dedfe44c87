//! `meshctl openapi [--out FILE] [--types-out FILE]`: the OpenAPI 3.1
//! description of the mesh API, as a daemon of this version serves it at
//! `/api/v1/openapi.json`, and the page's JSDoc types of its schemas.

use std::path::PathBuf;

use anyhow::Context;

use super::Outcome;
use crate::api::jsdoc::types_text;
use crate::api::openapi::document_text;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Write the document to FILE (e.g. docs/openapi.json) instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also write the status page's JSDoc types of the document's schemas to
    /// FILE (src/api/page/api-types.js).
    #[arg(long, value_name = "FILE")]
    types_out: Option<PathBuf>,
}

pub(super) fn run(args: Args) -> anyhow::Result<Outcome> {
    if let Some(path) = args.types_out {
        write(&path, &types_text())?;
    }
    let text = document_text();
    let Some(path) = args.out else {
        print!("{text}");
        return Ok(Outcome::Success);
    };
    write(&path, text)?;
    Ok(Outcome::Success)
}

/// Writes `text` to `path`, saying whether it changed.
fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        println!("unchanged {}", path.display());
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
