//! The `geneve-ovs` executable: netavark calls it with a subcommand and JSON on stdin.
//!
//! stdout carries exactly one JSON document: the answer, or `{"error": "..."}` with exit
//! code 1. Logs go to stderr, which podman shows to the user. The operator commands, `status`
//! and `gc`, print text or JSON and choose their exit code; their errors are framed the same
//! way.

use std::io::Write;
use std::panic;
use std::process::ExitCode;

use geneve_ovs::commands;
use geneve_ovs::types::PluginError;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    // A panic is a bug, but netavark must still get the one JSON error it expects; the
    // default hook would also print to stderr, which is fine.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(
        args.first().map(String::as_str),
        Some("-h" | "--help" | "help")
    ) {
        println!("{}", commands::USAGE);
        return ExitCode::SUCCESS;
    }
    if matches!(args.first().map(String::as_str), Some("-V" | "--version")) {
        println!("geneve-ovs {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let outcome = panic::catch_unwind(|| commands::run(&args)).unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "internal error: the plugin panicked (a bug)"
        ))
    });
    match outcome {
        Ok(reply) => {
            if let Some(text) = reply.stdout {
                if print(&text).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::from(reply.code)
        }
        Err(err) => {
            let error = PluginError {
                error: format!("{err:#}"),
            };
            let text = serde_json::to_string(&error)
                .unwrap_or_else(|_| r#"{"error":"unprintable error"}"#.to_string());
            let _ = print(&text);
            ExitCode::FAILURE
        }
    }
}

fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}
