//! `tail --follow` (issue 14 item 5): raw streams, NDJSON records, the starting point,
//! `--exit-code`, a million lines in order, and a job deleted under the follower.

mod common;

use common::{Env, single_json};

#[test]
fn raw_streams_go_to_their_own_streams_from_n_lines_back() {
    let env = Env::new();
    let script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo out$i; echo err$i >&2; done; exit 3";
    let id = env.start_job(&["sh", "-c", script]);
    // The starting point is counted back from what the logs hold when the follow starts.
    env.wait_job(&id);
    env.supervisor_gone(&id);
    let out = env.run(&["tail", "--follow", "--exit-code", "--tail-lines", "2", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out11\nout12\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err11\nerr12\n");
    assert_eq!(out.status.code(), Some(3));
    // The default starts 10 lines back; without --exit-code the status is 0.
    let out = env.run(&["tail", "--follow", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().next(), Some("out3"));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn json_records_concatenate_back_to_the_logs() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "echo one; echo two >&2; sleep 0.2; printf three"]);
    let out = env.run(&["tail", "--follow", "--json", "--tail-lines", "0", &id]);
    assert!(out.stderr.is_empty());
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record per line"))
        .collect();
    let of = |stream: &str| -> Vec<(String, u64)> {
        records
            .iter()
            .filter(|r| r["stream"] == stream)
            .map(|r| (r["data"].as_str().unwrap().to_string(), r["offset"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(of("stdout"), [("one\n".to_string(), 0), ("three".to_string(), 4)]);
    assert_eq!(of("stderr"), [("two\n".to_string(), 0)]);
}

#[test]
fn a_million_lines_arrive_in_order() {
    let env = Env::new();
    let id = env.start_job(&["seq", "1", "1000000"]);
    let out = env.run(&["tail", "--follow", "--tail-lines", "0", &id]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf8");
    let mut count = 0u64;
    for (i, line) in text.lines().enumerate() {
        assert_eq!(line.parse::<u64>().ok(), Some(i as u64 + 1), "line {i}");
        count += 1;
    }
    assert_eq!(count, 1_000_000);
}

#[test]
fn a_deleted_job_ends_the_follow_with_an_error() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "30"]);
    let state = env.read_json(&id, "state.json");
    let (pid, supervisor) =
        (state["pid"].as_u64().expect("pid"), state["supervisor_pid"].as_u64().expect("supervisor"));
    let follower = env.command(&["tail", "--follow", &id]).stdout(std::process::Stdio::piped()).spawn().expect("spawn");
    std::fs::remove_dir_all(env.job_dir(&id)).expect("delete the job directory");
    let out = follower.wait_with_output().expect("follower ends");
    let value = single_json(&["tail", "--follow"], &out);
    assert_eq!((value["error"]["code"].as_str(), out.status.code()), (Some("job_not_found"), Some(1)));
    // The job outlives its directory: stop its process group ourselves.
    let group = format!("-{pid}");
    std::process::Command::new("kill").args(["-KILL", "--", &group]).status().expect("kill");
    assert!(common::eventually(std::time::Duration::from_secs(20), || !common::alive(supervisor)));
}

#[test]
fn bad_input() {
    let env = Env::new();
    env.usage(&["tail", "--json", "X"]);
    env.usage(&["tail", "--exit-code", "X"]);
    env.usage(&["tail", "--follow", "--max-bytes", "5", "X"]);
    env.err(&["tail", "--follow", "@nobody"], "job_not_found");
}

/// A log capped with `--max-log-bytes` is renamed to `<name>.1` when full and a new
/// file started. The follower used to keep reading the renamed file, so everything
/// after the first rotation was lost to it. The job here writes one line at a time and
/// waits for the test to see it before writing the next, so the follower must cross
/// every rotation (one per four lines) for the test to end.
#[test]
fn a_follow_crosses_log_rotations() {
    use std::io::BufRead;
    let env = Env::new();
    let script = "i=1; while [ $i -le 20 ]; do echo line-$i-padding; \
                  while [ ! -e seen-$i ]; do sleep 0.01; done; i=$((i+1)); done";
    let id = env.ok(&[
        "run",
        "--snapshot-after",
        "0",
        "--max-log-bytes",
        "64",
        "--no-full-log",
        "--",
        "sh",
        "-c",
        script,
    ])["job_id"]
        .as_str()
        .expect("job_id")
        .to_string();
    let mut follower = env
        .command(&["tail", "--follow", "--json", "--tail-lines", "0", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn follower");
    let stdout = follower.stdout.take().expect("stdout");
    let release =
        |cwd: &std::path::Path| (1..=20).for_each(|i| drop(std::fs::write(cwd.join(format!("seen-{i}")), "")));
    // The deadline: a follower stuck in an old generation never sees the next line, so
    // the job is released; the follow then ends and the assertions below fail.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let cwd = env.cwd.clone();
    let deadline = std::thread::spawn(move || {
        if finished.recv_timeout(std::time::Duration::from_secs(60)) == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            release(&cwd);
        }
    });
    let mut data = String::new();
    let mut offsets = Vec::new();
    let mut seen = 0;
    for line in std::io::BufReader::new(stdout).lines() {
        let record: serde_json::Value = serde_json::from_str(&line.expect("read")).expect("a JSON record");
        offsets.push((record["offset"].as_u64().expect("offset"), record["data"].as_str().expect("data").len()));
        data.push_str(record["data"].as_str().expect("data"));
        while data.contains(&format!("line-{}-padding\n", seen + 1)) {
            seen += 1;
            std::fs::write(env.cwd.join(format!("seen-{seen}")), "").expect("mark seen");
        }
    }
    drop(done);
    deadline.join().expect("deadline thread");
    follower.wait().expect("follower exits");
    let expected: String = (1..=20).map(|i| format!("line-{i}-padding\n")).collect();
    assert_eq!(data, expected);
    // Offsets keep counting across generations: each record starts where the last ended.
    let mut next = 0;
    for (offset, len) in offsets {
        assert_eq!(offset, next);
        next += len as u64;
    }
}
