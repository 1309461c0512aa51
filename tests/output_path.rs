//! The supervisor's output path (issue 10): bounded memory whatever the job prints, no
//! per-line system calls, no stall on a slow sink, log caps, and a job file replaced by
//! a symlink. Storage faults are in `tests/output_faults.rs`.

mod common;

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::{Env, alive, eventually, single_json};

fn records(text: &str) -> Vec<&str> {
    text.split_terminator('\n').collect()
}

/// A sink command that blocks until the test creates `release` in its work directory,
/// or until that directory is gone (a failed test must not leave sinks looping).
fn gated_sink(env: &Env) -> String {
    let work = env.cwd.display();
    format!("while [ ! -e '{work}/release' ] && [ -d '{work}' ]; do sleep 0.01; done")
}

#[test]
fn a_line_longer_than_the_supervisor_may_allocate_is_recorded_in_pieces() {
    let env = Env::new();
    // 48 MiB on one line under a 96 MiB address-space limit: holding the line (and its
    // decoded copy and record) would abort the supervisor.
    let mut command = env.command(&[
        "run",
        "--wait",
        "--until",
        "60000",
        "--",
        "sh",
        "-c",
        "head -c 50331648 /dev/zero | tr '\\0' x; echo; echo done",
    ]);
    // SAFETY: setrlimit between fork and exec only affects the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 96 << 20, rlim_max: 96 << 20 };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let out = command.output().expect("spawn");
    let answer = single_json(&["run"], &out);
    assert_eq!(answer["state"], "exited", "{answer}");
    assert_eq!(answer["exit_code"], 0, "{answer}");
    let id = answer["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    let full = std::fs::read_to_string(env.job_dir(id).join("full.log")).expect("full.log");
    let lines = records(&full);
    let cap = 64 * 1024;
    assert_eq!(lines.len(), 50331648 / cap + 1, "one record per 64 KiB piece, then `done`");
    assert!(lines[0].contains(" [STDOUT] xxx"), "{}", &lines[0][..40]);
    assert!(lines[1..lines.len() - 1].iter().all(|l| l.contains(" [STDOUT+] x")));
    assert!(lines.last().is_some_and(|l| l.ends_with(" [STDOUT] done")));
    let stdout = std::fs::metadata(env.job_dir(id).join("stdout.log")).expect("stdout.log").len();
    assert_eq!(stdout, 50331648 + 1 + 5);
}

#[test]
fn heavy_output_costs_no_system_call_per_line() {
    let env = Env::new();
    let trace = env.path("strace.out");
    let mut command = std::process::Command::new("strace");
    command
        .args(["-f", "-c", "-e", "trace=write,stat,statx,newfstatat", "-o", &trace, common::BIN])
        .args(["run", "--wait", "--until", "60000", "--", "seq", "1", "200000"]);
    let sealed = env.command(&[]);
    command.env_clear().current_dir(&env.cwd);
    for (key, value) in sealed.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    let out = match command.output() {
        Ok(out) => out,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("strace not available ({e}); this check needs it");
            return;
        }
        Err(e) => panic!("strace is required under CI=true (.ci/deps installs it): {e}"),
    };
    let answer = single_json(&["run"], &out);
    assert_eq!(answer["exit_code"], 0, "{answer}");
    let id = answer["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    let summary = std::fs::read_to_string(&trace).expect("strace summary");
    let calls = |name: &str| -> u64 {
        summary
            .lines()
            .filter(|l| l.split_whitespace().last() == Some(name))
            .filter_map(|l| l.split_whitespace().nth(3).and_then(|n| n.parse::<u64>().ok()))
            .sum()
    };
    // seq itself writes in 4 KiB blocks (~300 writes); one write per log per chunk adds
    // a few hundred more. One per line would be 200,000.
    assert!(calls("write") < 10_000, "too many writes:\n{summary}");
    assert!(calls("statx") + calls("stat") + calls("newfstatat") < 10_000, "too many stats:\n{summary}");
    let full = std::fs::read_to_string(env.job_dir(id).join("full.log")).expect("full.log");
    assert_eq!(records(&full).len(), 200_000);
    assert!(records(&full)[199_999].ends_with(" [STDOUT] 200000"));
}

#[test]
fn a_slow_output_sink_stalls_nothing_and_dropped_matches_are_counted() {
    let env = Env::new();
    let release = env.cwd.join("release");
    // The first delivery blocks until the test releases it, so the queue fills up.
    let sink = gated_sink(&env);
    let sink = sink.as_str();
    let answer = env.ok(&[
        "run",
        "--output-pattern",
        ".",
        "--output-match-type",
        "regex",
        "--output-command",
        sink,
        "--wait",
        "--until",
        "30000",
        "--",
        "sh",
        "-c",
        "seq 1 1500; exit 3",
    ]);
    std::fs::write(&release, "").expect("release the sink");
    assert_eq!(answer["state"], "exited", "the event loop waited for the sink: {answer}");
    assert_eq!(answer["exit_code"], 3);
    let id = answer["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    let events = std::fs::read_to_string(env.job_dir(id).join("notification_events.ndjson")).expect("events");
    let records: Vec<serde_json::Value> =
        events.lines().map(|l| serde_json::from_str(l).expect("event record")).collect();
    let delivered = records.iter().filter(|r| r["event_type"] == "job.output.matched").count() as u64;
    let dropped: Vec<&serde_json::Value> = records.iter().filter(|r| r["event_type"] == "job.output.dropped").collect();
    assert_eq!(dropped.len(), 1, "{events}");
    assert_eq!(dropped[0]["job_id"], id);
    assert!(delivered >= 1000, "the queue holds 1,024 matches: {delivered}");
    assert_eq!(delivered + dropped[0]["dropped"].as_u64().expect("count"), 1500);
}

#[test]
fn a_fifo_notify_file_without_a_reader_does_not_hold_the_supervisor() {
    let env = Env::new().with_env("AGENT_EXEC_SINK_TIMEOUT_MS", "300");
    let fifo = env.path("events.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let answer = env.ok(&[
        "run",
        "--notify-file",
        &fifo,
        "--output-pattern",
        "x",
        "--output-file",
        &fifo,
        "--wait",
        "--",
        "printf",
        "x1\\nx2\\nx3\\n",
    ]);
    let id = answer["job_id"].as_str().expect("id").to_string();
    let supervisor = env.read_json(&id, "state.json")["supervisor_pid"].as_u64().expect("pid");
    let gone = eventually(Duration::from_secs(20), || !alive(supervisor));
    if !gone {
        // Unblock the old supervisor so that the test leaves nothing behind.
        let _ = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo);
    }
    assert!(gone, "the supervisor is still blocked on the FIFO");
    let event = env.read_json(&id, "completion_event.json");
    assert_eq!(event["delivery_results"][0]["sink_type"], "file");
    let error = event["delivery_results"][0]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("timeout"), "{event}");
    // One blocked helper per file at most: later deliveries to it fail at once.
    let matches = std::fs::read_to_string(env.job_dir(&id).join("notification_events.ndjson")).expect("events");
    let errors: Vec<String> = matches
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("record"))
        .map(|r| r["delivery_results"][0]["error"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(errors.len(), 3, "{matches}");
    assert!(errors.iter().all(|e| e.starts_with("timeout")), "{errors:?}");
    env.ok(&["delete", &id]);
}

#[test]
fn kill_after_kills_the_group_even_when_the_leader_died_of_the_term() {
    let env = Env::new();
    let answer = env.ok(&[
        "run",
        "--timeout",
        "300",
        "--kill-after",
        "300",
        "--wait",
        "--",
        "sh",
        "-c",
        "(trap '' TERM; exec sleep 77) & echo $! > member.pid; wait",
    ]);
    assert_eq!(answer["state"], "killed", "{answer}");
    let member: u64 =
        std::fs::read_to_string(env.cwd.join("member.pid")).expect("pid file").trim().parse().expect("pid");
    let killed = eventually(Duration::from_secs(10), || !alive(member));
    if !killed {
        // SAFETY: cleaning up the process this test started.
        unsafe { libc::kill(member as i32, libc::SIGKILL) };
    }
    assert!(killed, "the member that ignores TERM survived kill-after");
}

#[test]
fn a_log_symlinked_to_a_victim_is_never_written_through() {
    let env = Env::new();
    let victim = env.dir.path().join("victim");
    std::fs::write(&victim, "precious").expect("write victim");
    let id = env.ok(&["create", "--", "echo", "overwritten"])["job_id"].as_str().expect("id").to_string();
    let log = env.job_dir(&id).join("stdout.log");
    std::fs::remove_file(&log).expect("rm");
    std::os::unix::fs::symlink(&victim, &log).expect("symlink");
    // Decision: the job is recorded `failed` with the reason; `start` answers with it.
    let answer = env.ok(&["start", "--wait", &id]);
    assert_eq!(answer["state"], "failed", "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("symbolic link")), "{answer}");
    assert_eq!(std::fs::read_to_string(&victim).expect("read victim"), "precious");
}

#[test]
fn logs_rotate_at_the_cap_and_the_tail_reads_across_the_rotation() {
    let env = Env::new();
    let answer = env.ok(&[
        "run",
        "--max-log-bytes",
        "1000",
        "--wait",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let id = answer["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    let dir = env.job_dir(id);
    for name in ["stdout.log", "stdout.log.1", "full.log", "full.log.1"] {
        let len = std::fs::metadata(dir.join(name)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0 && len <= 1000, "{name}: {len} bytes");
    }
    let state = env.read_json(id, "state.json");
    let dropped = state["log_dropped_bytes"].as_u64().expect("dropped bytes recorded");
    let kept: u64 = ["stdout.log", "stdout.log.1", "full.log", "full.log.1"]
        .iter()
        .map(|n| std::fs::metadata(dir.join(n)).map(|m| m.len()).unwrap_or(0))
        .sum();
    let full_len: u64 = (0..500).map(|i| format!("line-{i}").len() as u64 + 1).sum();
    assert_eq!(dropped + kept, full_len + 500 * "2026-01-01T00:00:00Z [STDOUT] ".len() as u64 + full_len);
    // 4,390 bytes of stdout: 390 in stdout.log after 1,000 in stdout.log.1.
    let tail = env.ok(&["tail", "--tail-lines", "0", "--max-bytes", "1200", id]);
    assert_eq!(tail["stdout_included_bytes"], 1199);
    assert!(tail["stdout_tail"].as_str().is_some_and(|t| t.ends_with("line-499")));
}

#[test]
fn no_full_log_and_the_config_default_cap() {
    let env = Env::new();
    let answer = env.ok(&["run", "--no-full-log", "--wait", "--", "echo", "hi"]);
    let id = answer["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    assert_eq!(std::fs::metadata(env.job_dir(id).join("full.log")).expect("full.log").len(), 0);
    assert_eq!(std::fs::read_to_string(env.job_dir(id).join("stdout.log")).expect("stdout"), "hi\n");
    common::write_file(&env.home.join(".config/agent-exec/config.toml"), "[logs]\nmax_bytes = 100\n");
    let answer = env.ok(&["run", "--wait", "--", "seq", "1", "100"]);
    let id = answer["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    assert!(std::fs::metadata(env.job_dir(id).join("stdout.log.1")).is_ok(), "the config cap rotated the log");
    assert_eq!(env.read_json(id, "meta.json")["max_log_bytes"], 100);
    // Spliced output (no full.log, no pattern) obeys the cap the same way.
    let answer = env.ok(&["run", "--no-full-log", "--wait", "--", "seq", "1", "100"]);
    let id = answer["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    for name in ["stdout.log", "stdout.log.1"] {
        let len = std::fs::metadata(env.job_dir(id).join(name)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0 && len <= 100, "{name}: {len} bytes");
    }
    let tail = env.ok(&["tail", "--tail-lines", "2", id]);
    assert_eq!(tail["stdout_tail"], "99\n100");
}

#[test]
fn gc_keeps_the_newest_jobs_by_count_and_by_size() {
    let env = Env::new();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let id = env.ok(&["run", "--wait", "--", "echo", "x"])["job_id"].as_str().expect("id").to_string();
            env.supervisor_gone(&id);
            id
        })
        .collect();
    let dry = env.ok(&["gc", "--keep", "1", "--dry-run"]);
    assert_eq!(dry["keep"], 1);
    let chosen: Vec<(&str, &str)> = dry["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["action"] == "would_delete")
        .map(|j| (j["job_id"].as_str().unwrap_or(""), j["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(chosen, [(ids[0].as_str(), "keep_1"), (ids[1].as_str(), "keep_1")], "{dry}");
    let gone = env.ok(&["gc", "--max-bytes", "0"]);
    assert_eq!(gone["deleted"], 3, "{gone}");
    assert_eq!(gone["max_bytes"], 0);
    assert!(ids.iter().all(|id| !env.job_dir(id).exists()));
    // Without the new flags the answer keeps 0.1.18's shape.
    assert!(env.ok(&["gc"]).get("keep").is_none());
    env.usage(&["gc", "--max-bytes", "1.5M"]);
    env.usage(&["gc", "--keep", "-1"]);
}

#[test]
fn a_timeout_fires_on_time_while_the_match_sink_is_stuck() {
    let env = Env::new();
    let sink = gated_sink(&env);
    let sink = sink.as_str();
    let answer = env.ok(&[
        "run",
        "--timeout",
        "300",
        "--output-pattern",
        "x",
        "--output-command",
        sink,
        "--wait",
        "--until",
        "20000",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo x$i; i=$((i+1)); done; exec sleep 60",
    ]);
    std::fs::write(env.cwd.join("release"), "").expect("release the sink");
    assert_eq!(answer["state"], "killed", "the timeout waited for the sink: {answer}");
    assert_eq!(answer["signal"], "TERM");
    env.supervisor_gone(answer["job_id"].as_str().expect("id"));
}

#[test]
fn create_keeps_the_log_options_for_start() {
    let env = Env::new();
    let id = env.ok(&["create", "--max-log-bytes", "50", "--no-full-log", "--", "seq", "1", "100"])["job_id"]
        .as_str()
        .expect("id")
        .to_string();
    let meta = env.read_json(&id, "meta.json");
    assert_eq!((meta["max_log_bytes"].as_u64(), meta["no_full_log"].as_bool()), (Some(50), Some(true)));
    assert_eq!(env.ok(&["start", "--wait", &id])["state"], "exited");
    env.supervisor_gone(&id);
    assert!(env.job_dir(&id).join("stdout.log.1").exists());
    assert_eq!(std::fs::metadata(env.job_dir(&id).join("full.log")).expect("full.log").len(), 0);
    // Without the flags, meta.json keeps 0.1.18's keys only.
    let plain = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string();
    let meta = env.read_json(&plain, "meta.json");
    assert!(meta.get("max_log_bytes").is_none() && meta.get("no_full_log").is_none(), "{meta}");
}

/// `run --log` naming a FIFO (or anything but a regular file or /dev/null) records the
/// job `failed` at once, whether or not a reader holds the FIFO open. Its open waited
/// for a reader, in the front-end: `run` never answered, and each such `POST /v1/jobs`
/// held one of `serve`'s threads for good.
#[test]
fn a_custom_log_that_is_a_fifo_is_refused_at_once() {
    let env = Env::new();
    let fifo = env.dir.path().join("log.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().expect("utf8")).expect("path");
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let fifo_arg = fifo.to_string_lossy().into_owned();
    let launch = |observe: &str| {
        let args = ["run", "--log", fifo_arg.as_str(), "--snapshot-after", observe, "--", "echo", "hi"];
        let out = common::output_within(&mut env.command(&args), Duration::from_secs(10));
        single_json(&["run"], &out.expect("run --log FIFO never answered"))
    };
    let value = launch("0");
    assert_eq!(value["state"], "failed", "{value}");
    assert!(value["error"].as_str().unwrap_or("").ends_with("not a regular file"), "{value}");
    // A reader on the FIFO: it would open, and then hold the supervisor on its writes.
    let _reader = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the FIFO for reading");
    let value = launch("1000");
    assert_eq!(value["state"], "failed", "{value}");
    assert!(value["error"].as_str().unwrap_or("").ends_with("not a regular file"), "{value}");
    // /dev/null is a way to discard the merged log.
    let kept = env.ok(&["run", "--log", "/dev/null", "--wait", "--", "echo", "hi"]);
    assert_eq!(kept["state"], "exited", "{kept}");
}
