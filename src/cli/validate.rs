//! `meshctl validate [PATH]` / `-f PATH…`: every problem of a manifests folder
//! and of this node's identity against it, or of files and standard input
//! checked on their own (a pre-commit hook's staged files).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Outcome, Output};
use crate::diagnostic::Diagnostic;
use crate::identity::NodeEnv;
use crate::manifest::{self, Scope, loader};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A manifests folder, one file, or `-` for standard input (default:
    /// MESH_MANIFESTS, else ./manifests).
    #[arg(value_name = "PATH", conflicts_with = "filename")]
    path: Option<PathBuf>,
    /// The same as PATH, and may be given more than once; not with PATH.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    filename: Vec<PathBuf>,
    /// A reference to an object in none of the given files is an error. Without
    /// it, that is a warning when files or standard input are given (the rest
    /// of the set is elsewhere); a folder is always checked as a whole set.
    #[arg(long)]
    strict: bool,
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
    let paths = match (args.path, args.filename) {
        (Some(path), _) => vec![path],
        (None, paths) if paths.is_empty() => vec![env.manifests_dir()],
        (None, paths) => paths,
    };
    let loaded = loader::load_paths(&paths)?;
    let whole = loaded.only_folders();
    let scope = scope(whole, args.strict);
    let label = loaded.label();
    let files = loaded.files;
    let mut validation = manifest::validate_as(&files, loaded.problems, scope);
    // This node's Node may be in a file not given: only a folder is checked against it.
    if whole && env.is_configured() {
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
                println!("{label}: {objects} in {files} are valid{warnings}");
            } else {
                eprintln!("{label}: {}{warnings}", count(error_count, "error"));
            }
        }
    }
    Ok(if error_count == 0 { Outcome::Success } else { Outcome::Failure })
}

/// How references outside the given files are judged: folders are whole
/// sets; files and standard input are parts of one, unless `--strict`.
fn scope(only_folders: bool, strict: bool) -> Scope {
    if only_folders || strict { Scope::Whole } else { Scope::Part }
}

/// "1 error", "2 errors".
fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_without_strict_are_checked_as_part_of_a_set() {
        // (only folders given, --strict) -> scope
        let cases = [
            ((true, false), Scope::Whole),
            ((true, true), Scope::Whole),
            ((false, false), Scope::Part),
            ((false, true), Scope::Whole),
        ];
        for ((only_folders, strict), expected) in cases {
            assert_eq!(scope(only_folders, strict), expected, "folders {only_folders}, strict {strict}");
        }
    }
}
