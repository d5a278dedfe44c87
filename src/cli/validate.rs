//! `meshctl validate [DIR]`: every problem of a manifests folder, and of this
//! node's identity against it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Outcome, Output};
use crate::diagnostic::Diagnostic;
use crate::identity::NodeEnv;
use crate::manifest::{self, loader};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The manifests folder (default: MESH_MANIFESTS, else ./manifests).
    dir: Option<PathBuf>,
    /// Print the diagnostics as text, or as JSON or YAML (for editors and CI).
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

/// The shape of `validate -o json|yaml`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    valid: bool,
    objects: usize,
    files: usize,
    error_count: usize,
    warning_count: usize,
    diagnostics: &'a [Diagnostic],
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = NodeEnv::load(env_file)?;
    let dir = args.dir.unwrap_or_else(|| env.manifests_dir());
    let (files, unreadable) = loader::load_dir(&dir)?;
    let mut validation = manifest::validate(&files, unreadable);
    if env.is_configured() {
        let identity = env.check_identity(&validation.set);
        validation.extend(identity, &files);
    }

    let error_count = validation.error_count();
    let warning_count = validation.diagnostics.len() - error_count;
    let objects = validation.set.len();
    match args.output {
        Output::Json | Output::Yaml => {
            let report = Report {
                valid: error_count == 0,
                objects,
                files: files.len(),
                error_count,
                warning_count,
                diagnostics: &validation.diagnostics,
            };
            super::output::print(args.output, &report, String::new)?;
        }
        Output::Text => {
            for diagnostic in &validation.diagnostics {
                eprintln!("{diagnostic}\n");
            }
            let warnings =
                if warning_count == 0 { String::new() } else { format!(", {}", count(warning_count, "warning")) };
            if error_count == 0 {
                let (objects, files) = (count(objects, "object"), count(files.len(), "file"));
                println!("{}: {objects} in {files} are valid{warnings}", dir.display());
            } else {
                eprintln!("{}: {}{warnings}", dir.display(), count(error_count, "error"));
            }
        }
    }
    Ok(if error_count == 0 { Outcome::Success } else { Outcome::Failure })
}

/// "1 error", "2 errors".
fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}
