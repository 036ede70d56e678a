//! The `eiam-operator` binary: with no subcommand it runs the operator; `eiam-operator eiam ...` is the admin CLI;
//! `eiam-operator status|rotate NAME` (or `kubectl eiam status|rotate NAME`, installed as `kubectl-eiam`) show and
//! rotate one `ApplicationClientSecret`.

use clap::{Parser, Subcommand};
use eiam_operator::operator::{self, RunArgs};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "eiam-operator",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

// Parsed once at start and dropped: the size of the `run` variant's flags costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (the default when no subcommand is given).
    Run(RunArgs),
    /// Call the EIAM client-secret actions directly (check credentials and RAM permissions).
    Eiam(eiam_operator::cli::EiamArgs),
    /// Show an ApplicationClientSecret: conditions, secrets, expiry, its Secret and recent events.
    Status(eiam_operator::cli::StatusArgs),
    /// Rotate ApplicationClientSecrets now, optionally waiting until the new secret is published.
    Rotate(eiam_operator::cli::RotateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None => runtime.block_on(operator::run(cli.run)),
        Some(Command::Run(args)) => runtime.block_on(operator::run(args)),
        Some(Command::Eiam(args)) => return runtime.block_on(eiam_operator::cli::run_eiam(args)),
        Some(Command::Status(args)) => {
            return runtime.block_on(eiam_operator::cli::run_status(args));
        }
        Some(Command::Rotate(args)) => {
            return runtime.block_on(eiam_operator::cli::run_rotate(args));
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
