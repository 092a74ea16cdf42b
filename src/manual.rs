//! The generated documentation: shell completions and man pages, both from the one clap
//! definition ([`crate::cli`]) and the one options table ([`crate::options::OPTIONS`]), so that
//! what `--help`, the completions and `man` say cannot drift from what the parser accepts.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use roff::{bold, italic, roman, Roff};

use crate::cli::{self, Shell};
use crate::options::{Kind, OptionDefault, OPTIONS};

/// The section-5 page of the network options.
pub const OPTIONS_PAGE: &str = "geneve-ovs-options.5";

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = cli::command();
    let name = cmd.get_name().to_string();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, name, out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, name, out),
    }
}

/// Writes geneve-ovs(1), one page per subcommand (geneve-ovs-status(1), ...) and
/// geneve-ovs-options(5) into `dir`; returns the files written.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = cli::command().disable_help_subcommand(true);
    // Gives every subcommand its display name (geneve-ovs-status), the page's title.
    cmd.build();
    let mut written = Vec::new();
    write_command_pages(&cmd, true, dir, &mut written)?;
    let options = dir.join(OPTIONS_PAGE);
    std::fs::write(&options, options_page())
        .with_context(|| format!("cannot write {}", options.display()))?;
    written.push(options);
    written.sort();
    Ok(written)
}

/// The page of `cmd` and, recursively, of its visible subcommands.
fn write_command_pages(
    cmd: &clap::Command,
    top: bool,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_command_pages(sub, false, dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let file = dir.join(man.get_filename());
    let mut page = Vec::new();
    render_command_page(&man, cmd, top, &mut page)
        .with_context(|| format!("cannot render {}", file.display()))?;
    std::fs::write(&file, page).with_context(|| format!("cannot write {}", file.display()))?;
    written.push(file);
    Ok(())
}

/// clap_mangen's sections, with EXIT STATUS, ENVIRONMENT and SEE ALSO as a man page has them
/// instead of clap's free-form text after the help.
fn render_command_page(
    man: &clap_mangen::Man,
    cmd: &clap::Command,
    top: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    let mut extra = Roff::new();
    let preformatted = |roff: &mut Roff, title: &str, text: &str| {
        roff.control("SH", [title]).control("nf", []);
        for line in text.lines().skip(1) {
            roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
        }
        roff.control("fi", []);
    };
    if top {
        preformatted(&mut extra, "EXIT STATUS", cli::EXIT_CODES);
        preformatted(&mut extra, "ENVIRONMENT", cli::ENVIRONMENT);
        extra.control("SH", ["SEE ALSO"]).text([roman(
            "geneve-ovs-options(5), podman-network-create(1), podman-systemd.unit(5), \
             netavark(1), ovs-vsctl(8)",
        )]);
    } else {
        if let Some(exit) = cmd.get_after_long_help() {
            let text = exit.to_string();
            let text = text.strip_prefix("Exit status: ").unwrap_or(&text);
            extra.control("SH", ["EXIT STATUS"]).text([roman(text)]);
        }
        extra
            .control("SH", ["SEE ALSO"])
            .text([roman("geneve-ovs(1), geneve-ovs-options(5)")]);
    }
    extra.to_writer(out)?;
    man.render_version_section(out)
}

fn kind_text(kind: Kind) -> String {
    match kind {
        Kind::Integer { min, max } => format!("an integer from {min} to {max}"),
        Kind::IntegerOrAuto { min, max } => format!("auto, or an integer from {min} to {max}"),
        Kind::Enum(words) => format!("one of: {}", words.join(", ")),
        Kind::Address => "an IPv4 or IPv6 address".to_string(),
        Kind::AddressList => "comma-separated IPv4/IPv6 addresses".to_string(),
        Kind::Bool => "true or false".to_string(),
        Kind::Path => "an absolute file path".to_string(),
        Kind::RemoteList => {
            "comma-separated IP addresses or tcp:IP:PORT, ssl:IP:PORT, unix:PATH remotes"
                .to_string()
        }
    }
}

/// geneve-ovs-options(5): every network option, from [`OPTIONS`].
pub fn options_page() -> String {
    let mut page = Roff::new();
    page.control(
        "TH",
        ["GENEVE-OVS-OPTIONS", "5", "", env!("CARGO_PKG_VERSION")],
    )
    .control("SH", ["NAME"])
    .text([roman(
        "geneve-ovs-options - the network options of the geneve-ovs podman network driver",
    )])
    .control("SH", ["SYNOPSIS"])
    .text([
        bold("podman network create --driver geneve-ovs"),
        roman(" [--opt "),
        italic("name"),
        roman("="),
        italic("value"),
        roman("]... "),
        italic("network"),
    ])
    .control("SH", ["DESCRIPTION"])
    .text([roman(
        "Each option is given with --opt name=value (or Options= in a quadlet .network \
             unit). Unknown options and values out of range are refused when the network is \
             created. create writes every resolved value back into the network, so that \
             podman network inspect shows what is in force. Options marked as the same on \
             every host must be given identically to every host of the overlay, and so must \
             the network name: the VNI and the default subnet are derived from it.",
    )])
    .control("SH", ["OPTIONS"]);
    for option in OPTIONS {
        page.control("TP", []).text([
            bold(option.name),
            roman("="),
            italic(kind_text(option.kind)),
        ]);
        page.text([roman(option.help)]);
        let default = match option.default {
            OptionDefault::Value("") => Some("empty".to_string()),
            OptionDefault::Value(value) => Some(value.to_string()),
            OptionDefault::Derived(how) => Some(how.to_string()),
            OptionDefault::None => None,
        };
        if let Some(default) = default {
            page.control("br", [])
                .text([roman(format!("Default: {default}."))]);
        }
    }
    page.control("SH", ["SEE ALSO"]).text([roman(
        "geneve-ovs(1), geneve-ovs-peers(1), podman-network-create(1), podman-systemd.unit(5)",
    )]);
    page.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_page_lists_every_option() {
        let page = options_page();
        assert!(page.contains(".TH GENEVE-OVS-OPTIONS 5"), "{page}");
        for option in OPTIONS {
            assert!(
                page.contains(&format!("\\fB{}\\fR", option.name)),
                "{}",
                option.name
            );
        }
    }

    #[test]
    fn completions_know_the_operator_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["status", "gc", "peers", "flows-only", "network-config-dir"] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }

    #[test]
    fn man_pages_are_written_per_command() {
        let dir = std::env::temp_dir().join(format!("geneve-ovs-man-{}", std::process::id()));
        let written = write_man_pages(&dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        let main = std::fs::read_to_string(dir.join("geneve-ovs.1")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        for want in [
            "geneve-ovs.1",
            "geneve-ovs-status.1",
            "geneve-ovs-gc.1",
            "geneve-ovs-peers.1",
            OPTIONS_PAGE,
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("manpages")), "{names:?}");
        assert!(main.contains(".SH \"EXIT STATUS\""), "{main}");
        assert!(
            main.contains(".SH ENVIRONMENT") && main.contains("GENEVE_OVS_RUNDIR"),
            "{main}"
        );
        assert!(!main.contains("EXTRA"), "{main}");
    }
}
