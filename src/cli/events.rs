//! `meshctl events [-f]`: the controller's recent events, or, following, its
//! events and Service output as they happen, read from the event stream.

use std::path::Path;

use anyhow::Context as _;
use futures_util::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

use super::stream::{self, Received};
use super::{Outcome, Output, Target, output, runtime, table, target_client};
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
        let mut events = client.events().await?;
        if let Some(action) = args.send {
            let text = serde_json::to_string(&Intervention { action })?;
            events.send(Message::Text(text.into())).await.context("cannot send the intervention")?;
        }
        follow(&mut events, &args).await
    })
}

/// Prints messages until the recent ones are done (and the intervention is
/// acknowledged), or, following, until the daemon closes the stream.
async fn follow(events: &mut EventStream, args: &Args) -> anyhow::Result<Outcome> {
    let mut printer = Printer { args, live: false, recent: Vec::new(), widths: Vec::new() };
    let mut awaiting_ack = args.send.is_some();
    while let Some(Received { message, text }) = stream::next(events).await? {
        match &message {
            StreamMessage::Ack { .. } => awaiting_ack = false,
            StreamMessage::Error { message } if awaiting_ack => anyhow::bail!("the controller refused: {message}"),
            _ => {}
        }
        printer.print(&message, &text)?;
        if printer.live && !awaiting_ack && !args.follow {
            let _ = events.close(None).await;
            return Ok(Outcome::Success);
        }
    }
    eprintln!("the daemon closed the event stream");
    Ok(Outcome::Success)
}

/// Whether `events` prints `message`: everything, but with `--send` only the
/// answer to the intervention and, following, what happens after it.
fn shown(message: &StreamMessage, live: bool, sending: bool, following: bool) -> bool {
    match message {
        StreamMessage::Ack { .. } | StreamMessage::Error { .. } => true,
        StreamMessage::Live => false,
        _ => !sending || (live && following),
    }
}

const HEADER: [&str; 5] = ["TIME", "TYPE", "REASON", "OBJECT", "MESSAGE"];

/// The narrowest each column starts: a time to the second, `Warning`, and
/// room for common reasons and objects, so that events that come after a
/// short (or skipped) history line up too.
const MIN_WIDTHS: [usize; 5] = [20, 7, 18, 24, 0];

/// Prints the stream's messages: as they come with `-o json`; as text, the
/// recent events as one table, then each new event as a row lined up with it.
struct Printer<'a> {
    args: &'a Args,
    /// Past the recent events.
    live: bool,
    /// The recent events, held until `live` to be printed as one table.
    recent: Vec<Vec<String>>,
    /// The table's column widths, which later rows follow.
    widths: Vec<usize>,
}

impl Printer<'_> {
    fn print(&mut self, message: &StreamMessage, raw: &str) -> anyhow::Result<()> {
        let (sending, following) = (self.args.send.is_some(), self.args.follow);
        if *message == StreamMessage::Live {
            self.live = true;
            if self.args.output == Output::Text && (!sending || following) {
                let mut rows = vec![HEADER.map(str::to_owned).to_vec()];
                rows.append(&mut self.recent);
                self.widths = table::widths(&rows).into_iter().zip(MIN_WIDTHS).map(|(w, min)| w.max(min)).collect();
                rows.iter().for_each(|row| print!("{}", table::render_row(row, &self.widths)));
            }
            return Ok(());
        }
        if !shown(message, self.live, sending, following) {
            return Ok(());
        }
        match self.args.output {
            Output::Text => {}
            Output::Json => {
                println!("{raw}");
                return Ok(());
            }
            format => {
                print!("{}", output::stream_item(format, message)?.unwrap_or_default());
                return Ok(());
            }
        }
        match message {
            StreamMessage::Event { time, event_type, reason, object, message } => {
                let object = if object.is_empty() { "-" } else { object };
                let row = [time, event_type, reason, object, message].map(|cell| cell.to_owned()).to_vec();
                if self.live {
                    print!("{}", table::render_row(&row, &self.widths));
                } else {
                    self.recent.push(row);
                }
            }
            StreamMessage::Log { service, line, .. } => println!("{service} | {line}"),
            StreamMessage::Live => {}
            StreamMessage::Lagged { skipped } => println!("… {skipped} message(s) skipped: this client fell behind"),
            StreamMessage::Ack { action } => println!("{} acknowledged", serde_json::json!(action)),
            StreamMessage::Error { message } => eprintln!("error from the controller: {message}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::Action;

    #[test]
    fn send_prints_only_the_answer_and_following_what_comes_after_it() {
        let event = StreamMessage::Event {
            time: "t".into(),
            event_type: "Normal".into(),
            reason: "Applied".into(),
            object: String::new(),
            message: "m".into(),
        };
        let ack = StreamMessage::Ack { action: Action::Pause };
        // (message, live, sending, following) -> shown
        let table = [
            (&event, false, false, false, true),
            (&event, true, false, false, true),
            (&event, false, true, false, false),
            (&event, true, true, false, false),
            (&event, false, true, true, false),
            (&event, true, true, true, true),
            (&ack, false, true, false, true),
            (&ack, true, true, true, true),
            (&StreamMessage::Live, false, false, false, false),
        ];
        for (message, live, sending, following, expected) in table {
            assert_eq!(shown(message, live, sending, following), expected, "{message:?} {live} {sending} {following}");
        }
    }
}
