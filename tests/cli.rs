//! The command line as a person and as netavark meet it, through the real binary: help and
//! version, plain-word errors on stderr and JSON only on request, the documented exit codes, the
//! generated completions and man pages; and the plugin protocol's answers unchanged.
//!
//! No OVS is needed: the commands that would reach it are pointed at a socket that does not
//! exist, inside a directory this test creates and removes.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_geneve-ovs");

/// A private scratch directory, removed when dropped (also when a test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("geneve-ovs-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str], stdin: &str, scratch: &Scratch) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .env("OVS_RUNDIR", scratch.0.join("no-ovs"))
        .env("GENEVE_OVS_RUNDIR", scratch.0.join("run"))
        .env("GENEVE_OVS_NETWORK_CONFIG_DIR", scratch.0.join("networks"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn geneve-ovs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one `{"error": ...}` object of the plugin protocol.
fn json_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON on stdout");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 1, "{v}");
    obj["error"].as_str().expect("error string").to_string()
}

#[test]
fn help_and_version_read_like_a_system_tool() {
    let s = Scratch::new("help");
    let out = run(&["--help"], "", &s);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for want in [
        "Usage: geneve-ovs <COMMAND>",
        "status",
        "gc",
        "peers",
        "completions",
        "Exit status:",
        "64",
        "GENEVE_OVS_NETWORK_CONFIG_DIR",
    ] {
        assert!(help.contains(want), "{want:?} missing from:\n{help}");
    }
    let out = run(&["peers", "--help"], "", &s);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for want in ["Usage: geneve-ovs peers", "list", "add", "remove", "--json"] {
        assert!(help.contains(want), "{want:?} missing from:\n{help}");
    }
    let out = run(&["gc", "--help"], "", &s);
    assert!(text(&out.stdout).contains("--flows-only"));
    // A plugin command's help is answered too, not taken for a netns path.
    let out = run(&["setup", "--help"], "", &s);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Usage: geneve-ovs setup <NETNS>"));

    let out = run(&["--version"], "", &s);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("geneve-ovs {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn operator_errors_are_words_on_stderr_and_json_on_request() {
    let s = Scratch::new("errors");
    // No OVS: exit 1, a sentence on stderr naming what to do, nothing on stdout.
    let out = run(&["status"], "", &s);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("geneve-ovs: error: cannot connect to the OVSDB server"),
        "{stderr}"
    );
    assert!(!stderr.contains("{\"error\""), "{stderr}");
    // With --json, the same error as the one JSON object on stdout.
    let err = json_error(&run(&["status", "--json"], "", &s));
    assert!(err.contains("cannot connect to the OVSDB server"), "{err}");
    let err = json_error(&run(&["gc", "--json", "--dry-run"], "", &s));
    assert!(err.contains("OVSDB") || err.contains("lock"), "{err}");

    // A wrong command line: exit 64, clap's explanation on stderr.
    for args in [
        &["status", "--bogus"][..],
        &["gc", "--dry-run", "--flows-only"][..],
        &["peers", "net1", "add"][..],
        &["frobnicate"][..],
        &[][..],
    ] {
        let out = run(args, "", &s);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn the_plugin_protocol_is_unchanged() {
    let s = Scratch::new("plugin");
    let out = run(&["info"], "", &s);
    assert_eq!(out.status.code(), Some(0));
    let info: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(info["api_version"], "1.0.0");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    // Errors of netavark's commands are always the JSON object on stdout, exit 1.
    assert!(json_error(&run(&["create"], "", &s)).contains("expected network as JSON"));
    assert!(json_error(&run(&["setup"], "", &s)).contains("needs the container's netns path"));
    assert!(json_error(&run(&["teardown"], "", &s)).contains("needs the container's netns path"));
    assert!(json_error(&run(&["setup", "/nonexistent/ns"], "{", &s)).contains("JSON"));
}

#[test]
fn completions_and_man_pages_come_from_the_same_definitions() {
    let s = Scratch::new("docs");
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell], "", &s);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        for word in ["peers", "flows-only", "network-config-dir"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let dir = s.0.join("man");
    let out = run(&["manpages", dir.to_str().unwrap()], "", &s);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for page in [
        "geneve-ovs.1",
        "geneve-ovs-status.1",
        "geneve-ovs-gc.1",
        "geneve-ovs-peers.1",
        "geneve-ovs-options.5",
    ] {
        let body = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(
            body.starts_with(".ie") || body.contains(".TH"),
            "{page}: {body:.80}"
        );
    }
    let options = std::fs::read_to_string(dir.join("geneve-ovs-options.5")).unwrap();
    for option in ["peers", "vni", "hosts", "dst_port"] {
        assert!(options.contains(&format!("\\fB{option}\\fR")), "{option}");
    }
}
