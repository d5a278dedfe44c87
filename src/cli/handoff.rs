//! `meshctl handoff ID [--to NODE] [--timeout D] [--force]`: asks this node's
//! controller (the conversation's owner) to hand the conversation over, then
//! follows the handoff step by step until it succeeded or failed; a failure
//! names the step (freeze, barrier, accept) and why, and leaves this node the
//! owner at the old epoch.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::{Outcome, Target, runtime, target_client};
use crate::api::wire::HandoffRequest;
use crate::client::ClientError;
use crate::identity::NodeEnv;
use crate::manifest::DurationSpec;

/// How often the progress is asked for.
const POLL: Duration = Duration::from_millis(200);
/// How long after the handoff's own timeout the command still waits.
const GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The conversation (its folder's name).
    id: String,
    /// The node to hand it to; by default the policy's defaultTarget, else the other node.
    #[arg(long, value_name = "NODE")]
    to: Option<String>,
    /// How long the handoff may take (`30s`, `2m`); by default the policy's timeout.
    #[arg(long, value_name = "DURATION", value_parser = DurationSpec::parse)]
    timeout: Option<DurationSpec>,
    /// Take the conversation over on this node, its owner being unreachable
    /// (only when the policy's allowForce).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    target: Target,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let (client, _) = target_client(env, &args.target)?;
    let request = HandoffRequest {
        id: args.id.clone(),
        to: args.to,
        timeout: args.timeout.as_ref().map(ToString::to_string),
        force: args.force,
    };
    runtime()?.block_on(async move {
        let started = match client.handoff(&request).await {
            Ok(started) => started,
            Err(error @ ClientError::Unreachable { .. }) => return Err(error.into()),
            Err(error) => {
                eprintln!("handoff of {} refused: {error}", args.id);
                return Ok(Outcome::Failure);
            }
        };
        if args.force && started.done {
            println!("{}", started.message.unwrap_or_default());
            return Ok(Outcome::Success);
        }
        match args.force {
            // With three nodes or more, a force waits for the others' promises.
            true => println!("force {} of {} started", started.handoff, started.conversation),
            false => println!("handoff {} of {} to {} started", started.handoff, started.conversation, started.target),
        }
        let patience = Duration::from_millis(started.timeout_ms) + GRACE;
        let deadline = Instant::now() + patience;
        let mut printed = 0;
        let mut progress = started;
        let mut last_error = None;
        loop {
            for line in &progress.lines[printed..] {
                println!("  {line}");
            }
            printed = progress.lines.len();
            if progress.done {
                return Ok(if progress.succeeded {
                    println!("{} now owns {} at epoch {}", progress.owner, progress.conversation, progress.epoch);
                    Outcome::Success
                } else {
                    eprintln!(
                        "handoff failed at the {} step; {} still owns {} at epoch {}",
                        progress.failed_step.as_deref().unwrap_or("unknown"),
                        progress.owner,
                        progress.conversation,
                        progress.epoch
                    );
                    Outcome::Failure
                });
            }
            if Instant::now() >= deadline {
                eprintln!("no outcome after {}: see `meshctl sessions`", humantime::format_duration(patience));
                return Ok(Outcome::Failure);
            }
            tokio::time::sleep(POLL).await;
            match client.handoff_progress(&progress.handoff).await {
                Ok(next) => (progress, last_error) = (next, None),
                Err(error) => {
                    // Once per distinct error: a restarting daemon is not a flood.
                    let error = error.to_string();
                    if last_error.as_ref() != Some(&error) {
                        eprintln!("  (cannot follow the handoff: {error})");
                    }
                    last_error = Some(error);
                }
            }
        }
    })
}
