//! Storage faults: a root that cannot be created or is a file, a write limit hit while
//! creating a job, a job directory deleted under a running job, and garbage state files.
//! Each must give a clear JSON error, leave no torn or half-created files, and leave the
//! other jobs alone.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::{Env, alive, eventually, single_json};

#[test]
fn a_root_that_cannot_be_created_is_an_internal_error() {
    let env = Env::new().with_env("AGENT_EXEC_ROOT", "/proc/agent-exec-test/jobs");
    let error = env.err(&["run", "--", "true"], "internal_error");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("/proc/agent-exec-test/jobs")));
    env.err(&["status", "01ABC"], "job_not_found");
    assert_eq!(env.ok(&["list"])["jobs"], serde_json::json!([]));
}

#[test]
fn a_root_that_is_a_file() {
    let env = Env::new();
    std::fs::write(&env.root, "not a directory").expect("write");
    env.err(&["run", "--", "true"], "internal_error");
    env.err(&["list"], "internal_error");
    env.err(&["status", "01ABC"], "job_not_found");
    assert_eq!(std::fs::read_to_string(&env.root).expect("read"), "not a directory");
}

#[test]
fn a_write_limit_while_creating_a_job_leaves_nothing_behind() {
    let env = Env::new();
    std::fs::create_dir_all(&env.root).expect("mkdir");
    let mut command = env.command(&["run", "--", "true"]);
    limit_file_size(&mut command, 64);
    let out = command.output().expect("spawn");
    let value = single_json(&["run"], &out);
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&["run"], &out));
    assert_eq!(value["error"]["code"], "internal_error");
    let leftovers: Vec<_> = std::fs::read_dir(&env.root).expect("read root").flatten().collect();
    assert!(leftovers.is_empty(), "left behind: {:?}", leftovers.iter().map(|e| e.file_name()).collect::<Vec<_>>());
    // `run` forks the supervisor before creating the job: unused, it must go away too.
    let root = env.root.to_string_lossy().into_owned();
    let supervisors = || common::all_pids().into_iter().filter(|&p| common::cmdline(p).contains(&root)).count();
    assert!(common::eventually(std::time::Duration::from_secs(10), || supervisors() == 0), "a supervisor stayed");
    // The store still works for everyone else.
    assert_eq!(env.ok(&["run", "--wait", "--", "true"])["state"], "exited");
}

#[test]
fn a_job_directory_deleted_under_a_running_job() {
    let env = Env::new();
    let other = env.start_job(&["sleep", "0.2"]);
    let id = env.start_job(&["sleep", "0.5"]);
    let supervisor = env.read_json(&id, "state.json")["supervisor_pid"].as_u64().expect("pid");
    // As `rm -r` would be retried: the supervisor may create a file (its lock, a
    // record's temporary) between the listing and the `rmdir` (ENOTEMPTY).
    let dir = env.job_dir(&id);
    assert!(eventually(Duration::from_secs(5), || std::fs::remove_dir_all(&dir).is_ok() || !dir.exists()), "rm");
    env.err(&["status", &id], "job_not_found");
    env.err(&["wait", &id], "job_not_found");
    // The supervisor finds nowhere to record the end, and exits instead of hanging.
    assert!(eventually(Duration::from_secs(10), || !alive(supervisor)), "supervisor hung");
    assert!(!env.job_dir(&id).exists(), "the directory was recreated");
    assert_eq!(env.wait_job(&other)["state"], "exited");
}

#[test]
fn garbage_state_files_are_reported_per_job() {
    let env = Env::new();
    let good = env.start_job(&["true"]);
    let bad_state = env.start_job(&["true"]);
    let bad_meta = env.start_job(&["true"]);
    for id in [&good, &bad_state, &bad_meta] {
        env.wait_job(id);
    }
    std::fs::write(env.job_dir(&bad_state).join("state.json"), "{\"job\": {\"id\": \"x\", \"sta").expect("write");
    std::fs::write(env.job_dir(&bad_meta).join("meta.json"), "").expect("write");
    let error = env.err(&["status", &bad_state], "internal_error");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("state.json")));
    env.err(&["status", &bad_meta], "internal_error");
    env.err(&["wait", &bad_state], "internal_error");
    let list = env.ok(&["list"]);
    assert_eq!(list["skipped"], 1);
    let jobs = list["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2);
    let unknown = jobs.iter().find(|j| j["job_id"] == bad_state.as_str()).expect("bad-state job listed");
    assert_eq!(unknown["state"], "unknown");
    assert!(unknown.get("updated_at").is_none());
    assert_eq!(env.ok(&["list", "--state", "unknown"])["jobs"].as_array().map(Vec::len), Some(1));
    // tail needs neither file.
    env.ok(&["tail", &bad_state]);
}

#[test]
fn a_job_whose_output_hits_the_write_limit_still_records_its_end() {
    let env = Env::new();
    let mut command = env.command(&["run", "--wait", "--", "sh", "-c", "head -c 100000 /dev/zero; echo after; exit 4"]);
    // The limit is inherited by the supervisor: its log writes fail past 20 kB while the
    // small state files still fit.
    limit_file_size(&mut command, 20_000);
    let out = command.output().expect("spawn");
    let value = single_json(&["run"], &out);
    assert_eq!(value["state"], "exited", "{value}");
    assert_eq!(value["exit_code"], 4);
    let id = value["job_id"].as_str().expect("id");
    let size = std::fs::metadata(env.job_dir(id).join("stdout.log")).expect("stat").len();
    assert!(size <= 20_000);
}

/// Runs `command` under RLIMIT_FSIZE: writes past `bytes` fail with EFBIG (a full disk,
/// as far as the writer can tell).
fn limit_file_size(command: &mut std::process::Command, bytes: u64) {
    // SAFETY: setrlimit between fork and exec only affects the child.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            Ok(())
        });
    }
}

/// A definition whose `meta.json` would be larger than any reader accepts (4 MiB) was
/// written anyway, leaving a job that `status`, `list` and `serve` could never read
/// again. Control characters take six bytes each in JSON, so 1.2 MB of command line is
/// over 7 MB of `meta.json`. Now it is refused before anything is created.
#[test]
fn a_definition_too_large_to_read_back_is_refused() {
    let env = Env::new();
    let word = "\u{1}".repeat(120 * 1024);
    let mut args = vec!["run", "--snapshot-after", "0", "--", "true"];
    args.extend(std::iter::repeat_n(word.as_str(), 10));
    let error = env.err(&args, "invalid_request");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("meta.json")), "{error}");
    let jobs = std::fs::read_dir(&env.root).map(|dir| dir.count()).unwrap_or(0);
    assert_eq!(jobs, 0, "something was left in the root");
}
