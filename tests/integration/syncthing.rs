//! The Syncthing client against real Syncthing processes on loopback.

use std::time::Duration;

use agentmesh::syncthing::{Client, Device, Folder, FolderDevice, SyncthingError};
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

use crate::support::syncthing::Syncthing;
use crate::support::wait::eventually_async_within;

/// Loopback sync with a 1 s watcher delay takes about 1 s; pairing 0.1 s.
const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn two_syncthings_pair_share_a_folder_and_keep_the_fields_we_do_not_own() {
    let (a, b) = (Syncthing::start("a"), Syncthing::start("b"));
    let (ca, cb) = (client(&a), client(&b));
    assert_eq!(ca.system_status().await.unwrap().my_id, a.device_id());
    assert!(ca.version().await.unwrap().version.starts_with('v'));

    for (client, peer, name) in [(&ca, &b, "b"), (&cb, &a, "a")] {
        let device = Device {
            device_id: peer.device_id().into(),
            name: name.into(),
            addresses: vec![peer.device_address()],
            ..Device::default()
        };
        client.add_device(&device).await.unwrap();
    }
    let devices = ca.devices().await.unwrap();
    let b_on_a = devices.iter().find(|device| device.device_id == b.device_id()).expect("A knows B");
    assert_eq!((b_on_a.name.as_str(), b_on_a.addresses.clone()), ("b", vec![b.device_address()]));
    assert!(devices.iter().any(|device| device.device_id == a.device_id()), "the own device is listed too");
    eventually_async_within(PATIENCE, "A is connected to B", || async {
        ca.connections().await.unwrap().connections.get(b.device_id()).filter(|c| c.connected).map(drop)
    })
    .await;

    for (client, own, peer) in [(&ca, &a, &b), (&cb, &b, &a)] {
        let folder = Folder {
            id: "shared".into(),
            label: "Shared".into(),
            path: own.data("shared").display().to_string(),
            devices: vec![FolderDevice::new(peer.device_id())],
            fs_watcher_delay_s: 1.0,
            ..Folder::default()
        };
        client.add_folder(&folder).await.unwrap();
    }
    let written = a.data("shared").join("hello.txt");
    eventually_async_within(PATIENCE, "Syncthing made A's folder", || async {
        a.data("shared").join(".stfolder").exists().then_some(())
    })
    .await;
    std::fs::write(&written, "hello from A").unwrap();
    let arrived = b.data("shared").join("hello.txt");
    eventually_async_within(PATIENCE, "the file is on B", || async {
        (std::fs::read_to_string(&arrived).ok()? == "hello from A").then_some(())
    })
    .await;
    eventually_async_within(PATIENCE, "A sees B complete", || async {
        let completion = ca.completion("shared", b.device_id()).await.unwrap();
        (completion.completion == 100.0 && completion.need_items == 0).then_some(())
    })
    .await;
    let status = cb.db_status("shared").await.unwrap();
    assert_eq!(status.global_files, Some(1));
    assert_eq!(status.error, None);
    assert!(cb.folder_errors("shared").await.unwrap().is_empty());

    // A field set in the GUI survives a PATCH of ours, and a whole object
    // read and POSTed back.
    ca.patch_folder("shared", &json!({"maxConflicts": 7})).await.unwrap();
    ca.patch_folder("shared", &json!({"label": "Renamed"})).await.unwrap();
    let folder = ca.folder("shared").await.unwrap().expect("the folder is there");
    assert_eq!(folder.label, "Renamed");
    assert_eq!(folder.other["maxConflicts"], json!(7));
    assert_eq!(folder.fs_watcher_delay_s, 1.0);
    assert!(folder.devices.iter().any(|device| device.device_id == b.device_id()));
    ca.add_folder(&Folder { label: "Posted whole".into(), ..folder.clone() }).await.unwrap();
    let posted = ca.folder("shared").await.unwrap().unwrap();
    assert_eq!(posted, Folder { label: "Posted whole".into(), ..folder });

    assert!(ca.ignores("shared").await.unwrap().is_empty(), "no .stignore yet");
    let patterns = vec!["*.tmp".to_owned(), "build/".to_owned()];
    ca.set_ignores("shared", &patterns).await.unwrap();
    assert_eq!(ca.ignores("shared").await.unwrap(), patterns);
    let invalid = ca.set_ignores("shared", &["[unclosed".to_owned()]).await.unwrap_err();
    assert!(matches!(invalid, SyncthingError::InvalidIgnores { .. }), "{invalid}");
    ca.set_ignores("shared", &patterns).await.unwrap();

    let before = file_names(&a.data("shared"));
    assert_eq!(before, [".stfolder", ".stignore", "hello.txt"]);
    ca.delete_folder("shared").await.unwrap();
    assert_eq!(ca.folder("shared").await.unwrap(), None);
    // Every file stays; only Syncthing's marker goes.
    assert_eq!(file_names(&a.data("shared")), [".stignore", "hello.txt"]);
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello from A");
    let unknown = ca.db_status("shared").await.unwrap_err();
    assert_eq!(unknown.status(), Some(StatusCode::NOT_FOUND), "{unknown}");
    ca.delete_folder("shared").await.expect("deleting an unknown folder is not an error");
}

#[tokio::test]
async fn events_are_read_from_the_start_again_after_a_restart() {
    let mut syncthing = Syncthing::start("events");
    let client = client(&syncthing);
    let first_start = client.system_status().await.unwrap().start_time;

    let events = client.events(0, Duration::ZERO, None).await.unwrap();
    assert_eq!(events.first().map(|event| event.event_type.as_str()), Some("Starting"), "{events:?}");
    let last = events.last().unwrap().id;

    // A mask is a subscription of its own, made by the first call: it sees
    // only what happens after.
    let mask: &[&str] = &["ConfigSaved"];
    assert!(client.events(0, Duration::ZERO, Some(mask)).await.unwrap().is_empty());
    client.patch_device(syncthing.device_id(), &json!({"name": "renamed"})).await.unwrap();
    let saved = client.events(0, Duration::from_secs(5), Some(mask)).await.unwrap();
    assert_eq!(saved.iter().map(|event| event.event_type.as_str()).collect::<Vec<_>>(), ["ConfigSaved"]);
    assert_eq!(saved[0].id, 1, "a mask's ids count on their own");

    syncthing.kill();
    let down = client.events(last, Duration::ZERO, None).await.unwrap_err();
    assert!(matches!(down, SyncthingError::Unreachable { .. }), "{down}");
    syncthing.start_again();

    let second_start = client.system_status().await.unwrap().start_time;
    assert_ne!(second_start, first_start, "startTime tells the restart");
    let stale = client.events(last, Duration::from_secs(1), None).await.unwrap();
    assert!(stale.iter().all(|event| event.id > last), "only ids above since: {stale:?}");
    assert!(stale.iter().all(|event| event.event_type != "Starting"), "a stale since misses the restart: {stale:?}");
    let again = client.events(0, Duration::ZERO, None).await.unwrap();
    assert_eq!((again[0].id, again[0].event_type.as_str()), (1, "Starting"));
}

#[tokio::test]
async fn a_wrong_key_and_an_unreachable_syncthing_are_told_apart() {
    let syncthing = Syncthing::start("keys");
    let wrong = Client::new(&syncthing.api_url(), "not-the-key-1234");
    let error = wrong.system_status().await.unwrap_err();
    assert!(matches!(error, SyncthingError::WrongKey { status: StatusCode::FORBIDDEN, .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("the key is wrong") && !message.contains("not-the-key-1234"), "{message}");

    // With a GUI user and password set, Syncthing answers 401 instead.
    let gui = format!("{}/rest/config/gui", syncthing.api_url());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let patch = http
        .patch(gui)
        .header("X-API-Key", syncthing.api_key())
        .json(&json!({"user": "someone", "password": "a password"}));
    // On a busy machine Syncthing may still be restarting its listener after
    // its first start: a refused connection is asked again, an answer is final.
    let response = eventually_async_within(PATIENCE, "Syncthing takes the GUI settings", || async {
        patch.try_clone().expect("a JSON body clones").send().await.ok()
    })
    .await;
    assert!(response.status().is_success(), "{}", response.status());
    // A change to the GUI settings restarts the API's listener: for a moment
    // the old one still answers 403, then nothing answers, then the new one.
    eventually_async_within(PATIENCE, "the API answers 401 to a wrong key", || async {
        let error = wrong.system_status().await.unwrap_err();
        matches!(error, SyncthingError::WrongKey { status: StatusCode::UNAUTHORIZED, .. }).then_some(())
    })
    .await;
    client(&syncthing).system_status().await.expect("the key still works");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nobody = Client::new(&format!("http://127.0.0.1:{port}"), syncthing.api_key());
    let error = nobody.folders().await.unwrap_err();
    assert!(
        error.to_string().starts_with(&format!("Syncthing at http://127.0.0.1:{port} is not reachable: ")),
        "{error}"
    );

    let error = client(&syncthing).scan("nope").await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR), "{error}");
    assert!(error.to_string().ends_with("no such folder"), "{error}");
}

#[tokio::test]
async fn a_syncthing_that_takes_the_call_and_never_answers_is_given_up_on() {
    // What a Syncthing under launchd does with `/rest/db/*` when macOS keeps
    // it from a folder: the connection is taken, no answer ever comes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    let started = Instant::now();
    let error = Client::new(&url, "key").db_status("shared").await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(error, SyncthingError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains("no answer to GET /rest/db/status within 5s"), "{error}");
    assert!(waited < Duration::from_secs(8), "gave up after {waited:?}");
    silent.abort();
}

/// The names in `folder`, sorted.
fn file_names(folder: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(folder).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn client(syncthing: &Syncthing) -> Client {
    Client::new(&syncthing.api_url(), syncthing.api_key())
}
