//! The only code that reads manifest files: every `*.yaml` / `*.yml` under a
//! folder, recursively, in a stable order. Hidden files and folders (`.git`) are
//! skipped, and nothing outside the folder is ever read: a symlink that leads out
//! of it (or nowhere, or round in a loop) is skipped with a warning naming it.
//! The CLI also names single files, read where they are (the user chose them),
//! and standard input (`-`).

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::parse::SourceFile;
use crate::diagnostic::{Diagnostic, Pos};

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
    #[error("{path}: {message}")]
    Unreadable { path: String, message: String },
}

/// The name standard input goes by in diagnostics and in a bundle.
pub const STDIN: &str = "<stdin>";

/// What a manifests argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Every manifest file under it: a whole set.
    Folder(PathBuf),
    /// One file, whatever its name ends with: the user named it.
    File(PathBuf),
    /// Standard input, one stream of `---`-separated documents.
    Stdin,
}

/// The files of `paths` (`-` is standard input), in the order given; each
/// file is read once however often it is named (itself or in a folder given).
#[derive(Debug)]
pub struct Loaded {
    pub inputs: Vec<Input>,
    pub files: Vec<SourceFile>,
    /// Problems found while reading, reported with the rest.
    pub problems: Vec<Diagnostic>,
}

impl Loaded {
    /// Whether only folders were given: then the files are whole sets, and a
    /// reference to an object in none of them is an error, not a warning.
    pub fn only_folders(&self) -> bool {
        self.inputs.iter().all(|input| matches!(input, Input::Folder(_)))
    }

    /// The inputs as the user named them, for summaries: "manifests", "a.yaml, <stdin>".
    pub fn label(&self) -> String {
        let name = |input: &Input| match input {
            Input::Folder(path) | Input::File(path) => path.display().to_string(),
            Input::Stdin => STDIN.to_owned(),
        };
        self.inputs.iter().map(name).collect::<Vec<_>>().join(", ")
    }
}

/// Reads every path of `paths`: a folder as [`load_dir`] does, a file as it
/// is, `-` from standard input (at most once).
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded { inputs: Vec::new(), files: Vec::new(), problems: Vec::new() };
    // The files read, by real path: only when there is more than one input.
    let mut read = (paths.len() > 1).then(BTreeSet::new);
    let mut first_read = |path: &Path| {
        read.as_mut().is_none_or(|read| read.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())))
    };
    for path in paths {
        let input = classify(path)?;
        if loaded.inputs.contains(&input) {
            continue;
        }
        match &input {
            Input::Folder(dir) => {
                let (files, problems) = load_dir(dir)?;
                loaded.files.extend(files.into_iter().filter(|file| first_read(Path::new(&*file.path))));
                loaded.problems.extend(problems);
            }
            Input::File(file) if !first_read(file) => {}
            Input::File(file) => {
                let shown = file.display().to_string();
                let text =
                    read_named(file).map_err(|message| LoadError::Unreadable { path: shown.clone(), message })?;
                loaded.files.push(SourceFile { path: shown.into(), text });
            }
            Input::Stdin => {
                let text = read_limited(std::io::stdin().lock(), 0)
                    .map_err(|message| LoadError::Unreadable { path: STDIN.to_owned(), message })?;
                loaded.files.push(SourceFile { path: STDIN.into(), text });
            }
        }
        loaded.inputs.push(input);
    }
    Ok(loaded)
}

/// Whether `path` is standard input, a folder or a file; a path that does not
/// exist is refused here, naming it (as a folder unless it names a YAML file).
fn classify(path: &Path) -> Result<Input, LoadError> {
    if path.as_os_str() == "-" {
        return Ok(Input::Stdin);
    }
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Ok(Input::Folder(path.to_owned())),
        Ok(_) => Ok(Input::File(path.to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && is_yaml(path) => {
            Err(LoadError::Unreadable { path: shown, message: "no such file".into() })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(LoadError::NotFound(shown)),
        Err(source) => Err(LoadError::Io { path: shown, source }),
    }
}

/// The text of a file the user named (a symlink is followed: they chose it).
fn read_named(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("cannot read: {error}"))?;
    let size = file.metadata().map_err(|error| format!("cannot read: {error}"))?.len();
    read_limited(file, size)
}

/// The manifest files under `dir`, with a diagnostic for each one that could not
/// be read as text and a warning for each symlink that was not followed. Paths
/// are shown joined to `dir` as given.
///
/// `dir` itself may be a symlink. Below it, a symlink to a manifest file inside
/// the folder is read under the link's name, unless that file is read anyway; a
/// symlink to a folder is never walked (a folder inside is read where it is), so
/// no loop can be entered.
pub fn load_dir(dir: &Path) -> Result<(Vec<SourceFile>, Vec<Diagnostic>), LoadError> {
    let shown = dir.display().to_string();
    let io_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound(shown.clone()),
        _ => LoadError::Io { path: shown.clone(), source },
    };
    let metadata = std::fs::metadata(dir).map_err(io_error)?;
    if !metadata.is_dir() {
        return Err(LoadError::NotAFolder(shown));
    }
    let root = std::fs::canonicalize(dir).map_err(io_error)?;
    let mut walk = Walk { dir, root: &root, found: Vec::new(), skipped: Vec::new() };
    walk.folder(dir)?;
    let Walk { found, mut skipped, .. } = walk;

    let mut files = Vec::with_capacity(found.len());
    for Found { shown, real, .. } in readable(found) {
        let shown: Arc<str> = shown.display().to_string().into();
        match read_text(&real) {
            Ok(text) => files.push(SourceFile { path: shown, text }),
            Err(message) => skipped.push(Diagnostic::error(&shown, Pos::default(), "file", message)),
        }
    }
    Ok((files, skipped))
}

/// A manifest file found by the walk.
struct Found {
    /// The path to show: the file's, or the link's.
    shown: PathBuf,
    /// The file to read, inside the folder with every symlink resolved.
    real: PathBuf,
    through_link: bool,
}

/// The files to read, by shown path: each real file once, a link only when its
/// target is not read under its own name or an earlier link's.
fn readable(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by(|a, b| a.shown.cmp(&b.shown));
    let own: BTreeSet<PathBuf> = found.iter().filter(|f| !f.through_link).map(|f| f.real.clone()).collect();
    let mut linked = BTreeSet::new();
    found.retain(|f| !f.through_link || (!own.contains(&f.real) && linked.insert(f.real.clone())));
    found
}

struct Walk<'a> {
    /// The folder as given, which shown paths start with.
    dir: &'a Path,
    /// The folder with every symlink resolved: containment is checked against it.
    root: &'a Path,
    found: Vec<Found>,
    skipped: Vec<Diagnostic>,
}

impl Walk<'_> {
    fn folder(&mut self, folder: &Path) -> Result<(), LoadError> {
        let io_error = |source| LoadError::Io { path: folder.display().to_string(), source };
        for entry in std::fs::read_dir(folder).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => self.folder(&path)?,
                Ok(kind) if kind.is_file() && is_yaml(&path) => {
                    // Only real folders are walked, so the path inside `root` is
                    // the file's own.
                    let real = path.strip_prefix(self.dir).map_or_else(|_| path.clone(), |rest| self.root.join(rest));
                    self.found.push(Found { shown: path, real, through_link: false });
                }
                Ok(kind) if kind.is_symlink() => self.symlink(path),
                _ => {}
            }
        }
        Ok(())
    }

    fn symlink(&mut self, link: PathBuf) {
        let target = match std::fs::canonicalize(&link) {
            Ok(target) => target,
            Err(error) => {
                let why = if error.raw_os_error() == Some(libc::ELOOP) {
                    "it is a loop".to_owned()
                } else {
                    format!("its target cannot be reached ({})", error.kind())
                };
                return self.warn(&link, format!("not followed: {why}"));
            }
        };
        let is_folder = std::fs::metadata(&target).is_ok_and(|m| m.is_dir());
        if !target.starts_with(self.root) {
            if is_folder || is_yaml(&link) {
                self.warn(
                    &link,
                    format!("not followed: it leads outside the manifests folder, to {}", target.display()),
                );
            }
        } else if is_folder {
            self.warn(
                &link,
                "not followed: it leads to a folder inside the manifests folder, which is read where it is".into(),
            );
        } else if is_yaml(&link) {
            self.found.push(Found { shown: link, real: target, through_link: true });
        }
    }

    fn warn(&mut self, link: &Path, message: String) {
        let shown: Arc<str> = link.display().to_string().into();
        self.skipped.push(Diagnostic::warning(&shown, Pos::default(), "symlink", message));
    }
}

/// The text of `path`, read without following a symlink in its last part (the
/// walk checked where it leads; one swapped in since is refused), or why not.
fn read_text(path: &Path) -> Result<String, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|error| format!("cannot read: {error}"))?;
    let size = file.metadata().map_err(|error| format!("cannot read: {error}"))?.len();
    read_limited(file, size)
}

/// The text of `reader`, `size` bytes expected, refused past the size a
/// manifest file may hold (standard input has no size: it is read up to it).
fn read_limited(reader: impl Read, size: u64) -> Result<String, String> {
    if let Some(refused) = too_large(size) {
        return Err(refused);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    reader.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|error| format!("cannot read: {error}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("more than the {MAX_FILE_BYTES} bytes a manifest file may hold"));
    }
    String::from_utf8(bytes).map_err(|_| "file is not UTF-8 text".to_owned())
}

/// Whether `path` names a manifest file (`*.yaml`, `*.yml`); the Git source
/// reads a commit's files by the same rule.
pub fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Why a file of `size` bytes is refused unread, if it is: the same limit for
/// a folder and a commit.
pub fn too_large(size: u64) -> Option<String> {
    (size > MAX_FILE_BYTES)
        .then(|| format!("file is {size} bytes, more than the {MAX_FILE_BYTES} a manifest file may hold"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_read_once_under_its_own_name_else_under_its_first_link() {
        let found = |shown: &str, real: &str, through_link: bool| Found {
            shown: PathBuf::from(shown),
            real: PathBuf::from(real),
            through_link,
        };
        let kept = readable(vec![
            found("m/z.yaml", "/r/z.yaml", false),
            found("m/a-link.yaml", "/r/z.yaml", true),
            found("m/b-link.yaml", "/r/.hidden/v.yaml", true),
            found("m/c-link.yaml", "/r/.hidden/v.yaml", true),
            found("m/d.yaml", "/r/d.yaml", false),
        ]);
        let shown: Vec<&str> = kept.iter().map(|f| f.shown.to_str().expect("UTF-8")).collect();
        assert_eq!(shown, ["m/b-link.yaml", "m/d.yaml", "m/z.yaml"]);
    }
}
