//! The job lifecycle through the real binary: run (snapshot window, --wait, deadlines),
//! status, tail, wait, kill, list, and the files a job leaves in its directory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Env, eventually};

#[test]
fn run_returns_early_with_a_snapshot_when_the_job_ends() {
    let env = Env::new();
    let value = env.ok(&["run", "--", "echo", "hi"]);
    // The 10 s window ended with the job, not at its end.
    assert!(value["waited_ms"].as_u64().is_some_and(|ms| ms < 10_000), "{value}");
    assert_eq!(value["type"], "run");
    assert_eq!(value["state"], "exited");
    assert_eq!(value["exit_code"], 0);
    assert_eq!(value["tags"], serde_json::json!([]));
    assert_eq!(value["snapshot"]["stdout_tail"], "hi");
    assert_eq!(value["snapshot"]["stdout_observed_bytes"], 3);
    assert!(value.get("env_vars").is_none() && value.get("final_snapshot").is_none());
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(id.len(), 26);
    assert_eq!(value["stdout_log_path"], env.root.join(id).join("stdout.log").to_string_lossy().as_ref());
}

#[test]
fn snapshot_after_zero_answers_running_at_once() {
    let env = Env::new();
    let value = env.ok(&["run", "--snapshot-after", "0", "--", "sleep", "5"]);
    assert_eq!(value["state"], "running", "{value}");
    assert_eq!(value["waited_ms"], 0);
    assert!(value.get("snapshot").is_none());
    let id = value["job_id"].as_str().expect("id").to_string();
    let status = env.ok(&["status", &id]);
    assert_eq!(status["state"], "running", "{status} {}", env.read_json(&id, "state.json"));
    assert!(status.get("finished_at").is_none());
    env.ok(&["kill", "--signal", "KILL", &id]);
}

#[test]
fn run_wait_reports_exit_code_and_final_snapshot() {
    let env = Env::new();
    let value = env.ok(&["run", "--wait", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(value["state"], "exited");
    assert_eq!(value["exit_code"], 3);
    assert_eq!(value["final_snapshot"]["stdout_tail"], "out");
    assert_eq!(value["final_snapshot"]["stderr_tail"], "err");
    assert!(value["finished_at"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 20));
    assert!(value.get("snapshot").is_none());
}

#[test]
fn run_wait_deadline_reports_the_current_state() {
    let env = Env::new();
    let value = env.ok(&["run", "--wait", "--until", "100", "--", "sleep", "5"]);
    assert_eq!(value["state"], "running");
    assert!(value.get("exit_code").is_none() && value.get("final_snapshot").is_none());
    assert!(value["waited_ms"].as_u64().is_some_and(|ms| ms >= 100), "{value}");
    env.ok(&["kill", "--signal", "KILL", value["job_id"].as_str().expect("id")]);
}

#[test]
fn wait_is_bounded_and_then_returns_the_end() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "0.5"]);
    let early = env.ok(&["wait", "--until", "0", &id]);
    assert_eq!(early["state"], "running");
    assert!(early.get("exit_code").is_none());
    let done = env.ok(&["wait", "--forever", &id]);
    assert_eq!(done["state"], "exited");
    assert_eq!(done["exit_code"], 0);
}

#[test]
fn non_zero_exit_and_death_by_signal() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "exit 7"]);
    assert_eq!(env.wait_job(&id)["exit_code"], 7);
    let id = env.start_job(&["sh", "-c", "kill -SEGV $$"]);
    let value = env.wait_job(&id);
    assert_eq!(value["state"], "killed");
    assert!(value.get("exit_code").is_none());
    let state = env.read_json(&id, "state.json");
    assert_eq!(state["result"]["signal"], "SEGV");
    assert_eq!(state["result"]["exit_code"], serde_json::Value::Null);
    assert!(state["result"]["duration_ms"].is_u64());
}

#[test]
fn timeout_sends_term_then_kill() {
    let env = Env::new();
    let value = env.ok(&["run", "--timeout", "200", "--wait", "--", "sleep", "10"]);
    assert_eq!(value["state"], "killed");
    assert_eq!(value["signal"], "TERM");
    // A job that ignores SIGTERM dies of the SIGKILL sent kill-after later.
    let started = Instant::now();
    let value = env.ok(&[
        "run",
        "--timeout",
        "200",
        "--kill-after",
        "300",
        "--wait",
        "--",
        "sh",
        "-c",
        "trap '' TERM; sleep 10",
    ]);
    assert_eq!(value["state"], "killed");
    assert_eq!(value["signal"], "KILL");
    assert!(started.elapsed() >= Duration::from_millis(500));
    // Without kill-after, SIGKILL follows at once.
    let value = env.ok(&["run", "--timeout", "200", "--wait", "--", "sh", "-c", "trap '' TERM; sleep 10"]);
    assert_eq!(value["signal"], "KILL");
}

/// A supervisor used to stay for the whole kill-after even when the TERM had already
/// emptied the group, and `delete` refused the `killed` job as "currently running"
/// all that time. kill-after here is ten minutes: only a supervisor that sees the
/// empty group ends within the deadline.
#[test]
fn a_group_emptied_by_the_term_does_not_wait_out_kill_after() {
    let env = Env::new();
    let value = env.ok(&["run", "--timeout", "200", "--kill-after", "600000", "--wait", "--", "sleep", "30"]);
    assert_eq!(value["state"], "killed", "{value}");
    assert_eq!(value["signal"], "TERM", "{value}");
    let id = value["job_id"].as_str().expect("job_id").to_string();
    env.supervisor_gone(&id);
    env.ok(&["delete", &id]);
}

#[test]
fn timeout_reaches_the_whole_process_group() {
    let env = Env::new();
    let pidfile = env.cwd.join("grandchild.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let value = env.ok(&["run", "--timeout", "300", "--wait", "--", "sh", "-c", &script]);
    assert_eq!(value["state"], "killed");
    let pid: u64 = std::fs::read_to_string(&pidfile).expect("pid file").trim().parse().expect("pid");
    assert!(eventually(Duration::from_secs(5), || !common::alive(pid)), "grandchild {pid} survived the timeout");
}

#[test]
fn kill_signals_by_name_and_records_the_kill() {
    let env = Env::new();
    for (given, echoed, recorded) in [("TERM", "TERM", "TERM"), ("sigint", "INT", "INT"), ("kill", "KILL", "KILL")] {
        let id = env.start_job(&["sleep", "30"]);
        let value = env.ok(&["kill", "--signal", given, &id]);
        assert_eq!(value["signal"], echoed);
        assert_eq!(value["job_id"], id.as_str());
        let done = env.wait_job(&id);
        assert_eq!(done["state"], "killed");
        assert_eq!(env.read_json(&id, "state.json")["result"]["signal"], recorded);
    }
    let id = env.start_job(&["sleep", "30"]);
    assert_eq!(env.ok(&["kill", "--signal", "9", &id])["signal"], "9");
    assert_eq!(env.wait_job(&id)["state"], "killed");
    // Killing a finished job changes nothing and succeeds. `wait` may have seen the kill
    // record, which the supervisor then replaces with its own: compare after that.
    env.supervisor_gone(&id);
    let before = env.read_json(&id, "state.json");
    env.ok(&["kill", &id]);
    assert_eq!(env.read_json(&id, "state.json"), before);
}

#[test]
fn kill_reaches_descendants_and_a_job_that_handles_term_exits() {
    let env = Env::new();
    let ready = env.cwd.join("trap-installed");
    let script = format!("trap 'echo bye; exit 5' TERM; touch {}; while :; do sleep 0.05; done", ready.display());
    let id = env.start_job(&["sh", "-c", &script]);
    assert!(eventually(Duration::from_secs(5), || ready.exists()), "the job never installed its trap");
    env.ok(&["kill", &id]);
    // The supervisor's record replaces the kill record: the job exited on its own terms.
    assert!(eventually(Duration::from_secs(5), || env.read_json(&id, "state.json")["job"]["status"] == "exited"));
    assert_eq!(env.ok(&["status", &id])["exit_code"], 5);
}

#[test]
fn tail_limits_lines_and_bytes() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; printf 'errline' >&2"]);
    env.wait_job(&id);
    let value = env.ok(&["tail", "--tail-lines", "2", &id]);
    assert_eq!(value["stdout_tail"], "line4\nline5");
    assert_eq!(value["stderr_tail"], "errline");
    assert_eq!(value["truncated"], true);
    let value = env.ok(&["tail", "--tail-lines", "0", "--max-bytes", "6", &id]);
    assert_eq!(value["stdout_tail"], "line5");
    assert_eq!(value["stdout_observed_bytes"], 30);
    assert_eq!(value["stdout_included_bytes"], 5);
    let value = env.ok(&["tail", &id]);
    assert_eq!(value["truncated"], false);
}

/// `--tail-lines 0` lifts the line limit and nothing else: the same log gives the same
/// text as the default limit (no final newline, `\r\n` read as a line end).
#[test]
fn tail_lines_zero_follows_the_default_newline_rule() {
    let env = Env::new();
    let id = env.start_job(&["printf", "a\\r\\nb\\n"]);
    env.wait_job(&id);
    for args in [&["tail", &id][..], &["tail", "--tail-lines", "0", &id], &["tail", "--tail-lines", "50", &id]] {
        let value = env.ok(args);
        assert_eq!(value["stdout_tail"], "a\nb", "{args:?}");
        assert_eq!(value["truncated"], false, "{args:?}");
    }
    let value = env.ok(&["run", "--snapshot-after", "5000", "--tail-lines", "0", "--", "printf", "a\\n"]);
    assert_eq!(value["snapshot"]["stdout_tail"], "a");
}

#[test]
fn prefix_lookup_and_ambiguity() {
    let env = Env::new();
    let a = env.start_job(&["true"]);
    let b = env.start_job(&["true"]);
    env.wait_job(&a);
    env.wait_job(&b);
    let unique_len = (1..=26).find(|&n| a[..n] != b[..n]).expect("ids differ");
    let value = env.ok(&["status", &a[..unique_len]]);
    assert_eq!(value["job_id"], a.as_str());
    assert_eq!(env.ok(&["status", &a.to_ascii_lowercase()])["job_id"], a.as_str());
    let common_prefix = &a[..unique_len - 1];
    if !common_prefix.is_empty() {
        let error = env.err(&["status", common_prefix], "ambiguous_job_id");
        let message = error["error"]["message"].as_str().expect("message");
        let (first, second) = if a < b { (&a, &b) } else { (&b, &a) };
        assert!(message.contains(&format!("{first}, {second}")), "{message}");
    }
    // A directory that is not a job never matches.
    std::fs::create_dir_all(env.root.join("ZZNOTAJOB")).expect("mkdir");
    env.err(&["status", "ZZ"], "job_not_found");
}

#[test]
fn list_filters_sorts_and_limits() {
    let env = Env::new();
    let first = env.start_job(&["true"]);
    env.wait_job(&first);
    let second = env.ok(&["run", "--tag", "ci.build", "--tag", "x", "--tag", "ci.build", "--", "true"])["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    env.wait_job(&second);
    let running = env.start_job(&["sleep", "30"]);
    let list = env.ok(&["list"]);
    assert_eq!(list["root"], env.root.to_string_lossy().as_ref());
    assert_eq!(list["skipped"], 0);
    let ids: Vec<&str> =
        list["jobs"].as_array().expect("jobs").iter().map(|j| j["job_id"].as_str().unwrap_or("")).collect();
    assert_eq!(ids.len(), 3);
    // Newest start first; ULIDs of one second tie-break the same way.
    assert_eq!(ids, [running.as_str(), second.as_str(), first.as_str()]);
    assert_eq!(env.ok(&["list", "--state", "running"])["jobs"].as_array().map(Vec::len), Some(1));
    let tagged = env.ok(&["list", "--tag", "ci.*", "--tag", "x"]);
    assert_eq!(tagged["jobs"][0]["job_id"], second.as_str());
    assert_eq!(tagged["jobs"][0]["tags"], serde_json::json!(["ci.build", "x"]));
    assert_eq!(env.ok(&["list", "--tag", "ci"])["jobs"].as_array().map(Vec::len), Some(0));
    let limited = env.ok(&["list", "--limit", "1"]);
    assert_eq!(limited["truncated"], true);
    assert_eq!(limited["jobs"].as_array().map(Vec::len), Some(1));
    // Another directory sees none of them unless asked.
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    assert_eq!(env.ok(&["list", "--cwd", elsewhere.to_str().expect("utf8")])["jobs"].as_array().map(Vec::len), Some(0));
    assert_eq!(env.ok(&["list", "--all"])["jobs"].as_array().map(Vec::len), Some(3));
    // A directory with a broken meta.json is skipped, not fatal.
    std::fs::create_dir_all(env.root.join("BROKEN")).expect("mkdir");
    std::fs::write(env.root.join("BROKEN/meta.json"), "{not json").expect("write");
    assert_eq!(env.ok(&["list", "--all"])["skipped"], 1);
    env.ok(&["kill", "--signal", "KILL", &running]);
}

#[test]
fn list_with_a_missing_root_is_empty() {
    let env = Env::new();
    let value = env.ok(&["list"]);
    assert_eq!(value["jobs"], serde_json::json!([]));
    assert_eq!(value["truncated"], false);
    assert!(!env.root.exists(), "a read-only command created the root");
}

#[test]
fn job_directory_files_and_modes() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "echo a; echo b >&2; printf c"]);
    env.wait_job(&id);
    let dir = env.job_dir(&id);
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&env.root), 0o700);
    assert_eq!(mode(&dir), 0o700);
    for file in ["meta.json", "state.json", "stdout.log", "stderr.log", "full.log"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(std::fs::read(dir.join("stdout.log")).expect("read"), b"a\nc");
    let full = std::fs::read_to_string(dir.join("full.log")).expect("read");
    let records: Vec<&str> = full.lines().map(|l| &l[21..]).collect();
    assert!(records.contains(&"[STDOUT] a") && records.contains(&"[STDERR] b") && records.contains(&"[STDOUT] c"));
    let meta_text = std::fs::read_to_string(dir.join("meta.json")).expect("read");
    assert!(meta_text.starts_with("{\n  \"job\": {\n    \"id\": ") && !meta_text.ends_with('\n'));
    let meta = env.read_json(&id, "meta.json");
    assert_eq!(meta["command"], serde_json::json!(["sh", "-c", "echo a; echo b >&2; printf c"]));
    assert_eq!(meta["cwd"], env.cwd.to_string_lossy().as_ref());
    assert_eq!(meta["shell_wrapper"], serde_json::json!(["sh", "-lc"]));
    assert_eq!(meta["env_keys"], serde_json::json!([]));
    assert!(meta.get("env_vars_runtime").is_none());
    let state = env.read_json(&id, "state.json");
    assert_eq!(state["job"]["status"], "exited");
    for key in ["exit_code", "signal", "duration_ms"] {
        assert!(state["result"].get(key).is_some(), "result.{key} must always be present");
    }
    // The supervisor keeps a reserve `.tmp-` file for its terminal record until it exits
    // (it may still drain output or deliver notifications after `wait` returns): none
    // may be left once it is gone.
    env.supervisor_gone(&id);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn custom_log_path_gets_the_merged_log() {
    let env = Env::new();
    let log = env.dir.path().join("logs/deep/merged.log");
    let value = env.ok(&["run", "--wait", "--log", log.to_str().expect("utf8"), "--", "echo", "merged"]);
    let id = value["job_id"].as_str().expect("id");
    assert!(std::fs::read_to_string(&log).expect("custom log").contains("[STDOUT] merged"));
    assert_eq!(std::fs::read(env.job_dir(id).join("full.log")).expect("read").len(), 0);
    assert_eq!(env.read_json(id, "meta.json")["full_log_path"], log.to_string_lossy().as_ref());
}

#[test]
fn progress_heartbeat_refreshes_updated_at() {
    let env = Env::new();
    let id = env.ok(&["run", "--snapshot-after", "0", "--progress-every", "300", "--", "sleep", "2.5"])["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let first = env.read_json(&id, "state.json")["updated_at"].clone();
    assert!(
        eventually(Duration::from_secs(5), || env.read_json(&id, "state.json")["updated_at"] != first),
        "updated_at never moved"
    );
    assert_eq!(env.read_json(&id, "state.json")["job"]["status"], "running");
    assert_eq!(env.wait_job(&id)["state"], "exited");
}

#[test]
fn list_sorts_never_started_jobs_by_their_creation_time() {
    let env = Env::new();
    let started = env.start_job(&["true"]);
    env.wait_job(&started);
    let created = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string();
    // docs/decisions.md OP-17: the newest first by started_at, or created_at for a job never
    // started; the created job is the newer one (a later second, or the larger ULID).
    let list = env.ok(&["list"]);
    let ids: Vec<&str> = list["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["job_id"].as_str()).collect();
    assert_eq!(ids, [created.as_str(), started.as_str()]);
}
