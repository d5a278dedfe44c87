//! A client of Syncthing's REST API (1.19 through 2.x): the edge the
//! SyncFolder reconciler will act through. It knows Syncthing's routes and
//! JSON, nothing of manifests.
//!
//! What the reference trial taught, kept here so callers cannot forget it:
//! every call has a timeout (on macOS `/rest/db/*` can hang while config
//! calls answer), every status is checked (config calls answer 200 with an
//! empty body, errors are plain text), and objects are only ever POSTed whole
//! or PATCHed: a partial PUT resets the rest to defaults.

pub mod events;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::net::{self, root_cause};

pub use wire::{
    Completion, Connection, Connections, DbStatus, Device, Event, FileRecord, Folder, FolderDevice, FolderError,
    FolderErrors, SystemStatus, Version, Versioning,
};

/// For `/rest/system/*` and `/rest/config/*`, which answer at once.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(10);
/// For `/rest/db/*` and connections, which hang on macOS when a folder is
/// in a place the service may not read (syncthing#10876): give up soon.
const DB_TIMEOUT: Duration = Duration::from_secs(5);
/// How much longer than its own `timeout` a long poll of events may take.
const EVENTS_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SyncthingError {
    /// No connection, or no answer in time.
    #[error("Syncthing at {url} is not reachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// 401 or 403: Syncthing refused the key (it says "CSRF Error").
    #[error("Syncthing at {url} refused the API key ({status}): the key is wrong")]
    WrongKey { url: String, status: StatusCode },
    /// Any other status that is not a success, with Syncthing's plain-text answer.
    #[error("Syncthing at {url} answered {method} {path} with {status}: {message}")]
    Status { url: String, method: Method, path: String, status: StatusCode, message: String },
    /// A success whose body is not the JSON expected.
    #[error("Syncthing at {url} gave an unexpected answer to {path}: {reason}")]
    Decode { url: String, path: String, reason: String },
    /// `set_ignores`: Syncthing wrote the patterns and reports one it cannot
    /// parse; the folder stays in state `error` until they are fixed.
    #[error("Syncthing at {url} took the ignore patterns of folder {folder} but cannot use them: {message}")]
    InvalidIgnores { url: String, folder: String, message: String },
}

impl SyncthingError {
    /// The HTTP status Syncthing answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            SyncthingError::Status { status, .. } | SyncthingError::WrongKey { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one Syncthing. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    /// The API URL as given, without a trailing slash, for messages.
    url: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the Syncthing whose GUI/API listens at `api_url`
    /// (`http://127.0.0.1:8384`), using `api_key` as `X-API-Key`.
    pub fn new(api_url: &str, api_key: &str) -> Client {
        let http = net::http_client(net::CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Client { url: api_url.trim_end_matches('/').to_owned(), key: api_key.to_owned(), http }
    }

    pub fn api_url(&self) -> &str {
        &self.url
    }

    /// Who this Syncthing is (`myID`) and since when it runs (`startTime`).
    pub async fn system_status(&self) -> Result<SystemStatus, SyncthingError> {
        self.get(&["system", "status"], &[], CONFIG_TIMEOUT).await
    }

    pub async fn version(&self) -> Result<Version, SyncthingError> {
        self.get(&["system", "version"], &[], CONFIG_TIMEOUT).await
    }

    pub async fn folders(&self) -> Result<Vec<Folder>, SyncthingError> {
        self.get(&["config", "folders"], &[], CONFIG_TIMEOUT).await
    }

    /// The folder `id`, or None when Syncthing has none by that id.
    pub async fn folder(&self, id: &str) -> Result<Option<Folder>, SyncthingError> {
        match self.get(&["config", "folders", id], &[], CONFIG_TIMEOUT).await {
            Ok(folder) => Ok(Some(folder)),
            Err(error) if error.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Adds the folder, or replaces the one with its id, as a whole object:
    /// fields missing from it would take Syncthing's defaults.
    pub async fn add_folder(&self, folder: &Folder) -> Result<(), SyncthingError> {
        self.send(Method::POST, &["config", "folders"], &[], Some(folder), CONFIG_TIMEOUT).await
    }

    /// Changes only the fields in `fields` (arrays are replaced whole). A
    /// different `id` in `fields` would make a second folder, not rename.
    pub async fn patch_folder(&self, id: &str, fields: &Value) -> Result<(), SyncthingError> {
        self.send(Method::PATCH, &["config", "folders", id], &[], Some(fields), CONFIG_TIMEOUT).await
    }

    /// Removes the folder from the config. Its files stay on disk (only the
    /// `.stfolder` marker goes); an unknown id is not an error.
    pub async fn delete_folder(&self, id: &str) -> Result<(), SyncthingError> {
        self.send(Method::DELETE, &["config", "folders", id], &[], None::<&()>, CONFIG_TIMEOUT).await
    }

    /// Every device, this one included.
    pub async fn devices(&self) -> Result<Vec<Device>, SyncthingError> {
        self.get(&["config", "devices"], &[], CONFIG_TIMEOUT).await
    }

    /// Adds the device, or replaces the one with its ID, as a whole object.
    pub async fn add_device(&self, device: &Device) -> Result<(), SyncthingError> {
        self.send(Method::POST, &["config", "devices"], &[], Some(device), CONFIG_TIMEOUT).await
    }

    /// Changes only the fields in `fields`.
    pub async fn patch_device(&self, id: &str, fields: &Value) -> Result<(), SyncthingError> {
        self.send(Method::PATCH, &["config", "devices", id], &[], Some(fields), CONFIG_TIMEOUT).await
    }

    /// Removes the device, and with it from every folder's `devices`.
    pub async fn delete_device(&self, id: &str) -> Result<(), SyncthingError> {
        self.send(Method::DELETE, &["config", "devices", id], &[], None::<&()>, CONFIG_TIMEOUT).await
    }

    /// The lines of the folder's `.stignore`; empty when it has none.
    pub async fn ignores(&self, folder: &str) -> Result<Vec<String>, SyncthingError> {
        let ignores: wire::Ignores = self.get(&["db", "ignores"], &[("folder", folder)], DB_TIMEOUT).await?;
        Ok(ignores.ignore)
    }

    /// Writes the folder's `.stignore`. A pattern Syncthing cannot parse is
    /// written all the same and reported as [`SyncthingError::InvalidIgnores`].
    pub async fn set_ignores(&self, folder: &str, lines: &[String]) -> Result<(), SyncthingError> {
        let body = wire::Ignores { ignore: lines.to_vec(), error: None };
        let bytes = self.call(Method::POST, &["db", "ignores"], &[("folder", folder)], Some(&body), DB_TIMEOUT).await?;
        let answer: wire::Ignores = self.decode("/rest/db/ignores", &bytes)?;
        match answer.error {
            Some(message) => {
                Err(SyncthingError::InvalidIgnores { url: self.url.clone(), folder: folder.into(), message })
            }
            None => Ok(()),
        }
    }

    /// The folder's state and counts (404 for an unknown folder).
    pub async fn db_status(&self, folder: &str) -> Result<DbStatus, SyncthingError> {
        self.get(&["db", "status"], &[("folder", folder)], DB_TIMEOUT).await
    }

    /// How far `device` is with `folder`, as this Syncthing knows it.
    pub async fn completion(&self, folder: &str, device: &str) -> Result<Completion, SyncthingError> {
        self.get(&["db", "completion"], &[("folder", folder), ("device", device)], DB_TIMEOUT).await
    }

    /// Asks for a scan now rather than at the watcher's delay. Answers once
    /// the scan is queued; a folder whose path is missing gives a 500.
    pub async fn scan(&self, folder: &str) -> Result<(), SyncthingError> {
        self.send(Method::POST, &["db", "scan"], &[("folder", folder)], None::<&()>, DB_TIMEOUT).await
    }

    /// Asks for a scan of one path of the folder now (`sub`, relative).
    pub async fn scan_sub(&self, folder: &str, sub: &str) -> Result<(), SyncthingError> {
        self.send(Method::POST, &["db", "scan"], &[("folder", folder), ("sub", sub)], None::<&()>, DB_TIMEOUT).await
    }

    /// Syncthing's record of this device's copy of `file` (a path relative to
    /// the folder), or None while Syncthing has not scanned or received it (404).
    pub async fn file_record(&self, folder: &str, file: &str) -> Result<Option<FileRecord>, SyncthingError> {
        #[derive(serde::Deserialize)]
        struct FileInfo {
            local: FileRecord,
        }
        match self.get::<FileInfo>(&["db", "file"], &[("folder", folder), ("file", file)], DB_TIMEOUT).await {
            Ok(info) => Ok(Some(info.local)),
            Err(error) if error.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Events with an `id` above `since`, waiting up to `timeout` for one.
    ///
    /// Each distinct `mask` is a subscription of its own, made on first use:
    /// it sees only later events, and its ids count on their own. Ids start
    /// again at 1 when Syncthing restarts, so a `since` from before one sees
    /// nothing until that many events happened: check
    /// [`SystemStatus::start_time`] and start again from 0.
    pub async fn events(
        &self,
        since: u64,
        timeout: Duration,
        mask: Option<&[&str]>,
    ) -> Result<Vec<Event>, SyncthingError> {
        let since = since.to_string();
        // Whole seconds, rounded up: 0 means "answer at once".
        let seconds = (timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)).to_string();
        let joined = mask.map(|types| types.join(","));
        let mut query = vec![("since", since.as_str()), ("timeout", seconds.as_str())];
        if let Some(types) = &joined {
            query.push(("events", types));
        }
        self.get(&["events"], &query, timeout + EVENTS_GRACE).await
    }

    /// The files the folder failed to pull, and why.
    pub async fn folder_errors(&self, folder: &str) -> Result<Vec<FolderError>, SyncthingError> {
        let errors: FolderErrors = self.get(&["folder", "errors"], &[("folder", folder)], DB_TIMEOUT).await?;
        Ok(errors.errors)
    }

    /// The IDs of devices that dialled this one and are not in its config.
    pub async fn pending_devices(&self) -> Result<BTreeSet<String>, SyncthingError> {
        let pending: BTreeMap<String, Value> =
            self.get(&["cluster", "pending", "devices"], &[], CONFIG_TIMEOUT).await?;
        Ok(pending.into_keys().collect())
    }

    /// Which devices are connected, and how.
    pub async fn connections(&self) -> Result<Connections, SyncthingError> {
        self.get(&["system", "connections"], &[], DB_TIMEOUT).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        route: &[&str],
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<T, SyncthingError> {
        let bytes = self.call(Method::GET, route, query, None::<&()>, timeout).await?;
        self.decode(&rest_path(route), &bytes)
    }

    /// A call whose answer does not matter beyond its status (config changes
    /// answer 200 with an empty body).
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        route: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<(), SyncthingError> {
        self.call(method, route, query, body, timeout).await.map(drop)
    }

    /// One request to `/rest/<route…>` (each segment escaped, so any folder id
    /// is safe), its status checked; the body of a success.
    async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        route: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<Vec<u8>, SyncthingError> {
        let path = rest_path(route);
        let unreachable = |reason: String| SyncthingError::Unreachable { url: self.url.clone(), reason };
        let mut url = Url::parse(&self.url).map_err(|error| unreachable(format!("not a URL: {error}")))?;
        url.path_segments_mut()
            .map_err(|()| unreachable("not an http URL".into()))?
            .pop_if_empty()
            .push("rest")
            .extend(route);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method.clone(), url).timeout(timeout).header("X-API-Key", &self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |error: reqwest::Error| {
            if error.is_timeout() {
                unreachable(format!("no answer to {method} {path} within {}s", timeout.as_secs()))
            } else {
                unreachable(root_cause(&error))
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(SyncthingError::WrongKey { url: self.url.clone(), status });
        }
        if !status.is_success() {
            let message = String::from_utf8_lossy(&bytes).trim().to_owned();
            return Err(SyncthingError::Status { url: self.url.clone(), method, path, status, message });
        }
        Ok(bytes.to_vec())
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> Result<T, SyncthingError> {
        serde_json::from_slice(bytes).map_err(|error| SyncthingError::Decode {
            url: self.url.clone(),
            path: path.to_owned(),
            reason: error.to_string(),
        })
    }
}

/// `/rest/config/folders/ID`, for messages.
fn rest_path(route: &[&str]) -> String {
    format!("/rest/{}", route.join("/"))
}
