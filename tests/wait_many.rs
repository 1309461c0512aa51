//! The many-job `wait` (issue 14 item 2): ids in order, `--tag` scoped like `list`,
//! `--any`, the summary, `--exit-code`, and one thread for many jobs.

mod common;

use std::time::Duration;

use common::{Env, eventually};

fn id_of(value: &serde_json::Value) -> String {
    value["job_id"].as_str().expect("job_id").to_string()
}

#[test]
fn all_jobs_in_the_order_given_with_a_summary() {
    let env = Env::new();
    let ok = env.start_job(&["true"]);
    let bad = env.start_job(&["sh", "-c", "exit 4"]);
    let worse = env.start_job(&["sh", "-c", "exit 5"]);
    let args = ["wait", "--exit-code", &ok, &bad, &worse];
    let (value, code) = env.answer(&args);
    let ids: Vec<&str> =
        value["jobs"].as_array().expect("jobs").iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [ok.as_str(), bad.as_str(), worse.as_str()]);
    assert_eq!(value["jobs"][1]["state"], "exited");
    assert_eq!(value["jobs"][1]["exit_code"], 4);
    assert!(value["jobs"][1]["finished_at"].is_string());
    assert_eq!(value["summary"], serde_json::json!({"finished": 3, "running": 0, "failed_count": 2}));
    assert_eq!(code, 4, "the first non-zero code in the order given");
    let (_, code) = env.answer(&["wait", &ok, &bad]);
    assert_eq!(code, 0, "without --exit-code");
}

#[test]
fn any_returns_when_one_ends() {
    let env = Env::new();
    let slow = env.start_job(&["sleep", "30"]);
    let quick = env.start_job(&["sh", "-c", "exit 2"]);
    let (value, code) = env.answer(&["wait", "--any", "--exit-code", &slow, &quick]);
    assert_eq!(value["jobs"][0]["state"], "running");
    assert_eq!(value["jobs"][1]["exit_code"], 2);
    assert_eq!(value["summary"], serde_json::json!({"finished": 1, "running": 1, "failed_count": 1}));
    assert_eq!(code, 2);
    // A deadline with nothing ended: 124.
    let (_, code) = env.answer(&["wait", "--any", "--until", "50", "--exit-code", &slow]);
    assert_eq!(code, 124);
    env.ok(&["kill", "--signal", "KILL", &slow]);
    env.wait_job(&slow);
}

#[test]
fn tags_are_scoped_like_list() {
    let env = Env::new();
    let here = env.start_job(&["true"]);
    let other_dir = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&other_dir).expect("dir");
    let other = env.ok(&[
        "run",
        "--snapshot-after",
        "0",
        "--tag",
        "ci.unit",
        "--cwd",
        other_dir.to_str().unwrap(),
        "--",
        "true",
    ]);
    let other = id_of(&other);
    env.ok(&["tag", "set", &here, "--tag", "ci.unit"]);
    let count = |args: &[&str]| env.ok(args)["jobs"].as_array().map(Vec::len);
    assert_eq!(count(&["wait", "--tag", "ci.*"]), Some(1));
    assert_eq!(env.ok(&["wait", "--tag", "ci.*"])["jobs"][0]["job_id"], here.as_str());
    let canonical = std::fs::canonicalize(&other_dir).expect("canonical");
    assert_eq!(count(&["wait", "--tag", "ci.unit", "--cwd", canonical.to_str().unwrap()]), Some(1));
    assert_eq!(count(&["wait", "--tag", "ci.unit", "--all"]), Some(2));
    assert_eq!(count(&["wait", "--tag", "nothing"]), Some(0));
    // Ids and tags together: each job once.
    assert_eq!(count(&["wait", "--all", "--tag", "ci.unit", &other, &here]), Some(2));
}

#[test]
fn a_single_id_keeps_its_answer() {
    let env = Env::new();
    let id = env.start_job(&["true"]);
    env.wait_job(&id);
    let out = env.run(&["wait", &id]);
    let expected =
        format!(r#"{{"schema_version":"0.1","ok":true,"type":"wait","job_id":"{id}","state":"exited","exit_code":0}}"#);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), expected);
}

#[test]
fn one_process_and_one_thread_wait_on_many_jobs() {
    let env = Env::new();
    for _ in 0..100 {
        env.ok(&["create", "--tag", "many", "--", "true"]);
    }
    let mut child = env
        .command(&["wait", "--tag", "many", "--until", "20000"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn wait");
    let status = format!("/proc/{}/status", child.id());
    // Created jobs never end: the waiter stays until we stop it.
    let threads = || {
        std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).map(str::to_string))
    };
    let mut seen = None;
    assert!(eventually(Duration::from_secs(10), || {
        seen = threads();
        seen.is_some()
    }));
    assert_eq!(seen.as_deref().map(|l| l.split_whitespace().nth(1)), Some(Some("1")));
    child.kill().expect("kill waiter");
    child.wait().expect("reap waiter");
}

#[test]
fn bad_input() {
    let env = Env::new();
    env.usage(&["wait"]);
    env.usage(&["wait", "--any"]);
    env.usage(&["wait", "--all", "X"]);
    env.usage(&["wait", "--tag", "a", "--cwd", "/", "--all"]);
    let id = env.start_job(&["true"]);
    env.err(&["wait", &id, "01ARZ3NDEKTSV4RRFFQ69G5FAV"], "job_not_found");
    env.err(&["wait", &id, "@ghost"], "job_not_found");
}

/// A tag that matches no job: `--any --exit-code` exited 124 ("still running at the
/// deadline") with no job and no deadline, while the all-mode exited 0. Both answer at
/// once with 0 now.
#[test]
fn no_matching_job_is_exit_zero_with_or_without_any() {
    let env = Env::new();
    for any in [&[][..], &["--any"]] {
        let mut args = vec!["wait", "--tag", "nomatch", "--forever", "--exit-code"];
        args.extend_from_slice(any);
        let (value, code) = env.answer(&args);
        assert_eq!(code, 0, "{args:?}: {value}");
        assert_eq!(value["jobs"].as_array().map(Vec::len), Some(0), "{value}");
        assert_eq!(value["summary"]["running"], 0, "{value}");
    }
}
