//! A save in progress is not a decision. A manifest file that became empty,
//! shrank or vanished keeps the text last sent for it until it has been
//! unchanged for the settle time: an editor, a sync tool or `git checkout`
//! truncates a file and writes it back a moment later, and a prefix of a file
//! may still parse (`port: 114` for `port: 11434`). What a held file declares
//! is neither changed nor removed, but an object new in it goes at once, as a
//! second text of the same path holding only the new documents at their lines.
//! Every other file (new, grown, or of the same length) is sent as read, at
//! once, and so is a deleted file whose text reappeared under another name.
//! Pure: the folder source reads the files and keeps the clock.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::manifest::{SourceFile, new_documents};

/// What the folder source sent last, and each file's text as last read.
#[derive(Debug, Default)]
pub struct Settle {
    /// Each file's text as last sent.
    sent: BTreeMap<Arc<str>, String>,
    /// The new documents of each held file, as last sent.
    sent_additions: BTreeMap<Arc<str>, String>,
    /// Each file sent or read, as last read (None: absent or unreadable), and
    /// since when it has read so.
    readings: BTreeMap<Arc<str>, Reading>,
}

#[derive(Debug)]
struct Reading {
    text: Option<String>,
    since: Instant,
}

/// What to send after a reading of the folder.
#[derive(Debug)]
pub struct Decision {
    /// The files read, each held file with its last sent text instead.
    pub files: Vec<SourceFile>,
    /// The files held back, in path order.
    pub held: Vec<Arc<str>>,
    /// When the first held file will have settled: the folder is read again
    /// then, whether or not anything changes.
    pub look_again: Option<Instant>,
    /// `files` are exactly what was sent last.
    pub unchanged: bool,
}

impl Settle {
    /// Takes `read`, the files of the folder just read, at `now`, and returns
    /// what to send. The caller sends `files` (or nothing, when unchanged).
    pub fn step(&mut self, read: &[SourceFile], now: Instant, settle_time: Duration) -> Decision {
        let read: BTreeMap<&Arc<str>, &String> = read.iter().map(|file| (&file.path, &file.text)).collect();
        let paths: BTreeSet<Arc<str>> =
            read.keys().map(|path| (*path).clone()).chain(self.sent.keys().cloned()).collect();
        // A file that vanished as a new one appeared with its very text was
        // renamed (`mv`, `git mv`): what it declares is not going away.
        let new_texts: HashSet<&str> =
            read.iter().filter(|(path, _)| !self.sent.contains_key(**path)).map(|(_, text)| text.as_str()).collect();
        let mut readings = BTreeMap::new();
        let (mut files, mut held, mut look_again) = (BTreeMap::new(), Vec::new(), None::<Instant>);
        let mut additions = BTreeMap::new();
        for path in paths {
            let text = read.get(&path).map(|text| (*text).clone());
            let reading = match self.readings.remove(&path) {
                Some(reading) if reading.text == text => reading,
                _ => Reading { text, since: now },
            };
            let sent = self.sent.get(&path);
            let shrank = sent.is_some_and(|sent| match &reading.text {
                Some(text) => text.len() < sent.len(),
                None => !new_texts.contains(sent.as_str()),
            });
            let settled_at = reading.since + settle_time;
            match (sent, &reading.text) {
                (Some(sent), current) if shrank && now < settled_at => {
                    files.insert(path.clone(), sent.clone());
                    if let Some(new) = current.as_deref().and_then(|current| new_documents(sent, current)) {
                        additions.insert(path.clone(), new);
                    }
                    held.push(path.clone());
                    look_again = Some(look_again.map_or(settled_at, |at| at.min(settled_at)));
                }
                (_, Some(text)) => {
                    files.insert(path.clone(), text.clone());
                }
                (_, None) => {}
            }
            readings.insert(path, reading);
        }
        let unchanged = files == self.sent && additions == self.sent_additions;
        self.sent.clone_from(&files);
        self.sent_additions.clone_from(&additions);
        self.readings = readings;
        let files = files
            .into_iter()
            .flat_map(|(path, text)| {
                let new = additions.remove(&path).map(|text| SourceFile { path: path.clone(), text });
                std::iter::once(SourceFile { path, text }).chain(new)
            })
            .collect();
        Decision { files, held, look_again, unchanged }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(2);
    const FULL: &str = "kind: Service\nspec:\n  port: 11434\n";

    fn files(list: &[(&str, &str)]) -> Vec<SourceFile> {
        list.iter().map(|(path, text)| SourceFile { path: (*path).into(), text: (*text).to_owned() }).collect()
    }

    fn sent(decision: &Decision) -> Vec<(&str, &str)> {
        decision.files.iter().map(|file| (&*file.path, file.text.as_str())).collect()
    }

    fn held(decision: &Decision) -> Vec<&str> {
        decision.held.iter().map(|path| &**path).collect()
    }

    /// `(path, text)` of each file.
    type Files<'a> = &'a [(&'a str, &'a str)];

    /// Seconds since the start, the files read, the files sent, the files held.
    type Step<'a> = (u64, Files<'a>, Files<'a>, &'a [&'a str]);

    fn run(steps: &[Step<'_>]) {
        let start = Instant::now();
        let mut settle = Settle::default();
        for (at, read, expected, expected_held) in steps {
            let decision = settle.step(&files(read), start + Duration::from_secs(*at), SETTLE);
            assert_eq!(sent(&decision), *expected, "sent at {at} s");
            assert_eq!(held(&decision), *expected_held, "held at {at} s");
        }
    }

    #[test]
    fn a_file_truncated_and_written_back_is_never_sent_empty() {
        run(&[
            (0, &[("a.yaml", FULL), ("b.yaml", "b")], &[("a.yaml", FULL), ("b.yaml", "b")], &[]),
            (1, &[("a.yaml", ""), ("b.yaml", "b")], &[("a.yaml", FULL), ("b.yaml", "b")], &[("a.yaml")]),
            (1, &[("a.yaml", FULL), ("b.yaml", "b")], &[("a.yaml", FULL), ("b.yaml", "b")], &[]),
        ]);
    }

    #[test]
    fn a_prefix_is_held_until_it_has_been_unchanged_for_the_settle_time() {
        let prefix = &FULL[..FULL.len() - 3];
        run(&[
            (0, &[("a.yaml", FULL)], &[("a.yaml", FULL)], &[]),
            (10, &[("a.yaml", prefix)], &[("a.yaml", FULL)], &[("a.yaml")]),
            (11, &[("a.yaml", prefix)], &[("a.yaml", FULL)], &[("a.yaml")]),
            (12, &[("a.yaml", prefix)], &[("a.yaml", prefix)], &[]),
            (13, &[("a.yaml", prefix)], &[("a.yaml", prefix)], &[]),
        ]);
    }

    #[test]
    fn each_change_of_a_shrunk_file_starts_its_settle_time_again() {
        run(&[
            (0, &[("a.yaml", "0123456789")], &[("a.yaml", "0123456789")], &[]),
            (1, &[("a.yaml", "")], &[("a.yaml", "0123456789")], &[("a.yaml")]),
            (2, &[("a.yaml", "0123")], &[("a.yaml", "0123456789")], &[("a.yaml")]),
            (3, &[("a.yaml", "012345")], &[("a.yaml", "0123456789")], &[("a.yaml")]),
            (4, &[("a.yaml", "012345")], &[("a.yaml", "0123456789")], &[("a.yaml")]),
            (5, &[("a.yaml", "012345")], &[("a.yaml", "012345")], &[]),
        ]);
    }

    #[test]
    fn a_file_that_grew_or_kept_its_length_is_sent_at_once() {
        run(&[
            (0, &[("a.yaml", "port: 1")], &[("a.yaml", "port: 1")], &[]),
            (1, &[("a.yaml", "port: 2")], &[("a.yaml", "port: 2")], &[]),
            (2, &[("a.yaml", "port: 22")], &[("a.yaml", "port: 22")], &[]),
            (3, &[("a.yaml", "")], &[("a.yaml", "port: 22")], &[("a.yaml")]),
            (3, &[("a.yaml", "port: 33")], &[("a.yaml", "port: 33")], &[]),
        ]);
    }

    #[test]
    fn a_deleted_file_is_removed_after_the_settle_time_and_a_new_one_is_added_at_once() {
        run(&[
            (0, &[("a.yaml", "a"), ("b.yaml", "b")], &[("a.yaml", "a"), ("b.yaml", "b")], &[]),
            (1, &[("b.yaml", "b")], &[("a.yaml", "a"), ("b.yaml", "b")], &[("a.yaml")]),
            (
                2,
                &[("b.yaml", "b"), ("c.yaml", "c")],
                &[("a.yaml", "a"), ("b.yaml", "b"), ("c.yaml", "c")],
                &[("a.yaml")],
            ),
            (3, &[("b.yaml", "b"), ("c.yaml", "c")], &[("b.yaml", "b"), ("c.yaml", "c")], &[]),
        ]);
    }

    #[test]
    fn another_file_changes_at_once_while_one_is_held() {
        run(&[
            (0, &[("a.yaml", "aaaa"), ("b.yaml", "b")], &[("a.yaml", "aaaa"), ("b.yaml", "b")], &[]),
            (1, &[("a.yaml", ""), ("b.yaml", "b")], &[("a.yaml", "aaaa"), ("b.yaml", "b")], &[("a.yaml")]),
            (2, &[("a.yaml", ""), ("b.yaml", "bb")], &[("a.yaml", "aaaa"), ("b.yaml", "bb")], &[("a.yaml")]),
            (3, &[("a.yaml", ""), ("b.yaml", "bb")], &[("a.yaml", ""), ("b.yaml", "bb")], &[]),
        ]);
    }

    #[test]
    fn a_file_deleted_then_recreated_shorter_is_held_from_its_last_change() {
        run(&[
            (0, &[("a.yaml", "aaaa")], &[("a.yaml", "aaaa")], &[]),
            (1, &[], &[("a.yaml", "aaaa")], &[("a.yaml")]),
            (2, &[("a.yaml", "aa")], &[("a.yaml", "aaaa")], &[("a.yaml")]),
            (3, &[("a.yaml", "aa")], &[("a.yaml", "aaaa")], &[("a.yaml")]),
            (4, &[("a.yaml", "aa")], &[("a.yaml", "aa")], &[]),
        ]);
    }

    #[test]
    fn a_renamed_file_is_not_held() {
        run(&[
            (0, &[("a.yaml", "aaaa"), ("b.yaml", "b")], &[("a.yaml", "aaaa"), ("b.yaml", "b")], &[]),
            (1, &[("b.yaml", "b"), ("c.yaml", "aaaa")], &[("b.yaml", "b"), ("c.yaml", "aaaa")], &[]),
        ]);
    }

    #[test]
    fn a_shrunk_file_is_held_but_an_object_new_in_it_goes_at_once() {
        let two = "kind: Service\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: b}\n";
        let renamed = "kind: Service\nmetadata: {name: c}\n";
        let kept_and_new = "kind: Service\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: c}\n";
        let new_at_its_lines = "\n\n---\nkind: Service\nmetadata: {name: c}\n";
        run(&[
            (0, &[("a.yaml", two)], &[("a.yaml", two)], &[]),
            (1, &[("a.yaml", renamed)], &[("a.yaml", two), ("a.yaml", renamed)], &[("a.yaml")]),
            (3, &[("a.yaml", renamed)], &[("a.yaml", renamed)], &[]),
        ]);
        let longer = "kind: Service\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: bbbb}\n";
        run(&[
            (0, &[("a.yaml", longer)], &[("a.yaml", longer)], &[]),
            (1, &[("a.yaml", &kept_and_new[..40])], &[("a.yaml", longer)], &[("a.yaml")]),
            (1, &[("a.yaml", kept_and_new)], &[("a.yaml", longer), ("a.yaml", new_at_its_lines)], &[("a.yaml")]),
            (4, &[("a.yaml", kept_and_new)], &[("a.yaml", kept_and_new)], &[]),
        ]);
    }

    #[test]
    fn the_first_reading_is_sent_whole_even_with_empty_files() {
        run(&[(0, &[("a.yaml", ""), ("b.yaml", "b")], &[("a.yaml", ""), ("b.yaml", "b")], &[])]);
    }

    #[test]
    fn it_says_when_to_look_again_and_whether_anything_changed() {
        let start = Instant::now();
        let mut settle = Settle::default();
        let first = settle.step(&files(&[("a.yaml", "aaaa"), ("b.yaml", "bbbb")]), start, SETTLE);
        assert_eq!((first.look_again, first.unchanged), (None, false));
        let b_deleted = start + Duration::from_millis(500);
        let decision = settle.step(&files(&[("a.yaml", "aaaa")]), b_deleted, SETTLE);
        assert_eq!((decision.look_again, decision.unchanged), (Some(b_deleted + SETTLE), true));
        let a_emptied = start + Duration::from_millis(1000);
        let decision = settle.step(&files(&[("a.yaml", "")]), a_emptied, SETTLE);
        assert_eq!((decision.look_again, decision.unchanged), (Some(b_deleted + SETTLE), true));
        let decision = settle.step(&files(&[("a.yaml", "")]), b_deleted + SETTLE, SETTLE);
        assert_eq!(held(&decision), ["a.yaml"]);
        assert_eq!((decision.look_again, decision.unchanged), (Some(a_emptied + SETTLE), false));
        let decision = settle.step(&files(&[("a.yaml", "")]), a_emptied + SETTLE, SETTLE);
        assert_eq!((sent(&decision), decision.look_again, decision.unchanged), (vec![("a.yaml", "")], None, false));
    }
}
