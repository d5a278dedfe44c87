use std::process::ExitCode;

fn main() -> ExitCode {
    agentmesh::cli::run()
}
