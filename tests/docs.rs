//! The man pages against the binary: every flag `agent-exec help <command>` shows is in
//! that command's page, and groff reads every page without a warning. (That the pages
//! match the flag table is a unit test in src/cli/man.rs.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn read_page(name: &str) -> String {
    let path = man_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The long flags a help text mentions, aliases included.
fn flags_in(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// The subcommands the top-level help lists, as typed (`tag`, not `tag set`).
fn subcommands(env: &Env) -> Vec<String> {
    let help = String::from_utf8(env.run(&["--help"]).stdout).expect("utf-8 help");
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_flag_the_binary_accepts_is_in_its_man_page() {
    let env = Env::new();
    let commands = subcommands(&env);
    assert!(commands.len() >= 15, "top-level help lists too few commands: {commands:?}");
    let overview = read_page("agent-exec.1");
    let top_help = String::from_utf8(env.run(&["--help"]).stdout).expect("utf-8");
    for flag in flags_in(&top_help) {
        assert!(overview.contains(&flag.replace('-', "\\-")), "agent-exec.1 lacks {flag}");
    }
    for command in commands {
        let out = env.run(&["help", &command]);
        assert!(out.status.success(), "help {command} failed");
        let help = String::from_utf8(out.stdout).expect("utf-8");
        let page_name = format!("agent-exec-{command}.1");
        let page = read_page(&page_name);
        let flags = flags_in(&help);
        assert!(flags.iter().any(|f| f == "--help"), "help {command} lists no flags: {help}");
        for flag in flags {
            assert!(page.contains(&flag.replace('-', "\\-")), "{page_name} lacks {flag}");
        }
        assert!(overview.contains(&format!(".BR {} (1)", page_name.trim_end_matches(".1").replace('-', "\\-"))));
    }
    assert!(overview.contains("agent\\-exec\\-jobstore (5)"));
}

#[test]
fn groff_reads_every_page_without_warnings() {
    if !common::available(
        Command::new("groff").arg("--version").output().is_ok(),
        "groff (.ci/deps installs groff-base)",
    ) {
        return;
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(man_dir())
        .expect("man/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "1" || x == "5"))
        .collect();
    pages.sort();
    assert!(pages.len() >= 18, "expected at least 18 pages, found {}", pages.len());
    for page in pages {
        let out = Command::new("groff").args(["-man", "-ww", "-z"]).arg(&page).output().expect("run groff");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "groff warns about {}:\n{stderr}", page.display());
    }
}

/// `make demo`'s script prints plain text when its output is not a terminal (no ANSI
/// escapes in a log or a pipe), and runs a real job to the end.
#[test]
fn demo_output_is_plain_when_piped() {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh"))
        .arg(common::BIN)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .expect("run demo.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!out.stdout.contains(&0x1b), "ANSI escape in piped demo output");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"state\":\"exited\""));
}
