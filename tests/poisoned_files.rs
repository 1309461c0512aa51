//! Job files planted by an attacker (issue 11, item 6): `state.json` as a symlink to
//! `/dev/zero`, `meta.json` and `state.json` as FIFOs. Every command and `serve` must
//! answer that job's error at once, under a memory limit, and keep serving the others.

mod common;
mod serve_support;

use common::{Env, MEMORY_LIMIT, bounded, describe, mkfifo, single_json};
use serve_support::Server;

fn answer(env: &Env, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = bounded(env.command(args), args);
    (out.status.code(), single_json(args, &out))
}

fn assert_job_error(env: &Env, args: &[&str], file: &str) {
    let out = bounded(env.command(args), args);
    let value = single_json(args, &out);
    assert_eq!(out.status.code(), Some(1), "{}", describe(args, &out));
    assert_eq!(value["error"]["code"], "internal_error", "{}", describe(args, &out));
    assert!(value["error"]["message"].as_str().is_some_and(|m| m.contains(file)), "{}", describe(args, &out));
}

/// Four finished jobs: one intact, three poisoned.
fn poisoned(env: &Env) -> [String; 4] {
    let ids = [(); 4].map(|_| env.start_job(&["true"]));
    for id in &ids {
        env.wait_job(id);
        env.supervisor_gone(id);
    }
    let state = env.job_dir(&ids[1]).join("state.json");
    std::fs::remove_file(&state).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &state).expect("symlink");
    mkfifo(&env.job_dir(&ids[2]).join("meta.json"));
    mkfifo(&env.job_dir(&ids[3]).join("state.json"));
    ids
}

#[test]
fn poisoned_files_are_errors_of_their_own_job() {
    let env = Env::new();
    let [good, zero, fifo_meta, fifo_state] = poisoned(&env);
    for id in [&zero, &fifo_state] {
        for command in ["status", "wait", "kill", "start"] {
            assert_job_error(&env, &[command, id], "state.json");
        }
    }
    assert_job_error(&env, &["status", &fifo_meta], "meta.json");
    assert_job_error(&env, &["start", &fifo_meta], "meta.json");
    assert_job_error(&env, &["tag", "set", &fifo_meta, "--tag", "x"], "meta.json");

    let (code, list) = answer(&env, &["list", "--all"]);
    assert_eq!(code, Some(0), "{list}");
    let listed: Vec<&str> =
        list["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["job_id"].as_str()).collect();
    assert!(listed.contains(&good.as_str()), "{list}");
    let unknown =
        |id: &str| list["jobs"].as_array().expect("jobs").iter().any(|j| j["job_id"] == id && j["state"] == "unknown");
    assert!(unknown(&zero) && unknown(&fifo_state), "{list}");
    assert_eq!(list["skipped"], 1, "{list}");

    let (code, dry) = answer(&env, &["delete", "--all", "--dry-run"]);
    assert_eq!(code, Some(0), "{dry}");
    let (code, status) = answer(&env, &["status", &good]);
    assert_eq!((code, status["state"].as_str()), (Some(0), Some("exited")), "{status}");
    // The completion scripts list ids through `list --all` (checked above); `delete` of
    // a poisoned job answers and leaves the good job alone.
    let (code, _) = answer(&env, &["delete", &zero]);
    assert!(code == Some(0) || code == Some(1));
    assert!(env.job_dir(&good).join("meta.json").exists());
}

#[test]
fn serve_answers_an_error_for_a_poisoned_job_and_keeps_serving() {
    let env = Env::new();
    let [good, zero, fifo_meta, fifo_state] = poisoned(&env);
    let server = Server::start(&env, &[]);
    // The server runs under the same memory limit as the commands above.
    let limit = libc::rlimit { rlim_cur: MEMORY_LIMIT, rlim_max: MEMORY_LIMIT };
    // SAFETY: prlimit on our own child with a limit struct we own.
    let set = unsafe { libc::prlimit(server.pid() as libc::pid_t, libc::RLIMIT_AS, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    for id in [&zero, &fifo_meta, &fifo_state] {
        let reply = server.get(&format!("/status/{id}"));
        reply.assert_error(500, "internal_error");
    }
    let reply = server.get(&format!("/status/{good}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["state"], "exited");
}

/// A log replaced by a FIFO hung `tail`, `tail --follow` and `wait --for-output` (and a
/// `serve` thread on `/tail`), and a log linked to `/dev/zero` made `tail --follow`
/// stream zeros forever. Logs are now opened like every job file: no symlink, no
/// blocking, regular files only; such a log reads as empty, and a follow answers the
/// job's error at once.
#[test]
fn poisoned_logs_neither_hang_nor_stream_forever() {
    let env = Env::new();
    let [fifo, zero] = [(); 2].map(|_| env.start_job(&["true"]));
    for id in [&fifo, &zero] {
        env.wait_job(id);
        env.supervisor_gone(id);
    }
    mkfifo(&env.job_dir(&fifo).join("stdout.log"));
    let zero_log = env.job_dir(&zero).join("stdout.log");
    std::fs::remove_file(&zero_log).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &zero_log).expect("symlink");
    for id in [&fifo, &zero] {
        let (code, tail) = answer(&env, &["tail", id]);
        assert_eq!((code, tail["stdout_tail"].as_str()), (Some(0), Some("")), "{tail}");
        let (code, wait) = answer(&env, &["wait", "--for-output", "x", id]);
        assert_eq!((code, wait["ready"].as_bool()), (Some(0), Some(false)), "{wait}");
        assert_job_error(&env, &["tail", "--follow", id], "stdout.log");
    }
    let server = Server::start(&env, &[]);
    let reply = server.get(&format!("/tail/{fifo}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
}
