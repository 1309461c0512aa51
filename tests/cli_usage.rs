//! The output contract at the edges: usage errors (exit 2, empty stdout), help and
//! version, error codes (exit 1, one JSON object), YAML output, the exact shape of
//! responses decoded into mirror structs that reject unknown fields, and answers that
//! are lost (exit 1) or meet a non-blocking stdout (written whole).

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

/// stdout a pipe whose file description is non-blocking (an event-loop harness sets
/// O_NONBLOCK on its end, and the flag is shared with ours): an answer larger than the
/// pipe's room was cut where the pipe was full, with "Resource temporarily unavailable"
/// and exit 1. Every writer of stdout must wait for room instead: the one answer of
/// `list` (buffered), of `--yaml` and `tail` (one write), the stream of `tail --follow`,
/// raw and NDJSON, and `mcp`'s messages (a cut line there was a silent exit 0).
#[test]
fn answers_larger_than_a_non_blocking_pipe_are_written_whole() {
    let env = Env::new();
    // A 2 KiB tag makes each job's entry in `list` that large: 100 jobs answer about
    // 200 KiB, three times a default pipe.
    let tag = "t".repeat(2048);
    for _ in 0..100 {
        env.ok(&["create", "--tag", &tag, "--", "true"]);
    }
    let id = env.start_job(&["seq 1 40000"]);
    env.wait_job(&id);
    let log = std::fs::read(env.job_dir(&id).join("stdout.log")).expect("read stdout.log");
    assert!(log.len() > 128 * 1024, "the job's log must be larger than a pipe");

    for args in [
        &["list", "--all"][..],
        &["--yaml", "list", "--all"],
        &["tail", "--tail-lines", "0", "--max-bytes", "1000000", &id],
    ] {
        let (status, stdout, stderr) = through_a_non_blocking_pipe(env.command(args));
        assert_eq!(status, Some(0), "{args:?}: {stderr}");
        assert!(stdout.len() > 128 * 1024, "{args:?}: only {} bytes", stdout.len());
        let value: serde_json::Value = if args[0] == "--yaml" {
            serde_yaml_ng::from_slice(&stdout).unwrap_or_else(|e| panic!("{args:?}: not one YAML answer: {e}"))
        } else {
            serde_json::from_slice(&stdout).unwrap_or_else(|e| panic!("{args:?}: not one JSON answer: {e}"))
        };
        assert_eq!(value["ok"], true, "{args:?}");
        if args.contains(&"list") {
            assert_eq!(value["jobs"].as_array().map(Vec::len), Some(101), "{args:?}");
        }
    }

    let (status, stdout, stderr) =
        through_a_non_blocking_pipe(env.command(&["tail", "--follow", "--tail-lines", "0", &id]));
    assert_eq!(status, Some(0), "tail --follow: {stderr}");
    assert!(stdout == log, "tail --follow: {} bytes of the log's {}", stdout.len(), log.len());

    let (status, stdout, stderr) =
        through_a_non_blocking_pipe(env.command(&["tail", "--follow", "--json", "--tail-lines", "0", &id]));
    assert_eq!(status, Some(0), "tail --follow --json: {stderr}");
    let mut data = String::new();
    for line in String::from_utf8(stdout).expect("UTF-8").lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("tail --follow --json: a cut record ({e}): {line}"));
        data.push_str(record["data"].as_str().expect("data"));
    }
    assert!(
        data.as_bytes() == log,
        "tail --follow --json: the records hold {} bytes of the log's {}",
        data.len(),
        log.len()
    );

    // `mcp`: the `list` tool's result is one message line over 128 KiB; stdin's end of
    // file lets the call finish and then ends the server.
    let messages = [
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list", "arguments": {"all": true}}}),
    ];
    let input = env.dir.path().join("mcp-input");
    std::fs::write(&input, messages.iter().map(|m| format!("{m}\n")).collect::<String>()).expect("write mcp input");
    let mut command = env.command(&["mcp"]);
    command.stdin(std::fs::File::open(&input).expect("open mcp input"));
    let (status, stdout, stderr) = through_a_non_blocking_pipe(command);
    assert_eq!(status, Some(0), "mcp: {stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("mcp: a cut message ({e}): {} bytes", line.len()))
        })
        .collect();
    let listed = lines.iter().find(|m| m["id"] == 2).expect("the list call's answer");
    assert_eq!(listed["result"]["structuredContent"]["jobs"].as_array().map(Vec::len), Some(101), "mcp");
}

/// Runs `command` with stdout the write end of a pipe made non-blocking, and reads the pipe
/// only once it is full (or the child has exited), so that the writer meets EAGAIN. Full
/// is judged by poll(2) on a copy of the write end, as the writer's kernel judges it: a
/// pipe counts its room in pages, which small writes leave partly empty, so the bytes
/// queued say nothing. Returns the exit status, everything written and stderr.
fn through_a_non_blocking_pipe(mut command: std::process::Command) -> (Option<i32>, Vec<u8>, String) {
    use std::io::Read;
    use std::os::fd::AsRawFd;

    let (mut reader, writer) = std::io::pipe().expect("pipe");
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(writer.as_raw_fd(), libc::F_GETFL);
        assert!(flags >= 0 && libc::fcntl(writer.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == 0);
    }
    let probe = writer.try_clone().expect("dup the write end");
    command.stdout(writer).stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("spawn agent-exec");
    let what = format!("{command:?}");
    // The command holds our copy of the write end: without dropping it, no end of file.
    drop(command);
    let full = common::eventually(std::time::Duration::from_secs(30), || {
        let mut pollfd = libc::pollfd { fd: probe.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
        // SAFETY: poll(2) on one pollfd, without waiting.
        let polled = unsafe { libc::poll(&raw mut pollfd, 1, 0) };
        (polled == 0) || matches!(child.try_wait(), Ok(Some(_)))
    });
    assert!(full, "{what}: the pipe never filled");
    drop(probe);
    let mut stdout = Vec::new();
    reader.read_to_end(&mut stdout).expect("read the pipe");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    (child.wait().expect("wait").code(), stdout, stderr)
}
