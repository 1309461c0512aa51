//! `kill` reaches the job's process group whenever a member is alive, whatever
//! `state.json` says (issue 11, item 1): after a `killed` record for a job that trapped
//! TERM, and after the supervisor was SIGKILLed (recorded `failed`). TERM then KILL
//! always ends the job; the answer says whether a signal was delivered.

mod common;

use std::time::Duration;

use common::{Env, alive, eventually, group_members};

/// A job that survives TERM: the shell traps it and keeps forking `sleep`. After `ready`
/// it writes nowhere (a shell reports a child killed by TERM on stderr), so a dead
/// supervisor's closed pipes cannot end it with SIGPIPE either.
const TRAPS_TERM: &str = "trap : TERM; echo ready; exec >/dev/null 2>&1; while :; do sleep 0.1; done";

fn start_trapping_job(env: &Env) -> (String, u64) {
    let id = env.start_job(&["sh", "-c", TRAPS_TERM]);
    let log = env.job_dir(&id).join("stdout.log");
    let ready =
        eventually(Duration::from_secs(20), || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("ready")));
    assert!(ready, "job {id} never printed ready");
    let pid = env.read_json(&id, "state.json")["pid"].as_u64().expect("pid");
    (id, pid)
}

fn kill(env: &Env, id: &str, signal: &str) -> serde_json::Value {
    env.ok(&["kill", "--signal", signal, id])
}

/// TERM is delivered but does not end the job; KILL is delivered and does.
fn escalate(env: &Env, id: &str, pid: u64) {
    let term = kill(env, id, "TERM");
    assert_eq!(term["delivered"], true, "{term}");
    assert!(term.get("state").is_none(), "{term}");
    assert!(alive(pid), "the job should have trapped TERM");
    assert!(!group_members(pid).is_empty());
    let again = kill(env, id, "TERM");
    assert_eq!(again["delivered"], true, "a live group is signalled whatever the record says: {again}");
    let kill_answer = kill(env, id, "KILL");
    assert_eq!(kill_answer["delivered"], true, "{kill_answer}");
    assert!(
        eventually(Duration::from_secs(20), || group_members(pid).is_empty()),
        "group {pid} still has members: {:?}",
        group_members(pid)
    );
}

#[test]
fn term_then_kill_ends_a_job_that_traps_term() {
    let env = Env::new();
    let (id, pid) = start_trapping_job(&env);
    escalate(&env, &id, pid);
    let waited = env.wait_job(&id);
    assert_eq!(waited["state"], "killed", "{waited}");
    let after = kill(&env, &id, "TERM");
    assert_eq!((after["delivered"].as_bool(), after["state"].as_str()), (Some(false), Some("killed")), "{after}");
    env.supervisor_gone(&id);
    env.ok(&["delete", &id]);
}

#[test]
fn term_then_kill_ends_a_job_whose_supervisor_was_killed() {
    let env = Env::new();
    let (id, pid) = start_trapping_job(&env);
    let supervisor = env.read_json(&id, "state.json")["supervisor_pid"].as_u64().expect("supervisor_pid");
    // SAFETY: SIGKILL to the supervisor this test started.
    unsafe { libc::kill(supervisor as libc::pid_t, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(20), || !alive(supervisor)));
    let status = env.ok(&["status", &id]);
    assert_eq!((status["state"].as_str(), status["error"].as_str()), (Some("failed"), Some("supervisor lost")));
    env.err(&["delete", &id], "invalid_state");
    escalate(&env, &id, pid);
    let after = kill(&env, &id, "KILL");
    assert_eq!((after["delivered"].as_bool(), after["state"].as_str()), (Some(false), Some("failed")), "{after}");
    env.ok(&["delete", &id]);
}

#[test]
fn a_member_left_behind_by_its_leader_is_still_killed() {
    let env = Env::new();
    // The leader exits at once; its child stays in the group, trapping TERM.
    let id = env.start_job(&[
        "sh",
        "-c",
        "(trap : TERM; echo ready; exec >/dev/null 2>&1; while :; do sleep 0.1; done) & exit 0",
    ]);
    let log = env.job_dir(&id).join("stdout.log");
    assert!(eventually(Duration::from_secs(20), || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("ready"))));
    let pid = env.read_json(&id, "state.json")["pid"].as_u64().expect("pid");
    assert!(eventually(Duration::from_secs(20), || !alive(pid)), "leader {pid} did not exit");
    assert!(!group_members(pid).is_empty());
    let answer = kill(&env, &id, "KILL");
    assert_eq!(answer["delivered"], true, "{answer}");
    assert!(eventually(Duration::from_secs(20), || group_members(pid).is_empty()));
}

#[test]
fn killing_a_finished_job_says_it_had_finished() {
    let env = Env::new();
    let id = env.start_job(&["true"]);
    env.wait_job(&id);
    let answer = kill(&env, &id, "TERM");
    assert_eq!(answer["signal"], "TERM");
    assert_eq!((answer["delivered"].as_bool(), answer["state"].as_str()), (Some(false), Some("exited")), "{answer}");
}

/// The start time (field 22 of `/proc/PID/stat`) of a live process.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("comm").1;
    rest.split_whitespace().nth(19).and_then(|t| t.parse().ok()).expect("start time")
}

#[test]
fn pids_0_and_1_in_a_state_file_are_never_trusted_or_signalled() {
    let env = Env::new();
    for pid in [0u32, 1] {
        let id = env.start_job(&["true"]);
        env.wait_job(&id);
        env.supervisor_gone(&id);
        // A forged record: running, with pid 0 or 1 as both the job and its supervisor,
        // start times matching (pid 1 is alive and its start time is easy to read).
        env.edit_json(&id, "state.json", |state| {
            state["job"]["status"] = "running".into();
            for key in ["pid", "supervisor_pid"] {
                state[key] = pid.into();
            }
            for key in ["pid_start", "supervisor_pid_start"] {
                state[key] = start_time(1).into();
            }
        });
        // CONT is harmless if it were sent to every process (`kill(-1)`) or our group.
        let answer = kill(&env, &id, "CONT");
        assert_eq!(answer["delivered"], false, "pid {pid}: {answer}");
        let status = env.ok(&["status", &id]);
        assert_eq!((status["state"].as_str(), status["error"].as_str()), (Some("failed"), Some("supervisor lost")));
        env.ok(&["delete", &id]);
    }
}
