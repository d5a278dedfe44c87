//! `meshctl events [-f]`: the controller's recent events, or, following, its
//! events and Service output as they happen, read from the event stream.

use std::path::Path;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{Outcome, Output, Target, output, runtime, target_client};
use crate::api::wire::{Action, Intervention, StreamMessage};
use crate::client::EventStream;
use crate::identity::NodeEnv;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Keep printing events and Service output as they happen, until Ctrl-C.
    #[arg(short, long)]
    follow: bool,
    /// `json` prints the stream's messages as they come, one per line;
    /// `yaml`, one YAML document each.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    /// Ask the controller to pause or resume reconciles, or to reconcile now.
    #[arg(long, value_enum, value_name = "ACTION")]
    send: Option<Action>,
    #[command(flatten)]
    target: Target,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let (client, _) = target_client(env, &args.target)?;
    runtime()?.block_on(async {
        let mut stream = client.events().await?;
        if let Some(action) = args.send {
            let text = serde_json::to_string(&Intervention { action })?;
            stream.send(Message::Text(text.into())).await.context("cannot send the intervention")?;
        }
        follow(&mut stream, &args).await
    })
}

/// Prints messages until the recent ones are done (and the intervention is
/// acknowledged), or, following, until the daemon closes the stream.
async fn follow(stream: &mut EventStream, args: &Args) -> anyhow::Result<Outcome> {
    let mut live = false;
    let mut awaiting_ack = args.send.is_some();
    while let Some(frame) = stream.next().await {
        let Message::Text(text) = frame.context("the event stream broke")? else { continue };
        let message: StreamMessage =
            serde_json::from_str(&text).with_context(|| format!("unexpected message on the event stream: {text}"))?;
        match &message {
            StreamMessage::Live => live = true,
            StreamMessage::Ack { .. } => awaiting_ack = false,
            StreamMessage::Error { message } if awaiting_ack => anyhow::bail!("the controller refused: {message}"),
            _ => {}
        }
        if args.output == Output::Text {
            print(&message);
        } else {
            print_data(&message, &text, args.output)?;
        }
        if live && !awaiting_ack && !args.follow {
            let _ = stream.close(None).await;
            return Ok(Outcome::Success);
        }
    }
    eprintln!("the daemon closed the event stream");
    Ok(Outcome::Success)
}

/// `-o json`: each message as the daemon sent it, one per line; `-o yaml`:
/// each as a YAML document. The `live` marker is the stream's, not news.
fn print_data(message: &StreamMessage, raw: &str, format: Output) -> anyhow::Result<()> {
    if *message == StreamMessage::Live {
        return Ok(());
    }
    match format {
        Output::Json => println!("{raw}"),
        _ => print!("{}", output::stream_item(format, message)?.unwrap_or_default()),
    }
    Ok(())
}

fn print(message: &StreamMessage) {
    match message {
        StreamMessage::Event { time, event_type, reason, object, message } => {
            let object = if object.is_empty() { "-" } else { object };
            println!("{time}  {event_type:<7}  {reason:<18}  {object:<24}  {message}");
        }
        StreamMessage::Log { service, line, .. } => println!("{service} | {line}"),
        StreamMessage::Live => {}
        StreamMessage::Lagged { skipped } => println!("… {skipped} message(s) skipped: this client fell behind"),
        StreamMessage::Ack { action } => println!("{} acknowledged", serde_json::json!(action)),
        StreamMessage::Error { message } => eprintln!("error from the controller: {message}"),
    }
}
