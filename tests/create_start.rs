//! `create` and `start` through the binary (docs/compatibility.md §8.2, §8.3, docs/decisions.md OP-1, OP-12):
//! what `create` persists, what `start` reads at start time, and every error path of the
//! created → running transition. Notifications and tags have their own files.

mod common;

use std::process::Stdio;

use common::{Env, describe, single_json, write_file};
use serde_json::{Value, json};

fn create(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["create"];
    all.extend_from_slice(args);
    let value = env.ok(&all);
    assert_eq!(value["type"], "create");
    assert_eq!(value["state"], "created");
    value["job_id"].as_str().expect("job_id").to_string()
}

#[test]
fn create_persists_the_definition_and_masks_env_vars() {
    let env = Env::new();
    let value = env.ok(&[
        "create",
        "--env",
        "FOO=bar",
        "--env",
        "SECRET=s3",
        "--env",
        "BARE",
        "--mask",
        "SECRET",
        "--tag",
        "ci",
        "--tag",
        "ci",
        "--tag",
        "b.x",
        "--timeout",
        "5000",
        "--kill-after",
        "7",
        "--progress-every",
        "9",
        "--no-inherit-env",
        "--env-file",
        "relative.env",
        "--notify-file",
        "/tmp/never.ndjson",
        "--shell-wrapper",
        "bash -c",
        "--cwd",
        "/definitely/missing/dir",
        "--",
        "make",
        "build",
    ]);
    let id = value["job_id"].as_str().expect("job_id");
    assert_eq!(id.len(), 26);
    assert_key_order(&value);
    assert_eq!(value["stdout_log_path"], format!("{}/{id}/stdout.log", env.root.display()));
    assert!(!value.to_string().contains("s3"), "secret leaked: {value}");

    let meta = env.read_json(id, "meta.json");
    assert_eq!(meta["command"], json!(["make", "build"]));
    assert_eq!(meta["env_keys"], json!(["FOO", "SECRET", "BARE"]));
    assert_eq!(meta["env_vars"], json!(["FOO=bar", "SECRET=***", "BARE"]));
    assert_eq!(meta["env_vars_runtime"], json!(["FOO=bar", "SECRET=s3", "BARE"]));
    assert_eq!(meta["mask"], json!(["SECRET"]));
    assert_eq!(meta["tags"], json!(["ci", "b.x"]));
    assert_eq!(meta["inherit_env"], false);
    assert_eq!(meta["env_files"], json!(["relative.env"]));
    assert_eq!(meta["timeout_ms"], 5000);
    assert_eq!(meta["kill_after_ms"], 7);
    assert_eq!(meta["progress_every_ms"], 9);
    assert_eq!(meta["shell_wrapper"], json!(["bash", "-c"]));
    // `--cwd` is not checked at creation.
    assert_eq!(meta["cwd"], "/definitely/missing/dir");
    assert_eq!(meta["notification"], json!({"notify_file": "/tmp/never.ndjson"}));

    let state = env.read_json(id, "state.json");
    assert_eq!(state["job"], json!({"id": id, "status": "created"}));
    assert_eq!(state["result"], json!({"exit_code": null, "signal": null, "duration_ms": null}));
    assert!(state.get("pid").is_none() && state.get("finished_at").is_none());
    for log in ["stdout.log", "stderr.log", "full.log"] {
        assert_eq!(std::fs::metadata(env.job_dir(id).join(log)).expect(log).len(), 0);
    }
    assert_eq!(env.ok(&["status", id])["state"], "created");
    // Nothing ran, so no notification fired.
    assert!(!std::path::Path::new("/tmp/never.ndjson").exists());
}

/// serde_json sorts object keys, so the order is checked on the re-serialised text of
/// a fresh `create` instead: the wire order is the contract's (docs/compatibility.md §8.2).
fn assert_key_order(value: &Value) {
    let env = Env::new();
    let out = env.run(&["create", "true"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let keys = ["schema_version", "ok", "type", "job_id", "state", "stdout_log_path", "stderr_log_path"];
    let positions: Vec<usize> = keys.iter().map(|k| text.find(&format!("\"{k}\":")).expect(k)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "key order: {text}");
    assert_eq!(value.as_object().map(|o| o.len()), Some(keys.len()));
}

#[test]
fn create_records_the_default_cwd_and_wrapper() {
    let env = Env::new();
    let id = create(&env, &["echo", "--wait"]);
    let meta = env.read_json(&id, "meta.json");
    // After the first command word, observe flags belong to the command.
    assert_eq!(meta["command"], json!(["echo", "--wait"]));
    assert_eq!(meta["cwd"], env.cwd.to_string_lossy().as_ref());
    assert_eq!(meta["shell_wrapper"], json!(["sh", "-lc"]));
    assert_eq!(meta["inherit_env"], true);
    assert!(meta.get("env_vars_runtime").is_none() && meta.get("env_vars").is_none());
    assert!(meta.get("notification").is_none());
}

#[test]
fn create_usage_errors() {
    let env = Env::new();
    for flags in [
        &["--wait"][..],
        &["--snapshot-after", "0"],
        &["--tail-lines", "1"],
        &["--max-bytes", "1"],
        &["--log", "x"],
        &["--wait-poll-ms", "5"],
        &["--until", "5"],
        &["--forever"],
        &["--tag", "bad_tag"],
        &["--timeout", "-1"],
        &["--inherit-env", "--no-inherit-env"],
        &["--output-match-type", "glob", "--output-pattern", "x"],
        &["--output-stream", "both", "--output-pattern", "x"],
        &["--output-match-type", "regex", "--output-pattern", "("],
    ] {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.push("true");
        env.usage(&args);
    }
    env.usage(&["create"]);
    assert!(!env.root.exists() || std::fs::read_dir(&env.root).expect("root").next().is_none());
}

#[test]
fn start_launches_the_stored_definition() {
    let env = Env::new();
    let id = create(
        &env,
        &["--env", "A=1", "--env", "SECRET=s3", "--mask", "SECRET", "--tag", "t1", "--", "echo \"$A $SECRET\"; exit 3"],
    );
    let value = env.ok(&["start", "--wait", &id]);
    assert_eq!(value["type"], "start");
    assert_eq!(value["job_id"], id.as_str());
    assert_eq!(value["state"], "exited");
    assert_eq!(value["exit_code"], 3);
    assert_eq!(value["tags"], json!(["t1"]));
    assert_eq!(value["env_vars"], json!(["A=1", "SECRET=***"]));
    assert_eq!(value["final_snapshot"]["stdout_tail"], "1 s3");
    assert!(value["finished_at"].is_string());
    assert!(value.get("snapshot").is_none());
    let state = env.read_json(&id, "state.json");
    assert_eq!(state["job"]["status"], "exited");
    assert!(state["job"]["started_at"].is_string());
}

#[test]
fn start_observe_options() {
    let env = Env::new();
    let id = create(&env, &["printf 'a\\nb\\nc\\n'"]);
    let value = env.ok(&["start", "--snapshot-after", "5000", "--tail-lines", "2", "--max-bytes", "100", &id]);
    // Without --wait the answer is `running` or, if the window saw the end, the outcome.
    assert!(matches!(value["state"].as_str(), Some("running" | "exited")), "{value}");
    assert_eq!(value["snapshot"]["stdout_tail"], "b\nc");
    assert!(value.get("final_snapshot").is_none());
    env.wait_job(&id);

    let id = create(&env, &["true"]);
    let value = env.ok(&["start", "--snapshot-after", "0", &id]);
    assert_eq!(value["state"], "running");
    assert!(value.get("snapshot").is_none());
    assert_eq!(value["waited_ms"], 0);
    assert_eq!(env.wait_job(&id)["state"], "exited");

    env.usage(&["start", "--until", "5", &id]);
    env.usage(&["start", "--forever", &id]);
    env.usage(&["start", "--wait", "--until", "5", "--forever", &id]);
    env.usage(&["start", "--env", "A=1", &id]);
    env.usage(&["start"]);
    env.err(&["start", "01NOSUCHJOB"], "job_not_found");
    env.err(&["start", ".."], "job_not_found");
}

#[test]
fn start_twice_and_start_of_a_running_or_run_job_are_invalid_state() {
    let env = Env::new();
    let release = env.path("release");
    let id = create(&env, &[&format!("while [ ! -e '{release}' ]; do sleep 0.02; done")]);
    assert_eq!(env.ok(&["start", "--snapshot-after", "0", &id])["state"], "running");
    let err = env.err(&["start", &id], "invalid_state");
    assert_eq!(
        err["error"]["message"],
        format!("invalid job state: job {id} is in 'running' state; only 'created' jobs can be started")
    );
    write_file(std::path::Path::new(&release), "");
    env.wait_job(&id);
    let prefix = &id[..20];
    let err = env.err(&["start", prefix], "invalid_state");
    assert!(err["error"]["message"].as_str().unwrap_or("").contains(&format!("job {prefix} is in 'exited' state")));

    let run_id = env.start_job(&["true"]);
    env.err(&["start", &run_id], "invalid_state");
}

#[test]
fn concurrent_starts_of_one_created_job_have_exactly_one_winner() {
    let env = Env::new();
    let id = create(&env, &["true"]);
    let args = ["start", "--snapshot-after", "0", id.as_str()];
    let children: Vec<_> = (0..4)
        .map(|_| env.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn"))
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().expect("wait")).collect();
    let mut winners = 0;
    for out in &outputs {
        let value = single_json(&args, out);
        if value["ok"] == true {
            winners += 1;
        } else {
            assert_eq!(value["error"]["code"], "invalid_state", "{}", describe(&args, out));
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(env.wait_job(&id)["state"], "exited");
}

#[test]
fn env_files_are_read_at_start_time() {
    let env = Env::new();
    let file = env.dir.path().join("job.env");
    write_file(&file, "A=before\n");
    let file_arg = file.to_string_lossy().into_owned();
    let id = create(&env, &["--env-file", &file_arg, "--env", "B=flag", "echo \"$A $B\""]);
    write_file(&file, "# changed\nA=after\nB=file\n");
    let value = env.ok(&["start", "--wait", &id]);
    // The file is read now, and --env entries still win over it.
    assert_eq!(value["final_snapshot"]["stdout_tail"], "after flag");

    // A file gone by start time fails the job, with the reason.
    let id = create(&env, &["--env-file", &env.path("gone.env"), "true"]);
    let value = env.ok(&["start", "--wait", &id]);
    assert_eq!(value["state"], "failed");
    assert!(value["error"].as_str().unwrap_or("").contains("gone.env"), "{value}");
}

#[test]
fn inherit_env_is_relative_to_the_start_caller() {
    let env = Env::new();
    let inherit = create(&env, &["echo \"[$CALLER_VAR]\""]);
    let sealed = create(&env, &["--no-inherit-env", "echo \"[$CALLER_VAR]\""]);
    // The variable exists only in the environment of `start`, not of `create`.
    for (id, expect) in [(&inherit, "[from-start]"), (&sealed, "[]")] {
        let args = ["start", "--wait", id.as_str()];
        let out = env.command(&args).env("CALLER_VAR", "from-start").output().expect("start");
        let value = single_json(&args, &out);
        assert_eq!(value["final_snapshot"]["stdout_tail"], expect, "{}", describe(&args, &out));
    }
}

#[test]
fn start_of_a_job_whose_cwd_vanished_fails_with_the_reason() {
    let env = Env::new();
    let dir = env.dir.path().join("doomed");
    std::fs::create_dir(&dir).expect("mkdir");
    let id = create(&env, &["--cwd", &dir.to_string_lossy(), "pwd"]);
    std::fs::remove_dir(&dir).expect("rmdir");
    let value = env.ok(&["start", "--wait", &id]);
    assert_eq!(value["state"], "failed");
    let error = value["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("doomed"), "{value}");
    let status = env.ok(&["status", &id]);
    assert_eq!(status["state"], "failed");
    assert_eq!(status["error"], error.as_str());
    let state: Value = env.read_json(&id, "state.json");
    assert!(state["finished_at"].is_string());
}

#[test]
fn start_reports_unreadable_files_as_internal_error() {
    let env = Env::new();
    let id = create(&env, &["true"]);
    std::fs::write(env.job_dir(&id).join("state.json"), "{").expect("corrupt");
    env.err(&["start", &id], "internal_error");
    let id = create(&env, &["true"]);
    std::fs::remove_file(env.job_dir(&id).join("meta.json")).expect("remove meta");
    env.err(&["start", &id], "internal_error");
}

/// A job defined from a working directory that no longer exists is refused: it was
/// recorded with cwd "/", where `start` then ran it (and `list` from "/" took it).
#[test]
fn a_deleted_working_directory_is_an_error_not_the_root() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    for args in [&["create", "--", "pwd"][..], &["run", "--snapshot-after", "0", "--", "pwd"], &["list"]] {
        let gone = env.dir.path().join("gone");
        std::fs::create_dir(&gone).expect("mkdir");
        let c_gone = std::ffi::CString::new(gone.to_str().expect("utf8")).expect("path");
        let mut command = env.command(args);
        command.current_dir(&gone);
        // SAFETY: only rmdir (async-signal-safe) between fork and exec, after the chdir.
        unsafe {
            command.pre_exec(move || {
                if libc::rmdir(c_gone.as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = command.output().expect("spawn");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
        assert_eq!(value["error"]["code"], "internal_error", "{args:?}: {value}");
        assert!(value["error"]["message"].as_str().unwrap_or("").contains("current working directory"), "{value}");
    }
    assert!(
        std::fs::read_dir(&env.root)
            .map_or(true, |d| d.filter_map(|e| e.ok()).all(|e| !e.path().join("meta.json").exists()))
    );
}
