//! The output contract at the edges: usage errors (exit 2, empty stdout), help and
//! version, error codes (exit 1, one JSON object), YAML output, and the exact shape of
//! responses decoded into mirror structs that reject unknown fields.

mod common;

use common::{Env, describe};
use serde::Deserialize;

#[test]
fn usage_errors_exit_2_with_empty_stdout() {
    let env = Env::new();
    for args in [
        &["run"][..],
        &["run", "--until", "5", "true"],
        &["run", "--forever", "true"],
        &["run", "--wait", "--until", "5", "--forever", "true"],
        &["run", "--inherit-env", "--no-inherit-env", "true"],
        &["run", "--tag", "bad_tag", "true"],
        &["run", "--tag", "a..b", "true"],
        &["run", "--timeout", "-1", "true"],
        &["run", "--timeout", "abc", "true"],
        &["run", "--timeout", "1", "--timeout", "2", "true"],
        &["run", "--output-match-type", "glob", "true"],
        &["run", "--output-stream", "STDOUT", "true"],
        &["run", "--output-match-type", "regex", "--output-pattern", "(unclosed", "true"],
        &["create", "--wait", "true"],
        &["create", "--snapshot-after", "1", "true"],
        &["status"],
        &["status", "a", "b"],
        &["tail", "--bogus", "X"],
        &["tail", "--tail-lines", "1.5", "X"],
        &["kill", "--signal", "BOGUS", "X"],
        &["kill", "--signal", "65", "X"],
        &["list", "--all", "--cwd", "/"],
        &["list", "--tag", "*"],
        &["list", "--tag", "a.*.b"],
        &["list", "--state", "Running"],
        &["list", "--limit", "-3"],
        &["--yaml", "--yaml", "list"],
        &["list", "--root", "a", "--root", "b"],
        &["tag", "X"],
        &["notify", "get", "X"],
        &["wait", "--forever", "--until", "1", "X"],
        &["frobnicate"],
        &["status", "-x", "X"],
        &["serve", "--port", "70000"],
    ] {
        env.usage(args);
    }
}

#[test]
fn no_subcommand_prints_help_on_stderr() {
    let env = Env::new();
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Commands:"));
}

#[test]
fn help_and_version_go_to_stdout() {
    let env = Env::new();
    for args in [&["--help"][..], &["-h"], &["help"], &["run", "--help"], &["help", "run"], &["list", "-h"]] {
        let out = env.run(args);
        assert!(out.status.success(), "{}", describe(args, &out));
        assert!(out.stderr.is_empty());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: agent-exec"), "{}", describe(args, &out));
    }
    let top = String::from_utf8_lossy(&env.run(&["--help"]).stdout).into_owned();
    for command in ["create", "start", "run", "status", "tail", "wait", "kill", "delete", "gc", "schema", "list"] {
        assert!(top.contains(command), "{command} missing from --help");
    }
    assert!(!top.contains("__supervise"));
    for args in [&["--version"][..], &["-V"]] {
        let out = env.run(args);
        assert_eq!(out.stdout, b"agent-exec 0.2.0 (compatible with agent-exec 0.1.18, schema 0.1)\n");
        assert!(out.status.success());
    }
}

#[test]
fn help_works_whatever_the_environment() {
    let env = Env::new().with_env("AGENT_EXEC_ROOT", "/proc/nonexistent/root").with_env("HOME", "/nonexistent");
    let out = env.run(&["status", "--help"]);
    assert!(out.status.success());
}

#[test]
fn error_codes_and_messages() {
    let env = Env::new();
    let value = env.err(&["status", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"], "job_not_found");
    assert_eq!(value["error"]["message"], "job not found: 01ZZZZZZZZZZZZZZZZZZZZZZZZ");
    for id in ["..", ".", "../x", "/etc", "%2F", "a b", "01ZZZZZZZZZZZZZZZZZZZZZZZZZ"] {
        env.err(&["status", id], "job_not_found");
    }
}

#[test]
fn yaml_output_parses_and_matches_json() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "printf 'a: b\\n- c\\n'; printf 'x\\ty\\r\\n' >&2"]);
    env.wait_job(&id);
    for args in [&["status", &id][..], &["tail", &id], &["list"], &["wait", &id]] {
        let json = env.ok(args);
        let mut with_yaml = args.to_vec();
        with_yaml.push("--yaml");
        let out = env.run(&with_yaml);
        assert!(out.status.success(), "{}", describe(&with_yaml, &out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.starts_with("---"));
        let yaml: serde_json::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("YAML does not parse ({e}):\n{text}"));
        assert_eq!(yaml, json, "YAML and JSON differ for {args:?}:\n{text}");
    }
    let error = env.run(&["--yaml", "status", "NOPE"]);
    assert_eq!(error.status.code(), Some(1));
    let yaml: serde_json::Value = serde_yaml_ng::from_slice(&error.stdout).expect("error YAML parses");
    assert_eq!(yaml["error"]["code"], "job_not_found");
    assert!(String::from_utf8_lossy(&error.stdout).contains("schema_version: '0.1'"));
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct StatusResponse {
    schema_version: String,
    ok: bool,
    #[serde(rename = "type")]
    kind: String,
    job_id: String,
    state: String,
    exit_code: Option<i32>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    signal: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TailResponse {
    schema_version: String,
    ok: bool,
    #[serde(rename = "type")]
    kind: String,
    job_id: String,
    stdout_tail: String,
    stderr_tail: String,
    truncated: bool,
    encoding: String,
    stdout_log_path: String,
    stderr_log_path: String,
    stdout_observed_bytes: u64,
    stderr_observed_bytes: u64,
    stdout_included_bytes: u64,
    stderr_included_bytes: u64,
}

#[test]
fn response_shapes_have_exactly_the_contract_fields_in_order() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "echo out; exit 4"]);
    env.wait_job(&id);
    let status_out = env.run(&["status", &id]);
    let status: StatusResponse = serde_json::from_slice(&status_out.stdout).expect("status shape");
    assert_eq!((status.schema_version.as_str(), status.ok, status.kind.as_str()), ("0.1", true, "status"));
    assert_eq!((status.job_id.as_str(), status.state.as_str(), status.exit_code), (id.as_str(), "exited", Some(4)));
    assert!(status.started_at.is_some() && status.finished_at.is_some() && status.signal.is_none());
    assert!(status.error.is_none());
    assert_eq!(status.created_at.len(), 20);
    let text = String::from_utf8_lossy(&status_out.stdout);
    assert!(text.starts_with(r#"{"schema_version":"0.1","ok":true,"type":"status","job_id":"#), "{text}");

    let tail: TailResponse = serde_json::from_slice(&env.run(&["tail", &id]).stdout).expect("tail shape");
    assert_eq!((tail.stdout_tail.as_str(), tail.stderr_tail.as_str(), tail.truncated), ("out", "", false));
    assert_eq!((tail.stdout_observed_bytes, tail.stdout_included_bytes), (4, 3));
    assert_eq!((tail.stderr_observed_bytes, tail.stderr_included_bytes), (0, 0));
    assert_eq!(tail.encoding, "utf-8-lossy");
    assert!(tail.stdout_log_path.ends_with(&format!("{id}/stdout.log")));
    assert!(tail.stderr_log_path.starts_with('/'));
    let _ = (tail.schema_version, tail.ok, tail.kind, tail.job_id);
}

#[test]
fn complete_protocol_never_runs_a_command() {
    // With `COMPLETE` set the binary only completes: words without `--` get the
    // registration script, and nothing is run or created.
    let env = Env::new().with_env("COMPLETE", "bash");
    let out = env.run(&["run", "touch", "should-not-exist"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("complete -o bashdefault"));
    assert!(!env.cwd.join("should-not-exist").exists());
    assert!(!env.root.exists());
    let env = Env::new().with_env("COMPLETE", "0");
    env.ok(&["list"]);
}

/// An answer that cannot be written (stdout on a full device, or a pipe whose reader
/// is gone), the followed output of `tail --follow` too, exited 0, so a caller took the lost answer for a success. It is exit 1 with
/// a message on stderr now, whatever the job's own status.
#[test]
fn a_lost_answer_is_exit_1() {
    let env = Env::new();
    let id = env.start_job(&["echo hi"]);
    env.wait_job(&id);
    let lost = |args: &[&str], stdout: std::process::Stdio| {
        let out = env.command(args).stdout(stdout).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{}", describe(args, &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("could not write the answer"), "{}", describe(args, &out));
    };
    let lost_answers = [
        &["tail", &id][..],
        &["status", &id],
        &["wait", "--exit-code", &id],
        &["--version"],
        &["status", "nope"],
        &["tail", "--follow", &id],
        &["tail", "--follow", "--json", &id],
    ];
    for args in lost_answers {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full");
        lost(args, full.into());
        // A pipe whose read end is already closed: the write fails with EPIPE.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        lost(args, writer.into());
    }
    // An answer that is written keeps its exit status.
    assert_eq!(env.answer(&["status", &id]).1, 0);
}

/// stdout and stderr both closed pipes (`agent-exec list 2>&1 | true` after `true` has
/// gone): the answer is lost and so is the message about it, and the exit status is all
/// that is left. It must say 1, not an abort (134: `eprintln!` panicked on the closed
/// stderr).
#[test]
fn a_lost_answer_with_stderr_gone_too_exits_1() {
    let env = Env::new();
    for args in [&["list"][..], &["status", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"], &["no-such-command"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let stderr = writer.try_clone().expect("clone");
        let status = env.command(args).stdout(writer).stderr(stderr).status().expect("run");
        let expected = if args[0] == "no-such-command" { 2 } else { 1 };
        assert_eq!(status.code(), Some(expected), "{args:?}: {status:?}");
    }
}
