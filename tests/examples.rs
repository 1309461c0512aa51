//! The shipped examples (issue 14 item 7) run against the built binary: the Makefile's
//! dev-up / dev-logs / dev-down / test targets and the fan-out script.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::{Env, describe};

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join(name).to_string_lossy().into_owned()
}

fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port().to_string()
}

#[test]
fn fan_out_fails_when_one_job_fails() {
    let env = Env::new().with_env("AE", common::BIN);
    let script = example("fan-out.sh");
    let args = [script.as_str(), "echo lint", "true", "sleep 0.2"];
    let run = |args: &[&str]| env.program("sh", args).output().expect("run fan-out.sh");
    let ok = run(&args);
    let answer: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("one JSON answer");
    assert_eq!(ok.status.code(), Some(0), "{}", describe(&args, &ok));
    assert_eq!(answer["summary"], serde_json::json!({"finished": 3, "running": 0, "failed_count": 0}));
    let failing = [script.as_str(), "true", "exit 3", "exit 4"];
    let failed = run(&failing);
    assert_eq!(failed.status.code(), Some(3), "{}", describe(&failing, &failed));
}

#[test]
fn makefile_targets() {
    let env = Env::new();
    let port = free_port();
    let makefile = example("Makefile");
    let make = |target: &str, extra: &[&str]| {
        let (ae, port_var) = (format!("AE={}", common::BIN), format!("PORT={port}"));
        let server = format!("SERVER={} serve --port {port}", common::BIN);
        let mut args = vec!["-s", "-f", makefile.as_str(), ae.as_str(), port_var.as_str(), server.as_str()];
        args.extend_from_slice(extra);
        args.push(target);
        env.program("make", &args)
    };
    let up = make("dev-up", &[]).output().expect("make dev-up");
    assert_eq!(up.status.code(), Some(0), "{}", String::from_utf8_lossy(&up.stderr));
    let first: serde_json::Value = serde_json::from_slice(&up.stdout).expect("JSON");
    assert_eq!(first["ready"], true, "{first}");
    // A second dev-up reuses the running server.
    let again = make("dev-up", &[]).output().expect("make dev-up");
    let second: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(second["job_id"], first["job_id"]);
    assert_eq!(env.ok(&["list"])["jobs"].as_array().map(Vec::len), Some(1));
    // dev-logs follows until dev-down stops the server.
    let logs = make("dev-logs", &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("make dev-logs");
    let down = make("dev-down", &[]).output().expect("make dev-down");
    assert_eq!(down.status.code(), Some(0), "{}", String::from_utf8_lossy(&down.stderr));
    let logs = logs.wait_with_output().expect("dev-logs ends");
    assert_eq!(logs.status.code(), Some(0));
    // test: the suite's exit status decides.
    let pass = make("test", &["TESTS=true"]).output().expect("make test");
    assert_eq!(pass.status.code(), Some(0));
    let fail = make("test", &["TESTS=exit 4"]).output().expect("make test");
    assert_ne!(fail.status.code(), Some(0), "a failing suite fails the target");
}

/// The README shows both examples as they are.
#[test]
fn the_readme_shows_the_examples() {
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    for name in ["Makefile", "fan-out.sh"] {
        let text = std::fs::read_to_string(example(name)).expect("example");
        assert!(readme.contains(&text), "README.md does not show examples/{name} as it is");
    }
}
