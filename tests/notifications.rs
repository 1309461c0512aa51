//! Notifications through the binary (docs/compatibility.md §8.12, §10, docs/decisions.md OP-6, OP-10, OP-24):
//! completion sinks and `completion_event.json`, output-match events, `notify set`
//! merging, and the sink bound (shortened with `AGENT_EXEC_SINK_TIMEOUT_MS`).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Env, alive, eventually, write_file};
use serde_json::{Value, json};

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad NDJSON line {line:?}: {e}")))
        .collect()
}

fn delivery_results(env: &Env, id: &str) -> Option<Value> {
    let text = std::fs::read_to_string(env.job_dir(id).join("completion_event.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok().map(|v| v["delivery_results"].clone())
}

#[test]
fn command_sink_gets_the_event_on_stdin_and_the_three_variables() {
    let env = Env::new();
    let (vars, event, file) = (env.path("vars.txt"), env.path("event.json"), env.path("sub/dir/events.ndjson"));
    let sink = format!(
        "printf '%s\\n%s\\n%s\\n%s\\n' \"$AGENT_EXEC_EVENT_PATH\" \"$AGENT_EXEC_JOB_ID\" \"$AGENT_EXEC_EVENT_TYPE\" \"$PWD\" > '{vars}'; cat > '{event}'"
    );
    let run = env.ok(&["run", "--wait", "--notify-command", &sink, "--notify-file", &file, "--", "echo", "hello"]);
    let id = run["job_id"].as_str().expect("id");
    env.supervisor_gone(id);

    let completion = env.read_json(id, "completion_event.json");
    let results = &completion["delivery_results"];
    assert_eq!(results.as_array().map(Vec::len), Some(2), "{completion}");
    assert_eq!(results[0]["sink_type"], "command");
    assert_eq!(results[0]["target"], sink.as_str());
    assert_eq!(results[0]["success"], true);
    assert!(results[0].get("error").is_none());
    assert_eq!(
        results[1],
        json!({"sink_type": "file", "target": file, "success": true, "attempted_at": results[1]["attempted_at"]})
    );

    let stdin_event: Value = serde_json::from_str(&std::fs::read_to_string(&event).expect("event")).expect("json");
    assert!(stdin_event.get("delivery_results").is_none());
    assert_eq!(stdin_event["event_type"], "job.finished");
    assert_eq!(stdin_event["schema_version"], "0.1");
    assert_eq!(stdin_event["job_id"], id);
    assert_eq!(stdin_event["state"], "exited");
    assert_eq!(stdin_event["exit_code"], 0);
    assert_eq!(stdin_event["command"], json!(["echo", "hello"]));
    assert_eq!(stdin_event["cwd"], env.cwd.to_string_lossy().as_ref());
    assert_eq!(stdin_event["stdout_log_path"], format!("{}/{id}/stdout.log", env.root.display()));
    let mut without_results = completion.clone();
    without_results.as_object_mut().expect("object").remove("delivery_results");
    assert_eq!(stdin_event, without_results);

    let vars = std::fs::read_to_string(&vars).expect("vars");
    let vars: Vec<&str> = vars.lines().collect();
    let event_path = format!("{}/{id}/completion_event.json", env.root.display());
    // docs/decisions.md OP-24: the sink runs in the job's working directory.
    assert_eq!(vars, [event_path.as_str(), id, "job.finished", env.cwd.to_string_lossy().as_ref()]);

    let lines = read_lines(Path::new(&file));
    assert_eq!(lines, [stdin_event]);
}

#[test]
fn failing_sinks_are_recorded_and_never_change_the_state() {
    let env = Env::new();
    let dir_as_file = env.path("plain-file");
    write_file(Path::new(&dir_as_file), "");
    let target = format!("{dir_as_file}/x.ndjson");
    let run = env.ok(&["run", "--wait", "--notify-command", "exit 1", "--notify-file", &target, "--", "exit 4"]);
    let id = run["job_id"].as_str().expect("id");
    assert_eq!(run["exit_code"], 4);
    env.supervisor_gone(id);
    let results = delivery_results(&env, id).expect("completion_event.json");
    assert_eq!(results[0]["success"], false);
    assert_eq!(results[0]["error"], "exited with status exit status: 1");
    assert_eq!(results[1]["success"], false);
    assert!(results[1]["error"].as_str().unwrap_or("").starts_with("create parent dir: "), "{results}");
    let state = env.read_json(id, "state.json");
    assert_eq!(state["job"]["status"], "exited");
    assert_eq!(state["result"]["exit_code"], 4);

    // A blank command is reported without running anything.
    let run = env.ok(&["run", "--wait", "--notify-command", "  ", "--", "true"]);
    let id = run["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    assert_eq!(delivery_results(&env, id).expect("event")[0]["error"], "empty shell command");
}

#[test]
fn a_hanging_sink_neither_delays_the_terminal_state_nor_outlives_its_bound() {
    let env = Env::new().with_env("AGENT_EXEC_SINK_TIMEOUT_MS", "3000");
    let (started, pid_file) = (env.path("sink-started"), env.path("sink.pid"));
    let sink = format!("echo $$ > '{pid_file}'; touch '{started}'; exec sleep 30");
    let run = env.ok(&["run", "--wait", "--notify-command", &sink, "--", "true"]);
    let id = run["job_id"].as_str().expect("id");
    assert_eq!(run["state"], "exited");
    assert!(eventually(Duration::from_secs(10), || Path::new(&started).exists()), "sink never started");
    // The sink is hanging: the job is terminal, `wait` answers at once, and the event
    // file holds the event with no results yet.
    assert_eq!(env.ok(&["wait", "--until", "100", id])["state"], "exited");
    let sink_pid = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<u64>().ok());
    assert!(sink_pid.is_some_and(common::alive), "the terminal state came only after the sink ended");
    assert_eq!(delivery_results(&env, id), Some(json!([])));
    // `delete --all` will not touch a job whose supervisor is still delivering.
    let bulk = env.ok(&["delete", "--all"]);
    assert_eq!(bulk["jobs"], json!([{"job_id": id, "state": "exited", "action": "skipped", "reason": "running"}]));

    assert!(eventually(Duration::from_secs(15), || delivery_results(&env, id).is_some_and(|r| r != json!([]))));
    let results = delivery_results(&env, id).expect("results");
    assert_eq!(results[0]["success"], false);
    assert_eq!(results[0]["error"], "timeout");
    let pid: u64 = std::fs::read_to_string(&pid_file).expect("pid").trim().parse().expect("pid number");
    assert!(eventually(Duration::from_secs(5), || !alive(pid)), "sink {pid} survived its bound");
}

#[test]
fn fifty_concurrent_jobs_share_one_notify_file() {
    let env = Env::new();
    let file = env.path("all.ndjson");
    let children: Vec<_> = (0..50)
        .map(|i| {
            let n = i.to_string();
            env.command(&["run", "--snapshot-after", "0", "--notify-file", &file, "--", "echo", &n])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut ids: Vec<String> = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("run");
            let value = common::single_json(&["run"], &out);
            value["job_id"].as_str().expect("id").to_string()
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(30), || std::fs::read_to_string(&file).unwrap_or_default().lines().count()
            >= 50),
        "not all events arrived"
    );
    for id in &ids {
        env.supervisor_gone(id);
    }
    let lines = read_lines(Path::new(&file));
    assert_eq!(lines.len(), 50);
    let mut seen: Vec<String> = lines.iter().map(|l| l["job_id"].as_str().expect("job_id").to_string()).collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
}

/// A job that prints `before`, then waits for `release` before printing the rest.
fn gated_job(env: &Env, extra: &[&str], rest: &str) -> (String, String) {
    let release = env.path(&format!("release-{}", ulid_like()));
    let script = format!("echo match-before; while [ ! -e '{release}' ]; do sleep 0.02; done; {rest}");
    let mut args = vec!["run", "--snapshot-after", "0"];
    args.extend_from_slice(extra);
    args.push("--");
    args.push(&script);
    let id = env.ok(&args)["job_id"].as_str().expect("id").to_string();
    (id, release)
}

fn ulid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

fn match_events(env: &Env, id: &str) -> Vec<Value> {
    read_lines(&env.job_dir(id).join("notification_events.ndjson"))
}

#[test]
fn output_match_fires_per_line_and_only_after_notify_set() {
    let env = Env::new();
    let (id, release) = gated_job(&env, &[], "echo match-after; echo other; printf 'x match-again\\r\\n'");
    let stdout_log = env.job_dir(&id).join("stdout.log");
    assert!(eventually(Duration::from_secs(10), || std::fs::read_to_string(&stdout_log)
        .is_ok_and(|s| s.contains("match-before"))));
    let set = env.ok(&["notify", "set", &id, "--output-pattern", "match"]);
    assert_eq!(set["type"], "notify.set");
    assert_eq!(
        set["notification"],
        json!({"on_output_match": {"pattern": "match", "match_type": "contains", "stream": "either"}})
    );
    write_file(Path::new(&release), "");
    env.wait_job(&id);
    env.supervisor_gone(&id);
    let events = match_events(&env, &id);
    let lines: Vec<&str> = events.iter().map(|e| e["line"].as_str().unwrap_or("")).collect();
    // docs/decisions.md OP-10: a `\r` before the newline is not part of the matched line.
    assert_eq!(lines, ["match-after", "x match-again"]);
    let first = &events[0];
    assert_eq!(first["event_type"], "job.output.matched");
    assert_eq!(first["job_id"], id.as_str());
    assert_eq!(first["pattern"], "match");
    assert_eq!(first["match_type"], "contains");
    assert_eq!(first["stream"], "stdout");
    assert_eq!(first["delivery_results"], json!([]));
    assert_eq!(first["stderr_log_path"], format!("{}/{id}/stderr.log", env.root.display()));
    // Only output-match configured: no job.finished event.
    assert!(!env.job_dir(&id).join("completion_event.json").exists());
}

#[test]
fn quick_successive_notify_sets_are_all_seen_by_the_supervisor() {
    let env = Env::new();
    let (id, release) =
        gated_job(&env, &["--output-pattern", "aaa"], "echo aaa; echo bbb; echo ccc; echo ddd; echo aaa");
    let stdout_log = env.job_dir(&id).join("stdout.log");
    assert!(eventually(Duration::from_secs(10), || std::fs::read_to_string(&stdout_log)
        .is_ok_and(|s| s.contains("match-before"))));
    // Same size, same second: only the file's identity tells the versions apart.
    env.ok(&["notify", "set", &id, "--output-pattern", "bbb"]);
    env.ok(&["notify", "set", &id, "--output-pattern", "ccc"]);
    write_file(Path::new(&release), "");
    env.wait_job(&id);
    env.supervisor_gone(&id);
    let lines: Vec<String> = match_events(&env, &id).iter().map(|e| e["line"].as_str().unwrap_or("").into()).collect();
    assert_eq!(lines, ["ccc"]);
}

#[test]
fn regex_contains_and_stream_filters() {
    let env = Env::new();
    let script = "printf 'err1\\nerr\\nxerr2\\nerr33\\n'; echo err7 >&2";
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--output-pattern", "^err[0-9]+$", "--output-match-type", "regex"], &["err1", "err33", "err7"]),
        (&["--output-pattern", "err"], &["err1", "err", "xerr2", "err33", "err7"]),
        (&["--output-pattern", "err", "--output-stream", "stderr"], &["err7"]),
        (&["--output-pattern", "^err[0-9]$", "--output-match-type", "regex", "--output-stream", "stdout"], &["err1"]),
    ];
    for (flags, expect) in cases {
        let mut args = vec!["run", "--wait"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", script]);
        let id = env.ok(&args)["job_id"].as_str().expect("id").to_string();
        env.supervisor_gone(&id);
        let events = match_events(&env, &id);
        let mut lines: Vec<&str> = events.iter().map(|e| e["line"].as_str().unwrap_or("")).collect();
        // The two streams are read independently; only per-stream order is defined.
        lines.sort_unstable();
        let mut want = expect.to_vec();
        want.sort_unstable();
        assert_eq!(lines, want, "{flags:?}");
        for event in &events {
            let from_stderr = event["line"] == "err7";
            assert_eq!(event["stream"], if from_stderr { "stderr" } else { "stdout" });
        }
    }
}

#[test]
fn output_sinks_get_each_event() {
    let env = Env::new();
    let (file, vars) = (env.path("matches.ndjson"), env.path("match-vars.txt"));
    let sink =
        format!("{{ printf '%s %s ' \"$AGENT_EXEC_EVENT_TYPE\" \"$AGENT_EXEC_JOB_ID\"; cat; echo; }} >> '{vars}'");
    let run = env.ok(&[
        "run",
        "--wait",
        "--output-pattern",
        "hit",
        "--output-command",
        &sink,
        "--output-file",
        &file,
        "--",
        "echo hit-1; echo miss; echo hit-2",
    ]);
    let id = run["job_id"].as_str().expect("id");
    env.supervisor_gone(id);
    let events = match_events(&env, id);
    assert_eq!(events.len(), 2);
    for event in &events {
        let results = event["delivery_results"].as_array().expect("results");
        assert_eq!(results.len(), 2);
        assert_eq!((&results[0]["sink_type"], &results[0]["success"]), (&json!("command"), &json!(true)));
        assert_eq!((&results[1]["sink_type"], &results[1]["success"]), (&json!("file"), &json!(true)));
    }
    let file_lines = read_lines(Path::new(&file));
    assert_eq!(file_lines.iter().map(|l| l["line"].clone()).collect::<Vec<_>>(), [json!("hit-1"), json!("hit-2")]);
    assert!(file_lines.iter().all(|l| l.get("delivery_results").is_none()));
    let vars = std::fs::read_to_string(&vars).expect("sink output");
    let records: Vec<&str> = vars.lines().collect();
    assert_eq!(records.len(), 2, "{vars}");
    for (record, expect) in records.iter().zip(["hit-1", "hit-2"]) {
        let (prefix, payload) = record.split_at(record.find('{').expect("json"));
        assert_eq!(prefix, format!("job.output.matched {id} "));
        let payload: Value = serde_json::from_str(payload).expect("payload");
        assert_eq!(payload["line"], expect);
    }
}

#[test]
fn invalid_regex_is_rejected_when_given() {
    let env = Env::new();
    let regex = ["--output-match-type", "regex", "--output-pattern", "("];
    let mut run = vec!["run"];
    run.extend_from_slice(&regex);
    run.push("true");
    env.usage(&run);
    let mut create = vec!["create"];
    create.extend_from_slice(&regex);
    create.push("true");
    env.usage(&create);
    assert!(!env.root.exists() || std::fs::read_dir(&env.root).expect("root").next().is_none());

    // A `(` is a fine substring; switching that pattern to regex is rejected.
    let id = env.ok(&["create", "--output-pattern", "(", "true"])["job_id"].as_str().expect("id").to_string();
    let mut set = vec!["notify", "set", id.as_str()];
    set.extend_from_slice(&regex);
    env.usage(&set);
    env.usage(&["notify", "set", &id, "--output-match-type", "regex"]);
    let meta = env.read_json(&id, "meta.json");
    assert_eq!(meta["notification"]["on_output_match"]["match_type"], "contains");
    env.usage(&["notify", "set", &id, "--output-stream", "both"]);
    env.usage(&["notify", "set", &id, "--notify-files", "x"]);
    env.usage(&["notify", "set"]);
    env.err(&["notify", "set", "01NOSUCHJOB", "--command", "x"], "job_not_found");
}

#[test]
fn notify_set_merges_and_never_runs_a_sink() {
    let env = Env::new();
    let marker = env.path("must-not-exist");
    let id =
        env.ok(&["create", "--notify-file", "/tmp/keep.ndjson", "true"])["job_id"].as_str().expect("id").to_string();
    let set = |args: &[&str]| {
        let mut all = vec!["notify", "set", id.as_str()];
        all.extend_from_slice(args);
        env.ok(&all)["notification"].clone()
    };
    assert_eq!(set(&[]), json!({"notify_file": "/tmp/keep.ndjson"}));
    let touch = format!("touch '{marker}'");
    assert_eq!(set(&["--command", &touch]), json!({"notify_command": touch, "notify_file": "/tmp/keep.ndjson"}));
    // An output command without a pattern is dropped.
    assert_eq!(set(&["--output-command", "x"]), json!({"notify_command": touch, "notify_file": "/tmp/keep.ndjson"}));
    let with_match = set(&["--output-pattern", "p", "--output-stream", "stderr", "--output-file", "/tmp/m"]);
    assert_eq!(
        with_match["on_output_match"],
        json!({"pattern": "p", "match_type": "contains", "stream": "stderr", "file": "/tmp/m"})
    );
    let overlaid = set(&["--output-match-type", "regex", "--output-command", "c"]);
    assert_eq!(
        overlaid["on_output_match"],
        json!({"pattern": "p", "match_type": "regex", "stream": "stderr", "command": "c", "file": "/tmp/m"})
    );
    assert_eq!(env.read_json(&id, "meta.json")["notification"], overlaid);
    let cleared = set(&["--output-pattern", ""]);
    assert!(cleared.get("on_output_match").is_none());
    assert_eq!(set(&["--command", ""])["notify_command"], "");
    // `run`'s names work too, and the completion file can be changed.
    assert_eq!(set(&["--notify-command", "c2"])["notify_command"], "c2");
    assert_eq!(set(&["--notify-file", "/tmp/other.ndjson"])["notify_file"], "/tmp/other.ndjson");
    assert_eq!(env.read_json(&id, "meta.json")["notification"]["notify_file"], "/tmp/other.ndjson");
    assert!(!Path::new(&marker).exists());

    // Nothing configured: `{}` in the answer, no key in meta.json.
    let bare = env.ok(&["create", "true"])["job_id"].as_str().expect("id").to_string();
    assert_eq!(env.ok(&["notify", "set", &bare, "--output-pattern", ""])["notification"], json!({}));
    assert!(env.read_json(&bare, "meta.json").get("notification").is_none());
    std::fs::write(env.job_dir(&bare).join("meta.json"), "not json").expect("corrupt");
    env.err(&["notify", "set", &bare, "--command", "x"], "internal_error");
}

#[test]
fn notify_and_tag_help_show_their_set_subcommand() {
    let env = Env::new();
    for (group, usage) in [("notify", "notify set <JOB_ID>"), ("tag", "tag set <JOB_ID>")] {
        for flag in ["--help", "-h"] {
            let out = env.run(&[group, flag]);
            assert!(out.status.success(), "{}", common::describe(&[group, flag], &out));
            assert!(String::from_utf8_lossy(&out.stdout).contains(usage));
        }
    }
}

#[test]
fn notify_set_on_a_running_job_sets_the_completion_sink() {
    let env = Env::new();
    let done = env.path("done");
    let (id, release) = gated_job(&env, &["--notify-command", "exit 9"], "true");
    env.ok(&["notify", "set", &id, "--command", &format!("cat > '{done}'")]);
    write_file(Path::new(&release), "");
    env.wait_job(&id);
    env.supervisor_gone(&id);
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&done).expect("sink ran")).expect("json");
    assert_eq!(event["job_id"], id.as_str());
    assert_eq!(delivery_results(&env, &id).expect("event")[0]["success"], true);
}

/// Slow output-match sinks held the completion back: every queued match was delivered
/// before `job.finished` (200 matches to a 2 s sink: 400 s), and `delete` refused the
/// ended job as "currently running" meanwhile. The completion now comes first, and
/// `delete` says what the supervisor is still doing.
#[test]
fn slow_match_sinks_do_not_hold_back_the_completion() {
    let env = Env::new();
    let done = env.path("done.ndjson");
    let run = env.ok(&[
        "run",
        "--output-pattern",
        "MATCH",
        "--output-command",
        "sleep 1",
        "--notify-file",
        &done,
        "--",
        "sh",
        "-c",
        "for i in $(seq 8); do echo MATCH $i; done",
    ]);
    let id = run["job_id"].as_str().expect("id").to_string();
    env.wait_job(&id);
    let finished = || std::fs::read_to_string(&done).is_ok_and(|text| text.contains("job.finished"));
    assert!(eventually(Duration::from_secs(60), finished), "no job.finished");
    // Eight deliveries take eight seconds; the completion did not wait for them (old:
    // all eight were recorded first).
    let delivered =
        |env: &Env| match_events(env, &id).iter().filter(|e| e["event_type"] == "job.output.matched").count();
    assert!(delivered(&env) < 8, "job.finished came after every match");
    let refused = env.err(&["delete", &id], "invalid_state");
    assert!(refused.to_string().contains("still delivering"), "{refused}");
    env.supervisor_gone(&id);
    assert_eq!(delivered(&env), 8, "the queued matches were delivered after the end");
    env.ok(&["delete", &id]);
}
