//! Every node's status as one node sees it: its own, and each peer's
//! `GET /api/v1/status` asked with the key, all at once, each within a
//! timeout; a peer known to be down is not asked. `meshctl status` and
//! `GET /api/v1/mesh/status` share it.

use std::time::Duration;

use futures_util::future::join_all;

use super::ApiClient;
use crate::api::wire::{MeshNode, MeshNodeStatus};
use crate::controller::status::NodeStatus;

/// How one node's status was had.
#[derive(Debug)]
pub(crate) enum Answer {
    Status(Box<NodeStatus>),
    /// Not asked: this node's prober knows it is down.
    KnownDown,
    /// Asked, and this went wrong.
    Failed(String),
}

/// `mine` for this node's view, and each peer's answer to `key` within
/// `timeout` for the others, in the order of `views`. Never waits more than
/// about `timeout` in all, whatever the peers do.
pub(crate) async fn gather(
    mine: NodeStatus,
    views: Vec<MeshNode>,
    key: Option<&str>,
    timeout: Duration,
) -> Vec<MeshNodeStatus> {
    let mut mine = Some(mine);
    let asks = views.into_iter().map(|view| {
        let own = if view.this_node { mine.take() } else { None };
        async move {
            let answer = match own {
                Some(status) => Answer::Status(Box::new(status)),
                None => ask(&view, key, timeout).await,
            };
            combine(view, answer)
        }
    });
    join_all(asks).await
}

async fn ask(view: &MeshNode, key: Option<&str>, timeout: Duration) -> Answer {
    if view.known_down {
        return Answer::KnownDown;
    }
    let client = ApiClient::new(&view.authority(), key, timeout);
    match tokio::time::timeout(timeout, client.status()).await {
        Ok(Ok(status)) => Answer::Status(Box::new(status)),
        Ok(Err(error)) => Answer::Failed(error.to_string()),
        Err(_) => Answer::Failed(format!("no answer from {} in {} ms", view.authority(), timeout.as_millis())),
    }
}

/// A node's entry: its own status when it answered, else what `view` last
/// knew of it, offline, with why it did not answer.
pub(crate) fn combine(view: MeshNode, answer: Answer) -> MeshNodeStatus {
    let unanswered = match answer {
        Answer::Status(status) => return MeshNodeStatus { view, status: *status, unanswered: None },
        Answer::KnownDown => "not asked: known to be down".to_owned(),
        Answer::Failed(why) => why,
    };
    let status = NodeStatus {
        name: view.name.clone(),
        role: view.role.clone(),
        online: false,
        last_seen: view.last_seen.clone(),
        unreachable_since: view.unreachable_since.clone(),
        revision: view.revision.clone(),
        last_error: None,
        objects: Vec::new(),
        paused: false,
        source: view.source.clone(),
    };
    MeshNodeStatus { view, status, unanswered: Some(unanswered) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn view(name: &str, dial: &str, this_node: bool, known_down: bool) -> MeshNode {
        MeshNode {
            name: name.into(),
            role: "satellite".into(),
            address: "127.0.0.1".into(),
            api_port: 1,
            this_node,
            dial: dial.into(),
            online: !known_down,
            known_down,
            last_seen: Some("2026-12-06T09:00:00Z".into()),
            rtt_ms: None,
            revision: Some("r1".into()),
            version: None,
            api_version: None,
            compatible: true,
            last_error: None,
            unreachable_since: known_down.then(|| "2026-12-06T09:12:00Z".into()),
            asleep_since: None,
            source: None,
        }
    }

    fn status(name: &str) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            role: "primary".into(),
            online: true,
            last_seen: None,
            unreachable_since: None,
            revision: Some("r2".into()),
            last_error: None,
            objects: Vec::new(),
            paused: true,
            source: None,
        }
    }

    #[test]
    fn a_node_that_answered_is_its_own_word_and_one_that_did_not_is_the_view_offline_with_why() {
        let table = [
            (Answer::Status(Box::new(status("mini"))), true, Some("r2"), None),
            (Answer::KnownDown, false, Some("r1"), Some("not asked: known to be down")),
            (Answer::Failed("refused".into()), false, Some("r1"), Some("refused")),
        ];
        for (answer, online, revision, unanswered) in table {
            let what = format!("{answer:?}");
            let node = combine(view("mini", "127.0.0.1:1", false, false), answer);
            assert_eq!(node.status.online, online, "{what}");
            assert_eq!(node.status.revision.as_deref(), revision, "{what}");
            assert_eq!(node.unanswered.as_deref(), unanswered, "{what}");
            assert_eq!(node.status.paused, unanswered.is_none(), "{what}: only an answer says it is paused");
            assert_eq!(node.view.name, "mini");
        }
        let down = combine(view("mini", "127.0.0.1:1", false, true), Answer::KnownDown);
        assert_eq!(down.status.unreachable_since.as_deref(), Some("2026-12-06T09:12:00Z"));
    }

    #[tokio::test]
    async fn a_silent_peer_costs_the_timeout_once_and_a_down_one_is_not_asked() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_at = silent.local_addr().unwrap().to_string();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let views = vec![
            view("laptop", "", true, false),
            view("silent", &silent_at, false, false),
            view("gone", &silent_at, false, true),
            view("closed", &closed, false, false),
            view("also-silent", &silent_at, false, false),
        ];
        let started = Instant::now();
        let nodes = gather(status("laptop"), views, Some("key"), Duration::from_millis(300)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(900), "the peers were asked one after another: {took:?}");
        let names: Vec<&str> = nodes.iter().map(|node| node.view.name.as_str()).collect();
        assert_eq!(names, ["laptop", "silent", "gone", "closed", "also-silent"]);
        assert!(nodes[0].unanswered.is_none() && nodes[0].status.online);
        assert!(nodes[1].unanswered.as_deref().is_some_and(|why| why.contains(&silent_at)), "{:?}", nodes[1]);
        assert_eq!(nodes[2].unanswered.as_deref(), Some("not asked: known to be down"));
        assert!(nodes[3].unanswered.as_deref().is_some_and(|why| why.contains("refused")), "{:?}", nodes[3]);
        assert!(nodes[1..].iter().all(|node| !node.status.online && node.status.objects.is_empty()));
    }
}
