//! A costly output-match regex (docs/decisions.md OP-10): matching runs on the
//! supervisor's output-match thread, never in its event loop, so it delays neither
//! capture nor a timeout nor the terminal record; lines it cannot keep up with are
//! counted as skipped. A pattern whose compiled program is too large is refused where it
//! is given, and a readiness wait stops scanning at its deadline.
//!
//! The pattern here costs about a seventh of a second per 64 KiB line in a debug build,
//! so a job that prints 150 such lines (more than the 4 MiB the output-match queue
//! holds) outruns the matcher by far; the checks are on what the job's files record,
//! never on elapsed time.

mod common;

use std::time::Duration;

use common::{Env, alive, eventually};

/// Prints `lines` lines of 65,000 `a` and a `Z` (each matches `[a-z]{20}Z`, at its end,
/// after the whole line was scanned), then runs `then`.
fn costly_lines(lines: u32, then: &str) -> String {
    format!(
        "line=\"$(head -c 65000 /dev/zero | tr '\\0' a)Z\"; i=0; while [ $i -lt {lines} ]; do printf '%s\\n' \"$line\"; \
         i=$((i + 1)); done; {then}"
    )
}

const LINE_BYTES: u64 = 65_002;
const COSTLY: &str = "[a-z]{20}Z";

/// The counts of `notification_events.ndjson` once the supervisor is gone (after it
/// matched the lines it had queued, up to 4 MiB): matched events, and the skipped and
/// dropped counts.
fn match_counts(env: &Env, id: &str) -> (u64, u64, u64) {
    let pid = env.read_json(id, "state.json")["supervisor_pid"].as_u64().expect("supervisor_pid");
    assert!(eventually(Duration::from_secs(180), || !alive(pid)), "supervisor {pid} still matching");
    let events = std::fs::read_to_string(env.job_dir(id).join("notification_events.ndjson")).unwrap_or_default();
    let records: Vec<serde_json::Value> = events.lines().map(|l| serde_json::from_str(l).expect("record")).collect();
    let matched = records.iter().filter(|r| r["event_type"] == "job.output.matched").count() as u64;
    let count = |kind: &str, field: &str| {
        records.iter().filter(|r| r["event_type"] == kind).filter_map(|r| r[field].as_u64()).sum::<u64>()
    };
    (matched, count("job.output.skipped", "skipped"), count("job.output.dropped", "dropped"))
}

#[test]
fn a_costly_pattern_delays_neither_capture_nor_the_timeout() {
    let env = Env::new();
    let sink = env.path("matches.ndjson");
    let lines = 150;
    let answer = env.ok(&[
        "run",
        "--wait",
        "--until",
        "120000",
        "--no-full-log",
        "--timeout",
        "3000",
        "--output-match-type",
        "regex",
        "--output-pattern",
        COSTLY,
        "--output-file",
        &sink,
        "--",
        &costly_lines(lines, "sleep 600"),
    ]);
    // Killed by its timeout after it had written every line: capture kept pace with the
    // job although matching could not (before, the event loop matched each line before
    // reading the next, and the job was killed with a few lines written).
    assert_eq!(answer["state"], "killed", "{answer}");
    assert_eq!(answer["signal"], "TERM", "{answer}");
    let id = answer["job_id"].as_str().expect("id");
    let stdout = std::fs::metadata(env.job_dir(id).join("stdout.log")).expect("stdout.log").len();
    assert_eq!(stdout, u64::from(lines) * LINE_BYTES, "every line captured");
    let (matched, skipped, dropped) = match_counts(&env, id);
    assert!(skipped > 0, "the matcher fell behind, and says so: {matched} matched");
    assert_eq!(matched + skipped + dropped, u64::from(lines), "every line accounted for");
}

#[test]
fn the_terminal_record_does_not_wait_for_matching() {
    let env = Env::new();
    let lines = 150;
    let (answer, _) = env.answer(&[
        "run",
        "--wait",
        "--until",
        "120000",
        "--output-match-type",
        "regex",
        "--output-pattern",
        COSTLY,
        "--",
        &costly_lines(lines, "exit 7"),
    ]);
    assert_eq!(answer["state"], "exited", "{answer}");
    assert_eq!(answer["exit_code"], 7, "{answer}");
    let id = answer["job_id"].as_str().expect("id");
    // The exit drain used to match every line left in the pipes before recording the
    // exit; now the lines go to the output-match thread, which skips what it cannot
    // hold, and the record is written at once.
    let (matched, skipped, dropped) = match_counts(&env, id);
    assert!(skipped > 0, "{matched} matched, none skipped");
    assert_eq!(matched + skipped + dropped, u64::from(lines));
    let stdout = std::fs::metadata(env.job_dir(id).join("stdout.log")).expect("stdout.log").len();
    assert_eq!(stdout, u64::from(lines) * LINE_BYTES);
}

#[test]
fn a_readiness_wait_stops_scanning_at_its_deadline() {
    let env = Env::new();
    let answer = env.ok(&["run", "--wait", "--until", "60000", "--", &costly_lines(60, "echo READY")]);
    assert_eq!(answer["exit_code"], 0, "{answer}");
    let id = answer["job_id"].as_str().expect("id");
    // `READY` is the last line, after a minute's worth of matching: a wait of half a
    // second gives up before it (it used to scan the whole log first and say ready).
    let bounded =
        env.ok(&["wait", "--for-output", "[a-z]{20}Q|READY", "--output-match-type", "regex", "--until", "500", id]);
    assert_eq!(bounded["ready"], false, "{bounded}");
    // The line is there for a wait that matches cheaply, even one that only looks now.
    let cheap = env.ok(&["wait", "--for-output", "READY", "--until", "60000", id]);
    assert_eq!(cheap["ready"], true, "{cheap}");
    let now = env.ok(&["wait", "--for-output", "READY", "--until", "0", id]);
    assert_eq!(now["ready"], true, "{now}");
    env.ok(&["delete", id]);
}

#[test]
fn a_pattern_too_costly_to_match_is_refused_where_it_is_given() {
    let env = Env::new();
    let costly = "([a-z]{100}){40}Z";
    let message = env.usage(&["run", "--output-match-type", "regex", "--output-pattern", costly, "--", "true"]);
    assert!(message.contains("too costly") && message.contains("--output-pattern"), "{message}");
    let message = env.usage(&["wait", "--for-output", costly, "--output-match-type", "regex", "X"]);
    assert!(message.contains("too costly") && message.contains("--for-output"), "{message}");
    let id = env.start_job(&["true"]);
    env.wait_job(&id);
    let message = env.usage(&["notify", "set", &id, "--output-match-type", "regex", "--output-pattern", costly]);
    assert!(message.contains("too costly"), "{message}");
    // The largest ordinary patterns still compile.
    env.ok(&["notify", "set", &id, "--output-match-type", "regex", "--output-pattern", "[a-z]{300}Z"]);
    env.ok(&["delete", &id]);
}
