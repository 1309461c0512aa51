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

#[test]
fn a_follow_goes_on_across_log_rotations() {
    let env = Env::new();
    let go = env.path("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.01; done; i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line-$i; sleep 0.005; done"
    );
    let run = ["run", "--max-log-bytes", "1000", "--snapshot-after", "0", "--", "sh", "-c", &script];
    let id = env.ok(&run)["job_id"].as_str().expect("job_id").to_string();
    let follower = env
        .command(&["tail", "--follow", "--tail-lines", "0", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tail --follow");
    common::write_file(std::path::Path::new(&go), "");
    let out = follower.wait_with_output().expect("tail --follow");
    let text = String::from_utf8(out.stdout).expect("utf8");
    let numbers: Vec<u32> =
        text.lines().map(|l| l.strip_prefix("line-").and_then(|n| n.parse().ok()).expect("a whole line")).collect();
    // Several rotations happened (the held file stopped growing at the first one); the
    // follow read on into each new generation, in order, to the last line.
    assert!(env.job_dir(&id).join("stdout.log.1").exists());
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "out of order: {numbers:?}");
    assert_eq!(numbers.last(), Some(&400), "{text}");
}
