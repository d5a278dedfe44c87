//! Where a Service's program (`command[0]`) is found, looked up on a PATH as
//! `execvp` does: `meshctl doctor` checks it on the PATH the service manager
//! gives the daemon, and a Service that cannot start names the missing
//! program instead of "No such file or directory (os error 2)".

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

/// Where `program` is found: itself when it names a file (it holds a `/`;
/// relative to `working_dir`), else the first folder of `path` holding an
/// executable of that name. `is_executable` is asked about each candidate, so
/// the lookup itself is pure.
pub fn find(
    program: &str,
    path: &OsStr,
    working_dir: Option<&Path>,
    is_executable: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let file = match working_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        return is_executable(&file).then_some(file);
    }
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// Whether `file` is a file someone may execute (as the kernel will check).
pub fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// What stopped a program from starting, as the Service's status says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Missing {
    /// A bare name found in no folder of the PATH.
    NotOnPath { program: String, path: String },
    /// A path to a file that is not there (or not executable).
    NoSuchFile(String),
    /// The Service's working folder does not exist.
    NoWorkingDir(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::NotOnPath { program, path } => write!(f, "`{program}` not found on PATH ({path})"),
            Missing::NoSuchFile(program) => write!(f, "`{program}` does not exist or is not executable"),
            Missing::NoWorkingDir(dir) => write!(f, "the working folder {dir} does not exist"),
        }
    }
}

/// Why spawning failed with "not found", in the user's terms; None for any
/// other error. `program_found` and `dir_exists` are what the file system
/// says now.
pub fn explain_not_found(
    error: &io::Error,
    program: &str,
    path: &OsStr,
    working_dir: Option<&Path>,
    program_found: bool,
    dir_exists: bool,
) -> Option<Missing> {
    if error.kind() != io::ErrorKind::NotFound {
        return None;
    }
    if let Some(dir) = working_dir.filter(|_| !dir_exists) {
        return Some(Missing::NoWorkingDir(dir.display().to_string()));
    }
    match (program_found, program.contains('/')) {
        (true, _) => None,
        (false, true) => Some(Missing::NoSuchFile(program.to_owned())),
        (false, false) => {
            Some(Missing::NotOnPath { program: program.to_owned(), path: path.to_string_lossy().into_owned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_the_first_executable_along_the_path_and_a_path_is_itself() {
        let present = ["/usr/local/bin/ollama", "/opt/homebrew/bin/ollama", "/srv/node/run.sh", "/bin/sh"];
        let exists = |file: &Path| present.iter().any(|p| Path::new(p) == file);
        let table: [(&str, &str, Option<&str>, Option<&str>); 8] = [
            ("ollama", "/usr/bin:/usr/local/bin:/opt/homebrew/bin", None, Some("/usr/local/bin/ollama")),
            ("ollama", "/opt/homebrew/bin:/usr/local/bin", None, Some("/opt/homebrew/bin/ollama")),
            ("ollama", "/usr/bin:/bin:/usr/sbin:/sbin", None, None),
            ("ollama", "", None, None),
            ("./run.sh", "/bin", Some("/srv/node"), Some("/srv/node/./run.sh")),
            ("/bin/sh", "", Some("/srv"), Some("/bin/sh")),
            ("/usr/bin/ollama", "/usr/local/bin", None, None),
            ("", "/bin", None, None),
        ];
        for (program, path, dir, expected) in table {
            let found = find(program, OsStr::new(path), dir.map(Path::new), exists);
            assert_eq!(found.as_deref(), expected.map(Path::new), "{program} on {path}");
        }
    }

    #[test]
    fn not_found_names_the_program_the_file_or_the_folder() {
        let not_found = io::Error::from(io::ErrorKind::NotFound);
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let path = OsStr::new("/usr/bin:/bin");
        let dir = Some(Path::new("/srv/gone"));
        let table = [
            (&not_found, "ollama", None, false, true, Some("`ollama` not found on PATH (/usr/bin:/bin)")),
            (&not_found, "/opt/ollama", None, false, true, Some("`/opt/ollama` does not exist or is not executable")),
            (&not_found, "ollama", dir, true, false, Some("the working folder /srv/gone does not exist")),
            (&not_found, "ollama", None, true, true, None),
            (&denied, "ollama", None, false, true, None),
        ];
        for (error, program, dir, found, dir_exists, expected) in table {
            let missing = explain_not_found(error, program, path, dir, found, dir_exists);
            assert_eq!(missing.map(|m| m.to_string()).as_deref(), expected, "{program} {error}");
        }
    }
}
