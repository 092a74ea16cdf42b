//! The `geneve-ovs` executable: the netavark plugin and the operator's command.
//!
//! netavark calls `info`, `create`, `setup NETNS` and `teardown NETNS` with JSON on stdin;
//! stdout carries exactly one JSON document: the answer, or `{"error": "..."}` with exit code 1.
//! Those invocations are dispatched exactly as they come, before any option parsing, so that the
//! protocol never changes with the command line. Everything else (`status`, `gc`, `peers`,
//! `completions`, `--help`, `--version`) goes through clap ([`geneve_ovs::cli`]): errors in
//! plain words on stderr, or as the same JSON on stdout with `--json`; the exit codes are
//! documented in `geneve-ovs --help`. Logs go to stderr, which podman shows to the user.

use std::ffi::OsString;
use std::io::Write;
use std::panic;
use std::process::ExitCode;

use clap::Parser;
use geneve_ovs::cli::{self, Cli, Command};
use geneve_ovs::commands::{self, Reply};
use geneve_ovs::types::PluginError;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    let args: Vec<OsString> = std::env::args_os().collect();
    if let Some(plugin_args) = plugin_invocation(&args) {
        return finish(guarded(|| commands::run_plugin(&plugin_args)), Errors::Json);
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are "errors" that print on stdout and succeed.
            let code = if err.use_stderr() {
                cli::EXIT_USAGE
            } else {
                cli::EXIT_OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let errors = if wants_json(&cli.command) {
        Errors::Json
    } else {
        Errors::Text
    };
    finish(guarded(|| commands::run_operator(&cli.command)), errors)
}

/// The arguments of a netavark plugin call (`info`, `create`, `setup NETNS`, `teardown NETNS`,
/// or any malformed call that starts with one of those words), without the program name; `None`
/// for everything else, and for `geneve-ovs setup --help` and the like, which clap answers.
fn plugin_invocation(args: &[OsString]) -> Option<Vec<String>> {
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let first = rest.first()?;
    if !cli::PLUGIN_COMMANDS.contains(&first.as_str()) {
        return None;
    }
    if rest[1..].iter().any(|a| a == "-h" || a == "--help") {
        return None;
    }
    Some(rest)
}

/// Whether the operator asked for JSON, errors included.
fn wants_json(command: &Command) -> bool {
    match command {
        Command::Status(a) => a.json,
        Command::Gc(a) => a.json,
        Command::Peers(a) => a.json,
        Command::Info | Command::Create | Command::Setup(_) | Command::Teardown(_) => true,
        Command::Completions(_) | Command::Manpages(_) => false,
    }
}

/// How a failed command reports its error.
#[derive(Clone, Copy)]
enum Errors {
    /// `{"error": "..."}` on stdout: the plugin protocol, and `--json`.
    Json,
    /// `geneve-ovs: error: ...` on stderr, for a person at a terminal.
    Text,
}

/// Runs `command`; a panic is a bug, but it still becomes the one error the caller expects (the
/// default hook also prints it on stderr, which is fine).
fn guarded(
    command: impl FnOnce() -> anyhow::Result<Reply> + panic::UnwindSafe,
) -> anyhow::Result<Reply> {
    panic::catch_unwind(command).unwrap_or_else(|_| {
        Err(anyhow::anyhow!(
            "internal error: geneve-ovs panicked (a bug)"
        ))
    })
}

fn finish(outcome: anyhow::Result<Reply>, errors: Errors) -> ExitCode {
    match outcome {
        Ok(reply) => {
            if let Some(text) = reply.stdout {
                if print(&text).is_err() {
                    return ExitCode::from(cli::EXIT_FAILURE);
                }
            }
            ExitCode::from(reply.code)
        }
        Err(err) => {
            match errors {
                Errors::Json => {
                    let error = PluginError {
                        error: format!("{err:#}"),
                    };
                    let text = serde_json::to_string(&error)
                        .unwrap_or_else(|_| r#"{"error":"unprintable error"}"#.to_string());
                    let _ = print(&text);
                }
                Errors::Text => {
                    let _ = writeln!(std::io::stderr().lock(), "geneve-ovs: error: {err:#}");
                }
            }
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}

fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}
