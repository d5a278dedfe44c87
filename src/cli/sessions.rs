//! `meshctl sessions`: every conversation of this node's HandoffPolicies, its
//! owner and epoch, which nodes hold the owner's content, whether every other
//! node holds the same content as this one, its conflict copies and the stale
//! writes kept aside in it; a table, or the API's JSON (or YAML).

use std::path::Path;

use super::{Outcome, Output, Target, output, runtime, table, target_client};
use crate::api::wire::Session;
use crate::identity::NodeEnv;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let (client, _) = target_client(env, &args.target)?;
    let sessions = runtime()?.block_on(client.sessions())?;
    output::print(args.output, &sessions, || render(&sessions))?;
    Ok(Outcome::Success)
}

fn render(sessions: &[Session]) -> String {
    if sessions.is_empty() {
        return "no conversations\n".into();
    }
    let mut rows = vec![
        ["ID", "POLICY", "OWNER", "EPOCH", "HOLDERS", "IN SYNC", "CONFLICTS", "STALE"].map(str::to_owned).to_vec(),
    ];
    for session in sessions {
        let owner = match (&session.owner, session.phase.as_str()) {
            (Some(owner), phase @ ("frozen" | "forcing")) => format!("{owner} ({phase})"),
            (Some(owner), _) => owner.clone(),
            (None, _) => "-".into(),
        };
        rows.push(vec![
            session.id.clone(),
            session.policy.clone(),
            owner,
            session.epoch.map_or("-".into(), |epoch| epoch.to_string()),
            if session.holders.is_empty() { "-".into() } else { session.holders.join(",") },
            if session.in_sync { "yes" } else { "no" }.into(),
            session.conflicts.len().to_string(),
            session.stale.len().to_string(),
        ]);
    }
    table::render(&rows)
}
