//! `meshctl`: the command line. Each command lives in its own module; exit codes
//! are decided here, in one place: 0 ok, 1 failure, 2 usage error (clap's).

mod schema;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about = "Declarative mesh of your AI agent's machines")]
struct Cli {
    /// Read the node's settings from this env file instead of ./.env.
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a manifests folder and report every problem.
    Validate(validate::Args),
    /// Write the manifests' JSON Schemas.
    Schema(schema::Args),
}

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// What a command reports back to `main`.
pub enum Outcome {
    Success,
    /// The command ran and found a problem it has already printed.
    Failure,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(args, cli.env_file.as_deref()),
        Command::Schema(args) => schema::run(args),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
