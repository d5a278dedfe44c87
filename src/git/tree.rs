//! The files of one commit under one folder, read from the repository's
//! objects (`git ls-tree`, `git cat-file --batch`): what was committed, whatever
//! a work tree holds.

use super::command::{Git, GitError};

/// One file of a commit's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TreeFile {
    /// From the repository's root, `/`-separated.
    pub path: String,
    pub kind: FileKind,
    /// The blob's id.
    pub blob: String,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Regular,
    /// A symbolic link: its blob holds the target, never followed here.
    Symlink,
}

/// What `folder` (from the root, `/`-separated; empty for the root) is in
/// `commit`: `Some("tree")` for a folder, `Some("blob")` for a file, `None`
/// when the commit has no such path.
pub(crate) fn object_type(git: &Git, commit: &str, folder: &str) -> Result<Option<String>, GitError> {
    let object = match folder {
        "" => format!("{commit}^{{tree}}"),
        folder => format!("{commit}:{folder}"),
    };
    match git.run(&["cat-file", "-t", &object]) {
        Ok(kind) => Ok(Some(kind.trim_end().to_owned())),
        Err(error) if error.exited_with(128) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Every file under `folder` in `commit`, recursively, in Git's order.
/// Submodules (a commit inside the tree) are left out.
pub(crate) fn files(git: &Git, commit: &str, folder: &str) -> Result<Vec<TreeFile>, GitError> {
    let mut args = vec!["--literal-pathspecs", "ls-tree", "-r", "-z", "--long", "--full-tree", commit];
    if !folder.is_empty() {
        args.extend(["--", folder]);
    }
    Ok(parse_ls_tree(&git.run(&args)?))
}

/// The content of each blob, in the order given.
pub(crate) fn read_blobs(git: &Git, blobs: &[&str]) -> Result<Vec<Vec<u8>>, GitError> {
    if blobs.is_empty() {
        return Ok(Vec::new());
    }
    let input = blobs.iter().flat_map(|blob| [blob.as_bytes(), b"\n"]).flatten().copied().collect();
    let output = git.run_with_input(&["cat-file", "--batch"], Some(input))?;
    parse_batch(&output, blobs.len()).ok_or_else(|| git.unexpected("cat-file --batch", "its output was cut short"))
}

/// `git ls-tree -r -z --long` output: `<mode> <type> <id> <size>\t<path>\0`.
fn parse_ls_tree(output: &str) -> Vec<TreeFile> {
    output
        .split('\0')
        .filter_map(|entry| {
            let (meta, path) = entry.split_once('\t')?;
            let mut fields = meta.split_whitespace();
            let (mode, kind, blob, size) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let kind = match (mode, kind) {
                ("120000", "blob") => FileKind::Symlink,
                (_, "blob") => FileKind::Regular,
                _ => return None,
            };
            Some(TreeFile { path: path.to_owned(), kind, blob: blob.to_owned(), size: size.parse().ok()? })
        })
        .collect()
}

/// `git cat-file --batch` output for `count` objects: for each, a header
/// `<id> <type> <size>\n`, the content and `\n`. `None` when it is short.
fn parse_batch(mut output: &[u8], count: usize) -> Option<Vec<Vec<u8>>> {
    let mut contents = Vec::with_capacity(count);
    for _ in 0..count {
        let end = output.iter().position(|&byte| byte == b'\n')?;
        let header = std::str::from_utf8(&output[..end]).ok()?;
        let size: usize = header.rsplit(' ').next()?.parse().ok()?;
        let rest = &output[end + 1..];
        contents.push(rest.get(..size)?.to_vec());
        output = rest.get(size + 1..)?;
    }
    Some(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_tree_entries_are_files_and_links_not_submodules() {
        let output = "100644 blob 1111111111111111111111111111111111111111      11\tmanifests/node.yaml\0\
                      100755 blob 2222222222222222222222222222222222222222       3\tmanifests/run me.yml\0\
                      120000 blob 3333333333333333333333333333333333333333      12\tmanifests/link.yaml\0\
                      160000 commit 4444444444444444444444444444444444444444       -\tmanifests/vendor\0";
        let files = parse_ls_tree(output);
        let shown: Vec<_> = files.iter().map(|file| (file.path.as_str(), file.kind, file.size)).collect();
        assert_eq!(
            shown,
            [
                ("manifests/node.yaml", FileKind::Regular, 11),
                ("manifests/run me.yml", FileKind::Regular, 3),
                ("manifests/link.yaml", FileKind::Symlink, 12)
            ]
        );
        assert_eq!(files[0].blob, "1".repeat(40));
        assert!(parse_ls_tree("").is_empty());
    }

    #[test]
    fn batch_output_is_split_by_the_sizes_it_announces() {
        let output = b"aaaa blob 5\nab\ncd\nbbbb blob 0\n\ncccc blob 2\n\0\n\n";
        let contents = parse_batch(output, 3).expect("three objects");
        assert_eq!(contents, [b"ab\ncd".to_vec(), Vec::new(), b"\0\n".to_vec()]);
        assert_eq!(parse_batch(b"aaaa blob 5\nab", 1), None, "cut short");
        assert_eq!(parse_batch(b"aaaa missing\n", 1), None, "not an object");
    }
}
