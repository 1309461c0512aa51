//! Empty and malformed inputs that used to be taken silently (issue 11, item 10): an
//! empty `--root` (the current directory), and environment keys that are empty or hold
//! `=` or NUL, from `--env`, `--mask`, env files and HTTP `/exec` (`HOME=/evil` as a
//! key set `HOME`).

mod common;
mod serve_support;

use common::{Env, write_file};
use serve_support::Server;

#[test]
fn an_empty_root_is_a_usage_error_and_an_empty_variable_is_ignored() {
    let env = Env::new();
    for args in
        [&["--root", "", "list"][..], &["list", "--root", ""], &["list", "--root="], &["status", "--root", "", "X"]]
    {
        let message = env.usage(args);
        assert!(message.contains("--root"), "{message}");
    }
    let env = env.with_env("AGENT_EXEC_ROOT", "");
    let list = env.ok(&["list"]);
    let default = env.home.join(".local/share/agent-exec/jobs");
    assert_eq!(list["root"], default.to_string_lossy().as_ref());
}

#[test]
fn env_keys_that_are_empty_or_hold_equals_are_refused_on_the_command_line() {
    let env = Env::new();
    for args in [
        &["run", "--env", "=x", "--", "true"][..],
        &["create", "--env", "", "--", "true"],
        &["run", "--mask", "", "--", "true"],
        &["run", "--mask", "A=B", "--", "true"],
    ] {
        let message = env.usage(args);
        assert!(message.contains("environment variable name"), "{message}");
    }
    assert!(!env.root.exists(), "a refused definition created the root");
    // A value may hold '=' and a bare key is an empty value, as 0.1.18 takes them.
    let run = env.ok(&["run", "--env", "K=a=b", "--env", "BARE", "--", "sh", "-c", "echo \"$K|$BARE|\""]);
    assert_eq!(run["snapshot"]["stdout_tail"], "a=b||");
}

#[test]
fn an_env_file_with_an_empty_key_fails_the_job_with_its_reason() {
    let env = Env::new();
    let file = env.path("bad.env");
    write_file(std::path::Path::new(&file), "A=1\n=x\n");
    let run = env.ok(&["run", "--env-file", &file, "--", "true"]);
    assert_eq!(run["state"], "failed", "{run}");
    let reason = run["error"].as_str().unwrap_or_default();
    assert!(reason.contains("bad.env") && reason.contains("line 2 has an empty variable name"), "{run}");
}

/// The reason is recorded in `state.json` and shown by `status`: a refused line is named
/// by its number, never quoted (the old reason quoted the whole "key" of a line without
/// `=`, and `TOKEN s3cr3t` followed by a NUL is a secret in a key).
#[test]
fn a_refused_env_file_line_is_never_quoted() {
    let env = Env::new();
    let file = env.path("secret.env");
    for (content, problem) in [
        ("# x\nK=V\nTOKEN s3cr3tvalue\0\n", "line 3 has a NUL in the variable name"),
        ("PASSWORD=s3cr3t\0value\n", "line 1 has a NUL in the value"),
    ] {
        write_file(std::path::Path::new(&file), content);
        let run = env.ok(&["run", "--env-file", &file, "--", "true"]);
        let id = run["job_id"].as_str().expect("id").to_string();
        let status = env.ok(&["status", &id]);
        let state = std::fs::read_to_string(env.job_dir(&id).join("state.json")).expect("state");
        for text in [run.to_string(), status.to_string(), state] {
            assert!(!text.contains("s3cr3t"), "the env file's content leaked: {text}");
            assert!(text.contains(problem), "{problem}: {text}");
        }
    }
}

/// An env file was read whole by the supervisor: a 64 MiB file (a log passed by mistake)
/// went into its memory before the exec refused it. Now it fails the job with a reason,
/// and the supervisor never reads past the bound.
#[test]
fn an_oversized_env_file_fails_the_job_with_its_reason() {
    let env = Env::new();
    let file = env.path("huge.env");
    let line = format!("A={}\n", "x".repeat(1 << 20));
    write_file(std::path::Path::new(&file), &line.repeat(64));
    let run = env.ok(&["run", "--wait", "--env-file", &file, "--", "true"]);
    assert_eq!(run["state"], "failed", "{run}");
    let reason = run["error"].as_str().unwrap_or_default();
    assert!(reason.contains("huge.env") && reason.contains("larger than"), "{run}");
}

#[test]
fn exec_refuses_env_keys_with_equals_nul_or_nothing() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    for body in [
        r#"{"command":["true"],"env":{"HOME=/evil":"x"}}"#,
        r#"{"command":["true"],"env":{"":"x"}}"#,
        r#"{"command":["true"],"env":{"A\u0000B":"x"}}"#,
        r#"{"command":["true"],"env":{"A":"x\u0000y"}}"#,
    ] {
        server.post("/exec", body).assert_error(400, "invalid_request");
    }
    assert!(
        !env.root.exists() || std::fs::read_dir(&env.root).map(|d| d.count()).unwrap_or(0) == 0,
        "a job was created"
    );
    let id = server.exec(r#"{"command":["sh","-c","echo \"$HOME|$K\""],"env":{"K":"a=b"},"wait":true}"#);
    assert_eq!(env.ok(&["tail", &id])["stdout_tail"], format!("{}|a=b", env.home.display()));
}

/// The reason a job could not start quoted the whole bad env-file line, escaped twice:
/// 800 KiB of control characters made the `failed` record larger than any reader
/// accepts, so it was never written and `run --wait --forever` waited for good. Reasons
/// are now cut to 1 KiB.
#[test]
fn a_huge_reason_to_fail_is_recorded_cut_short() {
    let env = Env::new();
    let file = env.path("bad.env");
    let mut line = vec![1u8; 800 * 1024];
    line.extend_from_slice(b"\0\n");
    std::fs::write(&file, line).expect("write env file");
    let args = ["run", "--wait", "--forever", "--env-file", &file, "--", "true"];
    let mut child = env.command(&args).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    let answered = common::eventually(std::time::Duration::from_secs(30), || matches!(child.try_wait(), Ok(Some(_))));
    if !answered {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    assert!(answered, "run --wait --forever did not answer");
    let run = common::single_json(&args, &out);
    assert_eq!(run["state"], "failed", "{run}");
    let reason = run["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("bad.env") && reason.len() <= 1024,
        "{} bytes: {}",
        reason.len(),
        &reason[..reason.len().min(200)]
    );
}
