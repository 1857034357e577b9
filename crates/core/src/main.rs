//! The `cairn` binary: parses the command line, sets up logging, runs the command, and
//! reports errors as `error: <message>` followed by their causes.
//!
//! Exit codes: 0 on success; 2 for configuration errors (and clap's usage errors); 1 for
//! everything else.

use anyhow::Context;
use cairn_core::cli::{self, Cli};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs each request at `info`; the other commands only warnings.
    let default_filter = match cli.command {
        cli::Command::Server(_) | cli::Command::Ui(_) => "info",
        _ => "warn",
    };
    init_logging(default_filter);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .downcast_ref::<cairn_core::Error>()
                .map_or(1, cairn_core::Error::exit_code);
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let dir = std::env::current_dir().context("cannot read the current directory")?;
    let mut stdout = std::io::stdout().lock();
    cli::run(cli, &dir, &mut stdout)?;
    Ok(())
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `default_filter`).
fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
