//! `docs/openapi.json` (issue #20, point 1): that it is what `meshctl openapi`
//! writes, and what a daemon serves at `/api/v1/openapi.json` without a key,
//! while the rest of the API still wants one.

use std::path::Path;

use crate::support::daemon::Daemon;

const REGENERATE: &str = "run `cargo run -- openapi --out docs/openapi.json` and commit the result";

fn committed() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}; {REGENERATE}", path.display()))
}

#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_meshctl")).arg("openapi").output().expect("meshctl runs");
    assert!(output.status.success(), "{output:?}");
    let generated = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(generated == committed(), "docs/openapi.json differs from `meshctl openapi`: {REGENERATE}");
}

#[tokio::test]
async fn a_daemon_serves_the_document_without_a_key_and_nothing_else() {
    let daemon = Daemon::builder().start();
    let http = reqwest::Client::new();
    let served = http.get(daemon.url("/api/v1/openapi.json")).send().await.expect("the daemon answers");
    assert_eq!(served.status(), 200);
    let content_type = served.headers()[reqwest::header::CONTENT_TYPE].to_str().expect("a text header").to_owned();
    assert_eq!(content_type, "application/json");
    assert!(served.text().await.expect("a body") == committed(), "the served document is not docs/openapi.json");
    let status = http.get(daemon.url("/api/v1/status")).send().await.expect("the daemon answers");
    assert_eq!(status.status(), 401, "the key is still wanted elsewhere");
}
