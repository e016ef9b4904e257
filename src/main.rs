//! The `facegate` binary: parse the command line, run the command, turn errors into one line on
//! stderr and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("facegate: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
