//! Reads a crate's source tree into its file-level import graph: which file's
//! code names which other file's module.
//!
//! An import is a `use` of a `crate::`, `super::` or `self::` path (or of a
//! child module by name), or such a path written inline. Comments, string
//! literals and `#[cfg(test)]` items do not count: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path inside the crate: `["mesh", "router"]` for `src/mesh/router.rs`.
pub(super) type ModulePath = Vec<String>;

/// One file of the crate: its module path and its text.
pub(super) struct SourceFile {
    pub module: ModulePath,
    /// Shown in failures, relative to the crate.
    pub shown: String,
    pub text: String,
}

/// Which files each file imports, by module path, each with the line of its
/// first import.
pub(super) type Graph = BTreeMap<ModulePath, BTreeMap<ModulePath, usize>>;

/// Every `.rs` file under `src` except the binary's `main.rs`, which imports
/// the library by its crate name.
pub(super) fn read_tree(src: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            if relative == Path::new("main.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            files.push(source_file(&relative.to_string_lossy(), text));
        }
    }
    files.sort_by(|a, b| a.module.cmp(&b.module));
    files
}

/// A file at `relative` (to `src/`, with `/` separators) holding `text`.
pub(super) fn source_file(relative: &str, text: String) -> SourceFile {
    let stem = relative.trim_end_matches(".rs");
    let mut module: ModulePath = stem.split('/').map(str::to_owned).collect();
    if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
        module.pop();
    }
    SourceFile { module, shown: format!("src/{relative}"), text }
}

/// The import graph of `files`, between files only (a file's imports of itself
/// and of the crate root are left out).
pub(super) fn import_graph(files: &[SourceFile]) -> Graph {
    let modules: BTreeSet<&ModulePath> = files.iter().map(|file| &file.module).collect();
    let mut graph = Graph::new();
    for file in files {
        let imports = graph.entry(file.module.clone()).or_default();
        let code = without_tests(&blank_comments_and_literals(&file.text));
        for (path, line) in paths_named(&code) {
            let Some(absolute) = resolve(file, &path, &modules) else { continue };
            let Some(target) = longest_module_prefix(&absolute, &modules) else { continue };
            if target != file.module && !target.is_empty() {
                imports.entry(target).or_insert(line);
            }
        }
    }
    graph
}

/// `path` as a path from the crate root, if it names the crate at all.
fn resolve(file: &SourceFile, path: &[String], modules: &BTreeSet<&ModulePath>) -> Option<ModulePath> {
    let (first, rest) = path.split_first()?;
    let mut base = file.module.clone();
    let mut segments = rest;
    match first.as_str() {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            base.pop();
            while let Some((next, tail)) = segments.split_first() {
                if next != "super" {
                    break;
                }
                base.pop();
                segments = tail;
            }
        }
        child => {
            // A child module used by name (`use queue::WorkQueue;` beside `mod queue;`).
            let mut candidate = base.clone();
            candidate.push(child.to_owned());
            if !modules.contains(&candidate) {
                return None;
            }
            segments = path;
        }
    }
    base.extend(segments.iter().filter(|segment| *segment != "self").cloned());
    Some(base)
}

fn longest_module_prefix(path: &[String], modules: &BTreeSet<&ModulePath>) -> Option<ModulePath> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|prefix| modules.contains(prefix))
}

/// Each path a `use` item names (its tree expanded) and each inline
/// `crate::`/`super::`/`self::` path, with its line.
fn paths_named(code: &str) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let (mut at, mut line, mut counted_to) = (0, 1, 0);
    while at < code.len() {
        let rest = &code[at..];
        line += code[counted_to..at].matches('\n').count();
        counted_to = at;
        let starts_word = at == 0 || !is_ident_byte(bytes[at - 1]) && bytes[at - 1] != b'$' && bytes[at - 1] != b':';
        if starts_word && rest.starts_with("use") && rest[3..].starts_with(|c: char| c.is_whitespace() || c == '{') {
            let end = rest.find(';').unwrap_or(rest.len());
            // Spaces go, except around `as`, which keeps an alias apart from its name.
            let tree: String =
                rest[3..end].split_whitespace().map(|token| if token == "as" { " as " } else { token }).collect();
            for path in expand_use_tree(&tree) {
                found.push((path, line));
            }
            at += end.max(1);
            continue;
        }
        if starts_word && ["crate::", "super::", "self::"].iter().any(|root| rest.starts_with(root)) {
            let length = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            let path: Vec<String> =
                rest[..length].split("::").filter(|segment| !segment.is_empty()).map(str::to_owned).collect();
            found.push((path, line));
            at += length;
            continue;
        }
        at += rest.chars().next().map_or(1, char::len_utf8);
    }
    found
}

fn is_ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// `a::{b, c::{d, e as f}}` as `a::b`, `a::c::d`, `a::c::e` (spaces only around `as`).
pub(super) fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    expand_into(&[], tree, &mut paths);
    paths
}

fn expand_into(prefix: &[String], tree: &str, paths: &mut Vec<Vec<String>>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let mut path = prefix.to_vec();
        path.extend(tree[..open].split("::").filter(|s| !s.is_empty()).map(str::to_owned));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for item in split_top_level(inner) {
            expand_into(&path, item, paths);
        }
        return;
    }
    let without_alias = tree.split(" as ").next().unwrap_or(tree);
    let mut path = prefix.to_vec();
    path.extend(without_alias.split("::").filter(|s| !s.is_empty() && *s != "*").map(str::to_owned));
    if !path.is_empty() {
        paths.push(path);
    }
}

fn split_top_level(list: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (index, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&list[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    items.into_iter().filter(|item| !item.is_empty()).collect()
}

/// `text` with comments and the insides of string and char literals turned to
/// spaces, lines kept where they were.
pub(super) fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        let previous_is_ident = at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_');
        if c == '/' && next == Some('/') {
            while at < chars.len() && chars[at] != '\n' {
                out.push(' ');
                at += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while at < chars.len() {
                if chars[at] == '/' && chars.get(at + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    at += 2;
                } else if chars[at] == '*' && chars.get(at + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    at += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[at]));
                    at += 1;
                }
            }
        } else if !previous_is_ident && (c == 'r' || c == 'b') && raw_string_hashes(&chars[at..]).is_some() {
            let (prefix, hashes) = raw_string_hashes(&chars[at..]).expect("checked");
            let closing: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let closing: Vec<char> = closing.chars().collect();
            out.extend(std::iter::repeat_n(' ', prefix));
            at += prefix;
            while at < chars.len() && !chars[at..].starts_with(&closing) {
                out.push(blank(chars[at]));
                at += 1;
            }
            out.extend(std::iter::repeat_n(' ', closing.len().min(chars.len() - at)));
            at += closing.len();
        } else if c == '"' {
            out.push(' ');
            at += 1;
            while at < chars.len() && chars[at] != '"' {
                let skip = if chars[at] == '\\' { 2 } else { 1 };
                for offset in 0..skip {
                    if let Some(&inside) = chars.get(at + offset) {
                        out.push(blank(inside));
                    }
                }
                at += skip;
            }
            out.push(' ');
            at += 1;
        } else if c == '\'' && is_char_literal(&chars[at..]) {
            out.push(' ');
            at += 1;
            while at < chars.len() && chars[at] != '\'' {
                let skip = if chars[at] == '\\' { 2 } else { 1 };
                out.extend(std::iter::repeat_n(' ', skip));
                at += skip;
            }
            out.push(' ');
            at += 1;
        } else {
            out.push(c);
            at += 1;
        }
    }
    out
}

/// At `r"`, `r#"`, `br##"`: the length of the opening and the number of `#`.
fn raw_string_hashes(chars: &[char]) -> Option<(usize, usize)> {
    let after_b = usize::from(chars.first() == Some(&'b'));
    if chars.get(after_b) != Some(&'r') {
        return None;
    }
    let hashes = chars[after_b + 1..].iter().take_while(|c| **c == '#').count();
    (chars.get(after_b + 1 + hashes) == Some(&'"')).then_some((after_b + 2 + hashes, hashes))
}

/// At a `'`: a char literal (`'a'`, `'\n'`, `'\u{1F600}'`) rather than a lifetime (`'a`).
fn is_char_literal(chars: &[char]) -> bool {
    match chars.get(1) {
        Some('\\') => true,
        Some(_) => chars.get(2) == Some(&'\''),
        None => false,
    }
}

/// `code` (already blanked) without the items under `#[cfg(test)]`.
pub(super) fn without_tests(code: &str) -> String {
    let mut out = code.to_owned();
    let mut search_from = 0;
    while let Some(found) = out[search_from..].find("#[cfg(test)]") {
        let start = search_from + found;
        let item_end = item_end(&out, start + "#[cfg(test)]".len());
        let blanked: String = out[start..item_end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
        out.replace_range(start..item_end, &blanked);
        search_from = item_end;
    }
    out
}

/// Where the item starting after `from` ends: after its `;`, or after the
/// brace that closes its first `{`.
fn item_end(code: &str, from: usize) -> usize {
    let mut depth = 0usize;
    for (offset, c) in code[from..].char_indices() {
        match c {
            ';' if depth == 0 => return from + offset + 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return from + offset + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}
