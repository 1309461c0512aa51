//! `make install` and `make uninstall` into a temporary DESTDIR: the binary, every man
//! page and the three completion scripts land in the conventional places, and uninstall
//! removes exactly those files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn make(args: &[&str]) -> std::process::Output {
    Command::new("make")
        .arg("--no-print-directory")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run make")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() { pending.push(path) } else { found.push(path) }
        }
    }
    found.sort();
    found
}

#[test]
fn make_install_and_uninstall_into_a_destdir() {
    if !common::available(Command::new("make").arg("--version").output().is_ok(), "make (.ci/deps installs it)") {
        return;
    }
    let dest = tempfile::tempdir().expect("temp dir");
    let destdir = format!("DESTDIR={}", dest.path().display());
    let bin = format!("BIN={}", common::BIN);
    let out = make(&["install", "NO_BUILD=1", &bin, "PREFIX=/opt/ae", &destdir]);
    assert!(out.status.success(), "make install failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let prefix = dest.path().join("opt/ae");
    let binary = prefix.join("bin/agent-exec");
    let version = Command::new(&binary).arg("--version").output().expect("run installed binary");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        "agent-exec 0.2.0 (compatible with agent-exec 0.1.18, schema 0.1)\n"
    );
    let man_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for entry in std::fs::read_dir(&man_dir).expect("man/") {
        let path = entry.expect("entry").path();
        let Some(section) = path.extension().and_then(|e| e.to_str()).filter(|e| *e == "1" || *e == "5") else {
            continue;
        };
        let installed = prefix.join(format!("share/man/man{section}")).join(path.file_name().expect("name"));
        assert_eq!(std::fs::read(&installed).ok(), std::fs::read(&path).ok(), "{} not installed", installed.display());
    }
    for (file, marker) in [
        ("share/bash-completion/completions/agent-exec", "complete -F _agent_exec agent-exec"),
        ("share/zsh/site-functions/_agent-exec", "#compdef agent-exec"),
        ("share/fish/vendor_completions.d/agent-exec.fish", "complete -c agent-exec"),
    ] {
        let text = std::fs::read_to_string(prefix.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(marker), "{file} is not the {marker:?} script");
    }
    let installed = files_under(dest.path());

    let out = make(&["uninstall", "PREFIX=/opt/ae", &destdir]);
    assert!(out.status.success(), "make uninstall failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let left = files_under(dest.path());
    assert!(left.is_empty(), "uninstall left {left:?} of {installed:?}");
}
