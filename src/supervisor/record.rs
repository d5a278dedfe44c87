//! `processes.json` in the state folder: the processes this daemon runs,
//! rewritten whenever one starts or ends, so that the next daemon can stop what
//! this one left running (after a SIGKILL, or where there is no parent-death
//! signal) instead of starting duplicates.
//!
//! The file is small and written from the async tasks directly: a write is a
//! few hundred bytes and an fsync, once per process start or end.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic_file::write_atomic;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::process::Leftover;
use super::sync::lock;

const FILE_NAME: &str = "processes.json";

/// One running process, as the file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Record {
    pub service: String,
    /// The leader of the process group.
    pub pid: u32,
    /// See `process::ProcessInfo::start_time`: it tells this process from a
    /// later one that got the same pid.
    pub start_time: u64,
    pub fingerprint: String,
}

impl Record {
    pub(super) fn leftover(&self) -> Leftover {
        Leftover { pid: self.pid, start_time: self.start_time }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct ProcessesFile {
    processes: Vec<Record>,
}

/// The processes this daemon runs, and the file that lists them.
pub(super) struct Records {
    path: PathBuf,
    /// By service and pid: while a unit is replaced, the old process may be
    /// forgotten after the new one is recorded.
    running: Mutex<BTreeMap<(String, u32), Record>>,
}

impl Records {
    /// No records yet for `state_dir`, and what an earlier daemon left there.
    /// A file that cannot be read is reported and treated as empty: there is
    /// nothing better to do with it.
    pub(super) fn open(state_dir: &Path) -> (Records, Vec<Record>) {
        let path = state_dir.join(FILE_NAME);
        let earlier = read(&path).unwrap_or_else(|error| {
            tracing::warn!(path = %path.display(), "cannot read the processes an earlier daemon started: {error}");
            Vec::new()
        });
        let records = Records { path, running: Mutex::new(BTreeMap::new()) };
        (records, earlier)
    }

    /// Lists `record` until the returned guard is dropped.
    pub(super) fn add(self: &Arc<Self>, record: Record) -> RecordGuard {
        let key = (record.service.clone(), record.pid);
        lock(&self.running).insert(key.clone(), record);
        self.save();
        RecordGuard { records: self.clone(), key }
    }

    /// Writes the file. A failure is logged, not returned: the processes run
    /// either way, and only a later daemon's cleanup depends on the file.
    pub(super) fn save(&self) {
        // Held while writing, so the file never goes back to an older state.
        let running = lock(&self.running);
        let file = ProcessesFile { processes: running.values().cloned().collect() };
        let json = serde_json::to_vec_pretty(&file).expect("records serialize");
        if let Err(error) = write_atomic(&self.path, &json) {
            tracing::warn!(path = %self.path.display(), "cannot record the running processes: {error}");
        }
    }
}

/// Keeps one process listed in `processes.json`.
pub(super) struct RecordGuard {
    records: Arc<Records>,
    key: (String, u32),
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        lock(&self.records.running).remove(&self.key);
        self.records.save();
    }
}

fn read(path: &Path) -> io::Result<Vec<Record>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice::<ProcessesFile>(&bytes)?.processes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(service: &str, pid: u32) -> Record {
        Record { service: service.into(), pid, start_time: 1234, fingerprint: "0123456789ab".into() }
    }

    #[test]
    fn a_process_is_listed_while_its_guard_lives() {
        let state = tempfile::tempdir().unwrap();
        let (records, earlier) = Records::open(state.path());
        assert!(earlier.is_empty());
        let records = Arc::new(records);
        let web = records.add(record("web", 10));
        let db = records.add(record("db", 20));
        assert_eq!(read(&state.path().join(FILE_NAME)).unwrap(), [record("db", 20), record("web", 10)]);
        drop(web);
        assert_eq!(read(&state.path().join(FILE_NAME)).unwrap(), [record("db", 20)]);
        drop(db);
        assert!(read(&state.path().join(FILE_NAME)).unwrap().is_empty());
        let names: Vec<_> = std::fs::read_dir(state.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [FILE_NAME], "no temporary file is left behind");
    }

    #[test]
    fn the_file_names_service_pid_start_time_and_fingerprint() {
        let state = tempfile::tempdir().unwrap();
        let (records, _) = Records::open(state.path());
        let _web = Arc::new(records).add(record("web", 10));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.path().join(FILE_NAME)).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"processes": [
                {"service": "web", "pid": 10, "startTime": 1234, "fingerprint": "0123456789ab"}
            ]})
        );
    }

    #[test]
    fn an_earlier_daemons_records_are_read_back() {
        let state = tempfile::tempdir().unwrap();
        let (records, _) = Records::open(state.path());
        let records = Arc::new(records);
        let guard = records.add(record("web", 10));
        std::mem::forget(guard);
        let (_, earlier) = Records::open(state.path());
        assert_eq!(earlier, [record("web", 10)]);
    }

    #[test]
    fn an_unreadable_file_counts_as_no_records() {
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join(FILE_NAME), "{not json").unwrap();
        let (_, earlier) = Records::open(state.path());
        assert!(earlier.is_empty());
    }
}
