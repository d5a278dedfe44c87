//! The only code that reads manifest files: every `*.yaml` / `*.yml` under a
//! folder, recursively, in a stable order. Hidden files and folders (`.git`) are
//! skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parse::SourceFile;
use super::values::Pos;
use crate::diagnostic::Diagnostic;

/// Files larger than this are refused unread: no manifest comes near it.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("manifests folder {0} does not exist")]
    NotFound(String),
    #[error("{0} is not a folder")]
    NotAFolder(String),
    #[error("cannot read {path}")]
    Io { path: String, source: std::io::Error },
}

/// The manifest files under `dir`, with a diagnostic for each one that could not
/// be read as text. Paths are shown joined to `dir` as given.
pub fn load_dir(dir: &Path) -> Result<(Vec<SourceFile>, Vec<Diagnostic>), LoadError> {
    let shown = dir.display().to_string();
    let metadata = std::fs::metadata(dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound(shown.clone()),
        _ => LoadError::Io { path: shown.clone(), source },
    })?;
    if !metadata.is_dir() {
        return Err(LoadError::NotAFolder(shown));
    }
    let mut paths = Vec::new();
    collect_yaml_files(dir, &mut paths)?;
    paths.sort();

    let mut files = Vec::with_capacity(paths.len());
    let mut diagnostics = Vec::new();
    for path in paths {
        let shown: Arc<str> = path.display().to_string().into();
        let unreadable = |message: String| Diagnostic::error(&shown, Pos::default(), "file", message);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_FILE_BYTES => {
                diagnostics.push(unreadable(format!(
                    "file is {} bytes, more than the {MAX_FILE_BYTES} a manifest file may hold",
                    meta.len()
                )));
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                diagnostics.push(unreadable(format!("cannot read: {error}")));
                continue;
            }
        }
        match std::fs::read(&path).map(String::from_utf8) {
            Ok(Ok(text)) => files.push(SourceFile { path: shown, text }),
            Ok(Err(_)) => diagnostics.push(unreadable("file is not UTF-8 text".into())),
            Err(error) => diagnostics.push(unreadable(format!("cannot read: {error}"))),
        }
    }
    Ok((files, diagnostics))
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io_error = |source| LoadError::Io { path: dir.display().to_string(), source };
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = std::fs::metadata(&path).map(|m| m.file_type());
        match file_type {
            Ok(kind) if kind.is_dir() => collect_yaml_files(&path, out)?,
            Ok(kind) if kind.is_file() && is_yaml(&path) => out.push(path),
            _ => {}
        }
    }
    Ok(())
}

fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}
