//! `meshctl logs service/NAME [-f]`: a Service's last output lines, from the
//! node that runs it; following, the lines it writes next, from that node's
//! event stream.

use std::path::Path;
use std::time::Duration;

use super::status::{Row, collect};
use super::stream::{self, Received};
use super::{LOCAL_TIMEOUT, Outcome, Target, kinds, runtime, target_client};
use crate::api::wire::StreamMessage;
use crate::client::{ApiClient, ClientError};
use crate::identity::NodeEnv;
use crate::manifest::Kind;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// `service/NAME` (or `svc/NAME`): only Services have output.
    object: String,
    /// Keep printing the lines it writes, until Ctrl-C.
    #[arg(short, long)]
    follow: bool,
    #[command(flatten)]
    target: Target,
}

/// How long, once the last lines are in, the stream gets to hand over the
/// lines written meanwhile, so that none is printed twice or lost.
const CATCH_UP: Duration = Duration::from_millis(100);

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let (kind, name) = kinds::reference(&args.object, None)?;
    if kind != Kind::Service {
        let reference = format!("{}/{name}", kinds::singular(kind));
        anyhow::bail!("{reference} has no output: only services do (`meshctl describe {reference}` shows its state)");
    }
    let env = &NodeEnv::load(env_file)?;
    let (client, key) = target_client(env, &args.target)?;
    runtime()?.block_on(async {
        let client = if args.target.on.is_some() { client } else { runner(client, key, &name).await? };
        if args.follow { follow(&client, &name).await } else { print_tail(&client, &name).await }
    })
}

/// A client of the node that runs Service `name`: the first node of the mesh
/// (this one first) whose status lists it. Says so when others run it too.
async fn runner(local: ApiClient, key: Option<String>, name: &str) -> anyhow::Result<ApiClient> {
    let rows = collect(local.clone(), key.clone()).await?;
    let runs_it = |row: &&Row| row.status.objects.iter().any(|o| o.kind == Kind::Service.as_str() && o.name == name);
    let mut runners = rows.iter().filter(runs_it);
    let Some(first) = runners.next() else {
        return match local.describe(Kind::Service.as_str(), name).await {
            Err(ClientError::Api { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
                anyhow::bail!("Error from server (NotFound): services \"{name}\" not found")
            }
            Err(error) => Err(error.into()),
            Ok(_) => anyhow::bail!("service/{name} runs on no node that answers now: it has no output to show"),
        };
    };
    let others: Vec<&str> = runners.map(|row| row.status.name.as_str()).collect();
    if !others.is_empty() {
        let on = others.iter().map(|node| format!("`--on {node}`")).collect::<Vec<_>>().join(", ");
        eprintln!("service/{name} runs on {} too: {on} shows its output there", others.join(", "));
    }
    if first.view.this_node {
        return Ok(local);
    }
    Ok(ApiClient::new(&first.view.authority(), key.as_deref(), LOCAL_TIMEOUT))
}

/// The Service's last lines as `client`'s node keeps them.
async fn tail(client: &ApiClient, name: &str) -> anyhow::Result<Vec<String>> {
    let described = client.describe(Kind::Service.as_str(), name).await.map_err(|error| match error {
        ClientError::Api { status, .. } if status == reqwest::StatusCode::NOT_FOUND => {
            anyhow::anyhow!("Error from server (NotFound): services \"{name}\" not found on {}", client.base())
        }
        error => error.into(),
    })?;
    Ok(described.logs.into_iter().map(|line| line.line).collect())
}

async fn print_tail(client: &ApiClient, name: &str) -> anyhow::Result<Outcome> {
    for line in tail(client, name).await? {
        println!("{line}");
    }
    Ok(Outcome::Success)
}

/// Opens the stream first, so no line falls between the last lines and the
/// live ones; the lines both carry are printed once.
async fn follow(client: &ApiClient, name: &str) -> anyhow::Result<Outcome> {
    let mut events = client.events().await?;
    stream::past_recent_events(&mut events).await?;
    let last = tail(client, name).await?;
    let mut fresh = Vec::new();
    // One deadline for them all: a Service that writes all the time must not
    // keep this from ever printing.
    let caught_up = tokio::time::Instant::now() + CATCH_UP;
    while let Ok(received) = tokio::time::timeout_at(caught_up, stream::next(&mut events)).await {
        match received? {
            Some(received) => fresh.extend(line_of(received.message, name)),
            None => break,
        }
    }
    let shown = already_shown(&last, &fresh);
    for line in last.iter().chain(&fresh[shown..]) {
        println!("{line}");
    }
    while let Some(Received { message, .. }) = stream::next(&mut events).await? {
        if let StreamMessage::Lagged { skipped } = message {
            eprintln!("… {skipped} message(s) skipped: this client fell behind");
        }
        if let Some(line) = line_of(message, name) {
            println!("{line}");
        }
    }
    eprintln!("the daemon closed the event stream");
    Ok(Outcome::Failure)
}

fn line_of(message: StreamMessage, name: &str) -> Option<String> {
    match message {
        StreamMessage::Log { service, line, .. } if service == name => Some(line),
        _ => None,
    }
}

/// How many of the first `fresh` lines (from the stream) end `last` (the
/// tail asked after the stream opened) already: the longest such overlap.
fn already_shown(last: &[String], fresh: &[String]) -> usize {
    (0..=fresh.len().min(last.len())).rev().find(|&n| last.ends_with(&fresh[..n])).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_both_the_tail_and_the_stream_carry_are_counted_once() {
        let lines = |text: &str| text.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let table = [
            ("a b c", "b c d", 2),
            ("a b c", "c", 1),
            ("a b c", "d e", 0),
            ("", "a b", 0),
            ("a b", "", 0),
            ("a b", "a b", 2),
            ("x a a", "a a b", 2),
        ];
        for (last, fresh, shown) in table {
            assert_eq!(already_shown(&lines(last), &lines(fresh)), shown, "{last:?} then {fresh:?}");
        }
    }

    #[test]
    fn only_lines_of_the_asked_service_are_followed() {
        let log =
            |service: &str| StreamMessage::Log { service: service.into(), stream: "stdout".into(), line: "hi".into() };
        assert_eq!(line_of(log("web"), "web").as_deref(), Some("hi"));
        assert_eq!(line_of(log("db"), "web"), None);
        assert_eq!(line_of(StreamMessage::Live, "web"), None);
    }
}
