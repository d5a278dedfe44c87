//! What the controller reports: conditions per object, a bounded log of events,
//! and the node's status in the stable JSON shape of design section 5.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::event::{Event, Severity};
use crate::manifest::Kind;
use crate::source_status::SourceStatus;
use crate::supervisor::{LogLine, LogSink};

/// An object this controller acts on: its kind and name. Shown as `Kind/name`,
/// as events name their object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

impl ObjectKey {
    pub(crate) fn new(kind: Kind, name: impl Into<String>) -> ObjectKey {
        ObjectKey { kind, name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// What a condition is about, as design section 5 names it; its JSON is the
/// variant's name (`"type": "Ready"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ConditionType {
    /// The object does what it is declared to do.
    Ready,
    /// Something is under way (a start, a pull, a sync).
    Progressing,
    /// Something needs a person's look.
    Degraded,
}

impl ConditionType {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Progressing => "Progressing",
            ConditionType::Degraded => "Degraded",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Ready`, `Progressing` or `Degraded`, with `True`, `False` or `Unknown`.
/// The wire shape: `type` stays a string, so a client reads the status of a
/// daemon that knows more condition types than it does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default)]
    pub last_transition_time: String,
    /// The revision the condition was computed for.
    #[serde(default)]
    pub revision: String,
}

impl Condition {
    /// Whether this condition is of type `condition_type`.
    pub(crate) fn is(&self, condition_type: ConditionType) -> bool {
        self.condition_type == condition_type.as_str()
    }

    /// Whether its status is `True`.
    pub(crate) fn holds(&self) -> bool {
        self.status == "True"
    }
}

/// One condition as a reconciler states it; the store adds the times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    pub condition_type: ConditionType,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Observed {
    /// A condition whose status is computed; the builders below name the usual ones.
    pub(crate) fn new(
        condition_type: ConditionType,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Observed { condition_type, status, reason: reason.into(), message: message.into() }
    }

    /// `Ready` `True`.
    pub(crate) fn ready(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Observed::new(ConditionType::Ready, true, reason, message)
    }

    /// `Ready` `False`.
    pub(crate) fn not_ready(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Observed::new(ConditionType::Ready, false, reason, message)
    }

    /// `Progressing` `True`.
    pub(crate) fn progressing(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Observed::new(ConditionType::Progressing, true, reason, message)
    }

    /// `Progressing` `False`, reason `Stable`: nothing under way.
    pub(crate) fn stable() -> Self {
        Observed::new(ConditionType::Progressing, false, "Stable", "")
    }

    /// `Degraded` `True`.
    pub(crate) fn degraded(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Observed::new(ConditionType::Degraded, true, reason, message)
    }

    /// `Degraded` `False`, reason `AsExpected`: nothing to look at.
    pub(crate) fn as_expected() -> Self {
        Observed::new(ConditionType::Degraded, false, "AsExpected", "")
    }

    /// Whether this is a condition of type `condition_type` whose status is true.
    pub(crate) fn holds(&self, condition_type: ConditionType) -> bool {
        self.condition_type == condition_type && self.status
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectStatus {
    pub kind: String,
    pub name: String,
    pub ready: bool,
    pub conditions: Vec<Condition>,
    /// Facts worth showing in `describe` (pid, restarts, last exit…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl ObjectStatus {
    /// The object's condition of type `condition_type`, if it reports one.
    pub(crate) fn condition(&self, condition_type: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.is(condition_type))
    }
}

/// A node's entry in `status -o json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeStatus {
    pub name: String,
    pub role: String,
    pub online: bool,
    pub last_seen: Option<String>,
    /// When the node asked stopped seeing it answer (RFC 3339): present only
    /// for a peer it knows to be down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<String>,
    pub revision: Option<String>,
    /// A rejected snapshot's errors, one per line with file:line; null when the
    /// last snapshot was applied.
    pub last_error: Option<String>,
    pub objects: Vec<ObjectStatus>,
    /// Whether reconciles are paused from the event stream. An addition to the
    /// stable shape, present only while true, so the usual document is exactly
    /// design section 5's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Where its manifests come from and how the last fetch went. Absent
    /// only for a node of an earlier version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStatus>,
}

#[cfg(test)]
impl NodeStatus {
    /// The one test fixture of a node's status: online, at revision `r1`,
    /// last seen at a fixed time, with no objects, no error and no source.
    pub(crate) fn fixture(name: &str) -> Self {
        NodeStatus {
            name: name.into(),
            role: "satellite".into(),
            online: true,
            last_seen: Some("2026-11-28T10:00:00Z".into()),
            unreachable_since: None,
            revision: Some("r1".into()),
            last_error: None,
            objects: Vec::new(),
            paused: false,
            source: None,
        }
    }
}

/// An [`Event`] as the log keeps it: when, and about which object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventRecord {
    pub time: String,
    /// The event's [`Severity`](crate::event::Severity): `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub reason: String,
    /// `Kind/name`, or empty for the node as a whole.
    pub object: String,
    pub message: String,
}

/// What the event stream carries, as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StreamItem {
    Event(EventRecord),
    Log(LogLine),
}

/// How many events are kept in memory.
const EVENT_CAPACITY: usize = 500;

/// How many items a stream subscriber may fall behind before it is told it
/// lagged and skips ahead: sending never waits for a slow client.
const STREAM_CAPACITY: usize = 1024;

/// The live stream of events and log lines. Cheap to clone; clones send to
/// the same subscribers. The supervisor sends Service output here directly
/// (it is the supervisor's [`LogSink`]), not through the controller's loop.
#[derive(Clone)]
pub(crate) struct StatusStream {
    sender: Arc<RwLock<broadcast::Sender<StreamItem>>>,
}

impl Default for StatusStream {
    fn default() -> Self {
        StatusStream { sender: Arc::new(RwLock::new(broadcast::channel(STREAM_CAPACITY).0)) }
    }
}

impl StatusStream {
    /// Sends to every subscriber; never waits (a slow one lags instead).
    fn send(&self, item: StreamItem) {
        // An error only means nobody is listening.
        let _ = self.sender.read().unwrap_or_else(PoisonError::into_inner).send(item);
    }

    fn subscribe(&self) -> broadcast::Receiver<StreamItem> {
        self.sender.read().unwrap_or_else(PoisonError::into_inner).subscribe()
    }

    /// Ends every subscription: their sender is replaced by a new one.
    fn close(&self) {
        *self.sender.write().unwrap_or_else(PoisonError::into_inner) = broadcast::channel(STREAM_CAPACITY).0;
    }
}

impl LogSink for StatusStream {
    fn send(&self, line: LogLine) {
        StatusStream::send(self, StreamItem::Log(line));
    }
}

/// Conditions of every object, the recent events, and the live stream of
/// events and log lines.
#[derive(Default)]
pub(crate) struct StatusStore {
    objects: BTreeMap<ObjectKey, ObjectStatus>,
    events: VecDeque<EventRecord>,
    stream: StatusStream,
}

impl StatusStore {
    /// A store whose events go to `stream`, which Service output is sent to too.
    pub(crate) fn new(stream: StatusStream) -> StatusStore {
        StatusStore { objects: BTreeMap::new(), events: VecDeque::new(), stream }
    }

    /// Sets the conditions of `key`, keeping each one's transition time while its
    /// status does not change.
    pub(crate) fn set(
        &mut self,
        key: &ObjectKey,
        observed: Vec<Observed>,
        details: BTreeMap<String, String>,
        revision: &str,
    ) {
        let now = now_rfc3339();
        let entry = self.objects.entry(key.clone()).or_insert_with(|| ObjectStatus {
            kind: key.kind.to_string(),
            name: key.name.clone(),
            ready: false,
            conditions: Vec::new(),
            details: BTreeMap::new(),
        });
        let conditions = observed
            .into_iter()
            .map(|o| {
                let status = if o.status { "True" } else { "False" }.to_owned();
                let since = entry
                    .conditions
                    .iter()
                    .find(|c| c.is(o.condition_type) && c.status == status)
                    .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
                Condition {
                    condition_type: o.condition_type.as_str().to_owned(),
                    status,
                    reason: o.reason,
                    message: o.message,
                    last_transition_time: since,
                    revision: revision.to_owned(),
                }
            })
            .collect::<Vec<_>>();
        entry.ready = conditions.iter().any(|c| c.is(ConditionType::Ready) && c.holds());
        entry.conditions = conditions;
        entry.details = details;
    }

    pub(crate) fn remove(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
    }

    pub(crate) fn objects(&self) -> Vec<ObjectStatus> {
        self.objects.values().cloned().collect()
    }

    pub(crate) fn object(&self, key: &ObjectKey) -> Option<&ObjectStatus> {
        self.objects.get(key)
    }

    /// Records an event about `object` (`Kind/name`, or empty for the node as
    /// a whole) in the log (and the tracing log).
    pub(crate) fn event(&mut self, object: &str, event: Event) {
        let Event { severity, reason, message } = event;
        match severity {
            Severity::Warning => tracing::warn!(reason, object, "{message}"),
            Severity::Normal => tracing::info!(reason, object, "{message}"),
        }
        if self.events.len() == EVENT_CAPACITY {
            self.events.pop_front();
        }
        let event = EventRecord {
            time: now_rfc3339(),
            event_type: severity.as_str().into(),
            reason: reason.into(),
            object: object.into(),
            message,
        };
        self.stream.send(StreamItem::Event(event.clone()));
        self.events.push_back(event);
    }

    /// The last `recent` events and a subscription to what follows them. Both
    /// are taken under the store's lock, so nothing is missed or seen twice.
    pub(crate) fn subscribe(&self, recent: usize) -> (Vec<EventRecord>, broadcast::Receiver<StreamItem>) {
        (self.events(None, recent), self.stream.subscribe())
    }

    /// Ends every subscription, so the API's graceful shutdown does not wait on
    /// clients that follow the stream forever.
    pub(crate) fn close_stream(&mut self) {
        self.stream.close();
    }

    /// The most recent events, oldest first; only those about `object` when given.
    pub(crate) fn events(&self, object: Option<&str>, limit: usize) -> Vec<EventRecord> {
        let matching: Vec<&EventRecord> = self.events.iter().filter(|e| object.is_none_or(|o| e.object == o)).collect();
        matching[matching.len().saturating_sub(limit)..].iter().map(|e| (*e).clone()).collect()
    }
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_holds_while_status_is_unchanged() {
        let mut store = StatusStore::default();
        let key = ObjectKey::new(Kind::Service, "web");
        store.set(&key, vec![Observed::not_ready("Starting", "")], BTreeMap::new(), "r1");
        let first = store.object(&key).unwrap().conditions[0].clone();
        store.set(&key, vec![Observed::not_ready("Starting", "again")], BTreeMap::new(), "r2");
        let second = &store.object(&key).unwrap().conditions[0];
        assert_eq!(second.last_transition_time, first.last_transition_time);
        assert_eq!((second.message.as_str(), second.revision.as_str()), ("again", "r2"));
        assert!(!store.object(&key).unwrap().ready);
        store.set(&key, vec![Observed::ready("Healthy", "")], BTreeMap::new(), "r2");
        assert!(store.object(&key).unwrap().ready);
    }

    #[test]
    fn each_condition_type_is_written_as_its_name() {
        let mut store = StatusStore::default();
        let key = ObjectKey::new(Kind::Service, "web");
        let observed =
            vec![Observed::ready("Running", ""), Observed::stable(), Observed::degraded("PortInUse", "8080")];
        store.set(&key, observed, BTreeMap::new(), "r1");
        let json = serde_json::to_value(store.object(&key).unwrap()).unwrap();
        let seen: Vec<(&str, &str, &str)> = json["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap(), c["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [("Ready", "True", "Running"), ("Progressing", "False", "Stable"), ("Degraded", "True", "PortInUse")]
        );
        assert!(json["ready"].as_bool().unwrap());
    }

    #[test]
    fn an_object_key_reads_kind_slash_name_and_sorts_by_kind_first() {
        let service = ObjectKey::new(Kind::Service, "a");
        assert_eq!(service.to_string(), "Service/a");
        let mut keys = [ObjectKey::new(Kind::Service, "b"), ObjectKey::new(Kind::Node, "z"), service.clone()];
        keys.sort();
        assert_eq!(keys.iter().map(ToString::to_string).collect::<Vec<_>>(), ["Node/z", "Service/a", "Service/b"]);
    }

    #[test]
    fn the_event_log_is_bounded_and_filterable() {
        let mut store = StatusStore::default();
        for i in 0..EVENT_CAPACITY + 10 {
            store.event(if i % 2 == 0 { "Service/a" } else { "Service/b" }, Event::normal("Test", i.to_string()));
        }
        assert_eq!(store.events(None, usize::MAX).len(), EVENT_CAPACITY);
        let last_a = store.events(Some("Service/a"), 2);
        assert_eq!(last_a.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["506", "508"]);
    }

    #[test]
    fn every_subscriber_gets_what_follows_its_recent_events() {
        let stream = StatusStream::default();
        let mut store = StatusStore::new(stream.clone());
        store.event("", Event::normal("Before", "old"));
        let (recent, mut first) = store.subscribe(50);
        let (_, mut second) = store.subscribe(50);
        assert_eq!(recent.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(), ["Before"]);
        store.event("Service/web", Event::warning("After", "new"));
        LogSink::send(&stream, LogLine { service: "web".into(), stream: "stdout", line: "hello".into() });
        for receiver in [&mut first, &mut second] {
            assert!(
                matches!(receiver.try_recv(), Ok(StreamItem::Event(e)) if e.reason == "After" && e.event_type == "Warning")
            );
            assert!(matches!(receiver.try_recv(), Ok(StreamItem::Log(l)) if l.line == "hello"));
        }
    }

    #[test]
    fn a_subscriber_that_falls_behind_learns_how_much_it_skipped() {
        let mut store = StatusStore::default();
        let (_, mut slow) = store.subscribe(0);
        for i in 0..STREAM_CAPACITY + 3 {
            store.event("", Event::normal("Test", i.to_string()));
        }
        assert_eq!(slow.try_recv(), Err(broadcast::error::TryRecvError::Lagged(3)));
        assert!(matches!(slow.try_recv(), Ok(StreamItem::Event(e)) if e.message == "3"));
    }

    #[test]
    fn closing_the_stream_ends_subscriptions() {
        let stream = StatusStream::default();
        let mut store = StatusStore::new(stream.clone());
        let (_, mut receiver) = store.subscribe(0);
        store.close_stream();
        assert_eq!(receiver.try_recv(), Err(broadcast::error::TryRecvError::Closed));
        // The supervisor's clone sends to the new subscribers only.
        let (_, mut after) = store.subscribe(0);
        LogSink::send(&stream, LogLine { service: "web".into(), stream: "stdout", line: "late".into() });
        assert!(matches!(after.try_recv(), Ok(StreamItem::Log(l)) if l.line == "late"));
    }
}
