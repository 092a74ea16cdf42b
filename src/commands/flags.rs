//! The flags of the operator commands (`status`, `gc`). The plugin commands take none: netavark
//! calls them with fixed arguments.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// The flags an operator command was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub json: bool,
    pub dry_run: bool,
    /// `gc --flows-only`: restore the OpenFlow tables, remove nothing.
    pub flows_only: bool,
    pub help: bool,
    pub network_config_dir: Option<PathBuf>,
    pub netns_dirs: Vec<PathBuf>,
    pub positional: Vec<String>,
}

/// Parses `args`, accepting only the flags in `allowed` (e.g. `["--json", "--dry-run"]`) and at
/// most `max_positional` other arguments. `--flag=value` and `--flag value` both work.
pub fn parse(args: &[&str], allowed: &[&str], max_positional: usize) -> Result<Flags> {
    let mut flags = Flags::default();
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        if arg == "-h" || arg == "--help" {
            flags.help = true;
            continue;
        }
        if !arg.starts_with('-') || arg == "-" {
            if flags.positional.len() == max_positional {
                bail!("unexpected argument {arg:?}");
            }
            flags.positional.push(arg.to_string());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg, None),
        };
        if !allowed.contains(&name) {
            bail!("unknown flag {name:?} (accepted: {})", allowed.join(", "));
        }
        let mut value = || -> Result<String> {
            match inline {
                Some(v) => Ok(v.to_string()),
                None => rest
                    .next()
                    .map(|v| v.to_string())
                    .with_context(|| format!("{name} needs a value")),
            }
        };
        match name {
            "--json" => flags.json = true,
            "--dry-run" => flags.dry_run = true,
            "--flows-only" => flags.flows_only = true,
            "--network-config-dir" => flags.network_config_dir = Some(PathBuf::from(value()?)),
            "--netns-dir" => flags.netns_dirs.push(PathBuf::from(value()?)),
            _ => bail!("flag {name} is accepted but not handled"),
        }
        if inline.is_some() && matches!(name, "--json" | "--dry-run" | "--flows-only") {
            bail!("{name} takes no value");
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[&str] = &["--json", "--dry-run", "--network-config-dir", "--netns-dir"];

    #[test]
    fn parses_flags_and_values() {
        let f = parse(
            &[
                "--json",
                "net1",
                "--network-config-dir",
                "/x",
                "--netns-dir=/a",
                "--dry-run",
            ],
            ALL,
            1,
        )
        .unwrap();
        assert!(f.json && f.dry_run && !f.help);
        assert_eq!(f.positional, ["net1"]);
        assert_eq!(f.network_config_dir, Some(PathBuf::from("/x")));
        assert_eq!(f.netns_dirs, [PathBuf::from("/a")]);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for (args, want) in [
            (&["--bogus"][..], "unknown flag"),
            (&["--dry-run"][..], "unknown flag"),
            (&["a", "b"][..], "unexpected argument \"b\""),
            (&["--network-config-dir"][..], "needs a value"),
        ] {
            let err = parse(args, &["--json", "--network-config-dir"], 1).unwrap_err();
            assert!(err.to_string().contains(want), "{args:?}: {err}");
        }
        assert!(parse(&["--json=1"], ALL, 0).is_err());
        assert!(parse(&["-h"], ALL, 0).unwrap().help);
    }
}
