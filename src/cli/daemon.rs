//! `meshctl daemon`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::Outcome;
use crate::config::DaemonConfig;
use crate::env_location;
use crate::identity::NodeEnv;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Listen here instead of MESH_LISTEN.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Watch this folder instead of MESH_MANIFESTS.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// Keep state here instead of MESH_STATE_DIR.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Log as JSON lines (for log collectors) instead of text.
    #[arg(long)]
    log_json: bool,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = NodeEnv::load(env_file)?;
    let located = env_location::locate(env_file);
    let mut config = DaemonConfig::from_env(&env)
        .map_err(|problems| anyhow!("the node is not configured ({located}):\n  {}", problems.join("\n  ")))?;
    if let Some(listen) = args.listen {
        config.listen = Some(listen);
    }
    if let Some(manifests) = args.manifests {
        config.manifests = manifests;
    }
    if let Some(state_dir) = args.state_dir {
        config.state_dir = state_dir;
    }
    init_logging(args.log_json);
    tracing::info!("{located}");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(crate::daemon::serve(config, env, env_file.map(Path::to_path_buf)))?;
    Ok(Outcome::Success)
}

/// `RUST_LOG` filters (default `info`); text or JSON lines on stderr.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let colour = colour_wanted(std::env::var_os("NO_COLOR").as_deref(), std::io::stderr().is_terminal());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Colours only on a terminal, and not when `NO_COLOR` is set to anything but
/// the empty string (no-color.org).
fn colour_wanted(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn the_log_is_coloured_only_on_a_terminal_without_no_color() {
        let table: [(Option<&OsStr>, bool, bool); 6] = [
            (None, true, true),
            (Some(OsStr::new("")), true, true),
            (Some(OsStr::new("1")), true, false),
            (Some(OsStr::new("0")), true, false),
            (None, false, false),
            (Some(OsStr::new("1")), false, false),
        ];
        for (no_color, terminal, expected) in table {
            assert_eq!(super::colour_wanted(no_color, terminal), expected, "NO_COLOR={no_color:?} terminal={terminal}");
        }
    }
}
