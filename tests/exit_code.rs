//! `--exit-code` on run, start and wait (issue 14 item 1): the job's outcome becomes our
//! exit status, the JSON answer stays what it is without the flag.

mod common;

use common::Env;

/// Runs `args`, expects exactly one JSON object with `ok: true`, returns it and the status.
#[test]
fn run_wait_exits_with_the_jobs_code() {
    let env = Env::new();
    let (value, code) = env.answer(&["run", "--wait", "--exit-code", "--", "sh", "-c", "exit 7"]);
    assert_eq!((value["state"].as_str(), code), (Some("exited"), 7));
    let (_, code) = env.answer(&["run", "--wait", "--exit-code", "--", "true"]);
    assert_eq!(code, 0);
    // Without the flag: exit 0 whatever the job did (0.1.18).
    let (_, code) = env.answer(&["run", "--wait", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, 0);
}

#[test]
fn a_signal_is_128_plus_its_number() {
    let env = Env::new();
    let (value, code) = env.answer(&["run", "--wait", "--exit-code", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!((value["state"].as_str(), value["signal"].as_str(), code), (Some("killed"), Some("TERM"), 143));
}

#[test]
fn a_job_still_running_at_the_deadline_is_124() {
    let env = Env::new();
    let (value, code) = env.answer(&["run", "--wait", "--until", "100", "--exit-code", "--", "sleep", "30"]);
    assert_eq!((value["state"].as_str(), code), (Some("running"), 124));
    let id = value["job_id"].as_str().unwrap().to_string();
    let (value, code) = env.answer(&["wait", "--until", "50", "--exit-code", &id]);
    assert_eq!((value["state"].as_str(), code), (Some("running"), 124));
    env.ok(&["kill", "--signal", "KILL", &id]);
    let (value, code) = env.answer(&["wait", "--exit-code", &id]);
    assert_eq!((value["state"].as_str(), code), (Some("killed"), 137));
}

#[test]
fn a_failed_job_is_125() {
    let env = Env::new();
    let (value, code) =
        env.answer(&["run", "--wait", "--exit-code", "--cwd", "/nonexistent-dir-for-test", "--", "true"]);
    assert_eq!((value["state"].as_str(), code), (Some("failed"), 125), "{value}");
}

#[test]
fn start_and_wait_take_the_flag_and_keep_the_answer() {
    let env = Env::new();
    let id = env.ok(&["create", "--", "sh", "-c", "exit 3"])["job_id"].as_str().unwrap().to_string();
    let (_, code) = env.answer(&["start", "--wait", "--exit-code", &id]);
    assert_eq!(code, 3);
    let plain = env.run(&["wait", &id]);
    let flagged = env.run(&["wait", "--exit-code", &id]);
    assert_eq!(plain.stdout, flagged.stdout, "the JSON answer is unchanged");
    assert_eq!((plain.status.code(), flagged.status.code()), (Some(0), Some(3)));
}

#[test]
fn our_own_errors_keep_1_and_2() {
    let env = Env::new();
    env.err(&["wait", "--exit-code", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], "job_not_found");
    env.usage(&["wait", "--exit-code"]);
    env.usage(&["status", "--exit-code", "X"]);
}
