//! `meshctl env` and `meshctl exec -- CMD ARGS…`: the client env the local
//! controller rendered (`client.env` in its state folder) — where each
//! Capability is served now — printed, or given to a command.
//!
//! Both read the file the daemon wrote and ask the daemon nothing, so they work
//! while it restarts; the file follows failover within seconds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Outcome, Output};
use crate::config;
use crate::identity::NodeEnv;
use crate::reconcile::capability::parse_client_env;
use crate::reconcile::client_env::CLIENT_ENV_FILE;

#[derive(Debug, clap::Args)]
pub(super) struct EnvArgs {
    /// `json` and `yaml` print one object of the variables.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, clap::Args)]
pub(super) struct ExecArgs {
    /// The command and its arguments, after `--`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// What a shell answers for a command it cannot find.
const NOT_FOUND: u8 = 127;
/// What a shell answers for a command it found but cannot run.
const CANNOT_RUN: u8 = 126;

pub(super) fn env(args: EnvArgs, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let (path, text) = match read(env_file)? {
        Ok(found) => found,
        Err(missing) => return Ok(missing),
    };
    if args.output == Output::Text {
        print!("{text}");
    } else {
        let variables = parse_client_env(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        super::output::print(args.output, &variables, String::new)?;
    }
    Ok(Outcome::Success)
}

/// Replaces this process with the command, its environment plus the client
/// env's variables: stdio, signals and the exit code are the command's own.
pub(super) fn exec(args: ExecArgs, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    use std::os::unix::process::CommandExt as _;
    let (path, text) = match read(env_file)? {
        Ok(found) => found,
        Err(missing) => return Ok(missing),
    };
    let variables = parse_client_env(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    let (program, rest) = args.command.split_first().context("no command to run")?;
    let error = std::process::Command::new(program).args(rest).envs(variables).exec();
    let program = program.to_string_lossy();
    if error.kind() == std::io::ErrorKind::NotFound {
        eprintln!("meshctl exec: {program}: command not found");
        return Ok(Outcome::Code(NOT_FOUND));
    }
    eprintln!("meshctl exec: cannot run {program}: {error}");
    Ok(Outcome::Code(CANNOT_RUN))
}

/// The client env file and its text; Err(outcome) when it is not there yet,
/// which is said on stderr.
fn read(env_file: Option<&Path>) -> anyhow::Result<Result<(PathBuf, String), Outcome>> {
    let env = NodeEnv::load(env_file)?;
    let state_dir = config::state_dir(&env).context("MESH_STATE_DIR is not set and there is no HOME to find it")?;
    let path = state_dir.join(CLIENT_ENV_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Ok((path, text))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "error: {} does not exist: the daemon of this node has not written the client env yet \
                 (is `meshctl daemon` running with this MESH_STATE_DIR, and has it loaded manifests?)",
                path.display()
            );
            Ok(Err(Outcome::Failure))
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}
