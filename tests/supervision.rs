//! Supervision under faults: the supervisor is detached from the caller, survives the
//! caller's death, and a dead supervisor is never reported as a running job.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use common::{Env, alive, eventually};

fn pid_of(value: &serde_json::Value) -> i32 {
    value.as_u64().and_then(|p| i32::try_from(p).ok()).expect("pid")
}

#[test]
fn supervisor_is_detached_in_its_own_session_and_the_job_leads_its_group() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "30"]);
    let state = env.read_json(&id, "state.json");
    let supervisor = pid_of(&state["supervisor_pid"]);
    let job = pid_of(&state["pid"]);
    // SAFETY: getsid/getpgid only query.
    let (sup_sid, job_sid, job_pgid) = unsafe { (libc::getsid(supervisor), libc::getsid(job), libc::getpgid(job)) };
    let my_sid = unsafe { libc::getsid(0) };
    assert_ne!(sup_sid, my_sid, "supervisor shares the caller's session");
    assert_eq!((job_sid, job_pgid), (job, job), "job is not a session and group leader");
    let stat = std::fs::read_to_string(format!("/proc/{supervisor}/status")).expect("status");
    assert!(stat.lines().any(|l| l == "Threads:\t1"), "supervisor is not single-threaded");
    env.ok(&["kill", "--signal", "KILL", &id]);
}

/// After its answer, `run`'s launcher waits for the caller in `SCHED_BATCH`, so as not to
/// take its CPU (docs/decisions.md OP-2): the supervisor it becomes goes back to the
/// caller's policy once it has the job, and the job never leaves it.
#[test]
fn the_supervisor_and_the_job_keep_the_callers_scheduling_policy() {
    let env = Env::new();
    for policy in [libc::SCHED_OTHER, libc::SCHED_BATCH] {
        let args = ["run", "--snapshot-after", "0", "--", "echo captured; sleep 30"];
        let mut command = env.command(&args);
        // SAFETY: one system call between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let param = libc::sched_param { sched_priority: 0 };
                match libc::sched_setscheduler(0, policy, &param) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let out = command.output().expect("spawn");
        let id = common::single_json(&args, &out)["job_id"].as_str().expect("job_id").to_string();
        // Captured output means the supervisor has adopted the job.
        let stdout = env.job_dir(&id).join("stdout.log");
        let captured = || std::fs::read_to_string(&stdout).is_ok_and(|text| text.contains("captured"));
        assert!(eventually(Duration::from_secs(10), captured), "the job's output was never captured");
        let state = env.read_json(&id, "state.json");
        for key in ["supervisor_pid", "pid"] {
            // SAFETY: a query.
            let actual = unsafe { libc::sched_getscheduler(pid_of(&state[key])) };
            assert_eq!(actual, policy, "{key} runs in policy {actual}, the caller in {policy}");
        }
        env.ok(&["kill", "--signal", "KILL", &id]);
        env.wait_job(&id);
    }
}

/// The launcher waits for the caller to reap the CLI front-end before it execs the
/// supervisor, but not for ever: a caller that reads the answer and never reaps still
/// gets its job supervised.
#[test]
fn a_caller_that_never_reaps_the_front_end_still_gets_a_supervised_job() {
    let env = Env::new();
    let mut child = env
        .command(&["run", "--snapshot-after", "0", "--", "echo captured; sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut answer = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut answer).expect("answer");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON answer");
    let id = answer["job_id"].as_str().expect("job_id");
    let stdout = env.job_dir(id).join("stdout.log");
    let captured = || std::fs::read_to_string(&stdout).is_ok_and(|text| text.contains("captured"));
    assert!(eventually(Duration::from_secs(10), captured), "the job was never supervised");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).expect("stat");
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next()).expect("state");
    assert_eq!(state, Some('Z'), "the front-end was meant to be exited and not reaped yet: {stat}");
    child.wait().expect("reap");
    env.ok(&["kill", "--signal", "KILL", id]);
    env.wait_job(id);
}

#[test]
fn sigkill_of_the_supervisor_is_reported_as_failed_and_wait_returns() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "30"]);
    let state = env.read_json(&id, "state.json");
    let supervisor = pid_of(&state["supervisor_pid"]);
    let job = pid_of(&state["pid"]);
    // SAFETY: signalling processes this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(5), || !alive(supervisor as u64)));
    let value = env.ok(&["wait", "--forever", &id]);
    assert_eq!(value["state"], "failed");
    assert_eq!(value["error"], "supervisor lost");
    let status = env.ok(&["status", &id]);
    assert_eq!(status["state"], "failed");
    // The repair is persisted, so the answer never changes back.
    assert_eq!(env.read_json(&id, "state.json")["job"]["status"], "failed");
    let listed = env.ok(&["list"]);
    assert_eq!(listed["jobs"][0]["state"], "failed");
    // The orphaned job still runs: kill reaches it whatever the record says (issue 11).
    assert!(alive(job as u64));
    assert_eq!(env.ok(&["kill", &id])["delivered"], true);
    assert!(eventually(Duration::from_secs(20), || !alive(job as u64)), "kill left the orphan running");
}

/// Any signal but SIGKILL used to end the supervisor and lose the job's exit status
/// (`failed` / `supervisor lost`), so a `pkill agent-exec` or a stray `kill -USR1`
/// cost every running job its outcome. A stop request (TERM, INT, QUIT) now stops the
/// job as its timeout would and records it; signals that mean nothing to the
/// supervisor are ignored.
#[test]
fn signals_to_the_supervisor_never_lose_the_jobs_outcome() {
    let env = Env::new();
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT] {
        let id = env.start_job(&["sleep", "30"]);
        let supervisor = pid_of(&env.read_json(&id, "state.json")["supervisor_pid"]);
        // SAFETY: signalling a process this test started.
        unsafe { libc::kill(supervisor, signal) };
        let value = env.wait_job(&id);
        assert_eq!((value["state"].as_str(), value.get("error")), (Some("killed"), None), "signal {signal}: {value}");
        env.supervisor_gone(&id);
    }
    for signal in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGALRM, libc::SIGHUP, libc::SIGPIPE] {
        let id = env.start_job(&["sh", "-c", "sleep 30; exit 7"]);
        let state = env.read_json(&id, "state.json");
        let (supervisor, job) = (pid_of(&state["supervisor_pid"]), pid_of(&state["pid"]));
        // SAFETY: signalling processes this test started: the supervisor, then the job's
        // `sleep` through its group, so that the job exits 7 on its own.
        unsafe { libc::kill(supervisor, signal) };
        let group = job.to_string();
        let sleep_killed = || {
            let pkill = std::process::Command::new("pkill").args(["-KILL", "-g", &group, "-x", "sleep"]).status();
            pkill.expect("pkill").success()
        };
        // `sleep` exists once the shell has forked it.
        assert!(eventually(Duration::from_secs(10), sleep_killed), "no sleep in the job's group");
        let value = env.wait_job(&id);
        assert_eq!(
            (value["state"].as_str(), value["exit_code"].as_i64()),
            (Some("exited"), Some(7)),
            "signal {signal}: {value}"
        );
    }
    // What the supervisor ignores, its job does not: ignored dispositions survive exec.
    let value = env.ok(&["run", "--wait", "--", "sh", "-c", "kill -USR1 $$; echo survived"]);
    assert_eq!((value["state"].as_str(), value["signal"].as_str()), (Some("killed"), Some("USR1")), "{value}");
}

#[test]
fn a_reused_pid_is_never_signalled() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "30"]);
    let job_dir = env.job_dir(&id);
    let mut state = env.read_json(&id, "state.json");
    let job = pid_of(&state["pid"]);
    // Pretend the recorded job started at another time: it is then someone else's pid.
    state["pid_start"] = serde_json::json!(1);
    std::fs::write(job_dir.join("state.json"), serde_json::to_vec_pretty(&state).expect("json")).expect("write");
    env.ok(&["kill", "--signal", "KILL", &id]);
    assert!(alive(job as u64), "kill signalled a pid whose start time differs");
    // SAFETY: clean up.
    unsafe { libc::kill(-job, libc::SIGKILL) };
    env.wait_job(&id);
}

/// Starts `run` in its own process group and returns it.
fn spawn_caller(env: &Env, command: &[&str]) -> std::process::Child {
    let mut args = vec!["run", "--"];
    args.extend_from_slice(command);
    env.command(&args).process_group(0).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn run")
}

fn only_job(env: &Env) -> Option<String> {
    let list = env.ok(&["list", "--all"]);
    list["jobs"].as_array().and_then(|jobs| jobs.first()).and_then(|j| j["job_id"].as_str()).map(str::to_string)
}

#[test]
fn killing_the_callers_group_after_launch_leaves_the_job_running_to_completion() {
    let env = Env::new();
    let marker = env.cwd.join("finished");
    let script = format!("sleep 0.5; touch {}; exit 3", marker.display());
    let mut caller = spawn_caller(&env, &["sh", "-c", &script]);
    let caller_pid = caller.id();
    let mut id = None;
    assert!(eventually(Duration::from_secs(10), || {
        id = only_job(&env);
        id.as_ref().is_some_and(|id| {
            let state = env.read_json(id, "state.json");
            state["supervisor_pid"].as_u64().is_some_and(|p| p != u64::from(caller_pid)) && state["pid"].is_u64()
        })
    }));
    // SAFETY: the caller leads its own group (process_group(0)).
    unsafe { libc::kill(-(caller_pid as i32), libc::SIGKILL) };
    let _ = caller.wait();
    let id = id.expect("job id");
    let value = env.wait_job(&id);
    assert_eq!(value["state"], "exited");
    assert_eq!(value["exit_code"], 3);
    assert!(marker.exists());
}

#[test]
fn killing_the_caller_at_any_moment_never_leaves_a_job_running_forever() {
    let env = Env::new();
    for delay_ms in [0u64, 1, 2, 5, 10, 20] {
        let mut caller = spawn_caller(&env, &["true"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SAFETY: the caller leads its own group.
        unsafe { libc::kill(-(caller.id() as i32), libc::SIGKILL) };
        let _ = caller.wait();
    }
    let list = env.ok(&["list", "--all"]);
    for job in list["jobs"].as_array().expect("jobs") {
        let id = job["job_id"].as_str().expect("id");
        let value = env.ok(&["wait", "--until", "10000", id]);
        assert!(["exited", "failed"].contains(&value["state"].as_str().unwrap_or("")), "{id}: {value}");
    }
}

#[test]
fn fifty_concurrent_runs_are_all_recorded() {
    let env = Env::new();
    let children: Vec<_> = (0..50)
        .map(|i| {
            env.command(&["run", "--snapshot-after", "0", "--", "sh", "-c", &format!("echo job{i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let value = common::single_json(&["run"], &out);
        assert_eq!(value["ok"], true, "{}", common::describe(&["run"], &out));
        ids.push(value["job_id"].as_str().expect("id").to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    for id in &ids {
        assert_eq!(env.wait_job(id)["state"], "exited");
        let tail = env.ok(&["tail", id]);
        assert!(tail["stdout_tail"].as_str().is_some_and(|t| t.starts_with("job")));
    }
    assert_eq!(env.ok(&["list"])["jobs"].as_array().map(Vec::len), Some(50));
}

#[test]
fn lingering_descendants_do_not_delay_the_terminal_state() {
    let env = Env::new();
    // Were the terminal state held back until the lingering `sleep` ends, this wait
    // would pass its deadline and answer `running`.
    let value = env.ok(&["run", "--wait", "--until", "20000", "--", "sh", "-c", "sleep 300 & echo parent done"]);
    assert_eq!(value["state"], "exited");
    assert_eq!(value["final_snapshot"]["stdout_tail"], "parent done");
    let id = value["job_id"].as_str().expect("id");
    // The supervisor gives up on the inherited pipe after the 2 s drain and exits.
    let supervisor = env.read_json(id, "state.json")["supervisor_pid"].as_u64().expect("pid");
    assert!(eventually(Duration::from_secs(10), || !alive(supervisor)), "supervisor outlived the drain bound");
    let job = pid_of(&env.read_json(id, "state.json")["pid"]);
    // SAFETY: clean up the background sleep this test left in the job's group.
    unsafe { libc::kill(-job, libc::SIGKILL) };
}

#[test]
fn a_job_whose_process_name_is_not_utf8_can_still_be_killed() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    // A copy of sleep whose file name (and so its /proc comm) is not UTF-8.
    let odd = env.cwd.join(std::ffi::OsStr::from_bytes(b"\xff)x ("));
    std::fs::copy("/bin/sleep", &odd).expect("copy sleep");
    let id = env.start_job(&["exec \"$(printf './\\377)x (')\" 30"]);
    let pid = env.read_json(&id, "state.json")["pid"].as_i64().expect("pid");
    let renamed = || std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"\xff"));
    assert!(eventually(Duration::from_secs(5), renamed), "the job never exec'd the oddly named program");
    env.ok(&["kill", &id]);
    assert!(eventually(Duration::from_secs(5), || !alive(pid as u64)), "kill did not reach the job");
    assert_eq!(env.wait_job(&id)["state"], "killed");
}

/// A reader that finds a lost job repairs it only if the job's lock is free: held by
/// somebody else (a `kill` or `tag` stopped under it), `status`, `list` and `wait`
/// answer at once with what the repair would record, and the next free reader writes it.
/// They used to wait for the lock, for as long as its holder held it.
#[test]
fn a_reader_never_waits_on_a_held_lock_to_repair_a_lost_job() {
    use std::os::fd::AsRawFd;
    let env = Env::new();
    let id = env.start_job(&["sleep", "30"]);
    let state = env.read_json(&id, "state.json");
    let (supervisor, job) = (pid_of(&state["supervisor_pid"]), pid_of(&state["pid"]));
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(5), || !alive(supervisor as u64)));
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.job_dir(&id).join(".lock"))
        .expect("open the job lock");
    // SAFETY: flock on a descriptor we own; released when it closes.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    for args in [vec!["status", &id], vec!["list", "--all"], vec!["wait", "--until", "60000", &id]] {
        let out = common::output_within(&mut env.command(&args), Duration::from_secs(10));
        let out = out.unwrap_or_else(|| panic!("{args:?} waited for the lock"));
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
        let reported = if args[0] == "list" { value["jobs"][0].clone() } else { value };
        assert_eq!(reported["state"], "failed", "{args:?}: {reported}");
    }
    assert_eq!(env.read_json(&id, "state.json")["job"]["status"], "running", "written under a held lock");
    drop(lock);
    assert_eq!(env.ok(&["status", &id])["error"], "supervisor lost");
    assert_eq!(env.read_json(&id, "state.json")["job"]["status"], "failed");
    // SAFETY: the orphaned job's own process group.
    unsafe { libc::kill(-job, libc::SIGKILL) };
}

/// Holds a job's lock as a stopped `tag set` or `kill` would: an exclusive `flock` on
/// its `.lock`, released when the file closes.
fn hold_lock(env: &Env, id: &str) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.job_dir(id).join(".lock"))
        .expect("open the job lock");
    // SAFETY: flock on a descriptor we own; released when it closes.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    lock
}

/// Waits until the job's first output line is in its log: its supervisor is watching.
fn watching(env: &Env, id: &str) {
    let log = env.job_dir(id).join("stdout.log");
    let up = eventually(Duration::from_secs(10), || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("up")));
    assert!(up, "no output from {id}");
}

/// Starts a job that waits for a go, holds its lock once it runs, and lets it exit
/// with `code`: its end comes while the lock is held.
fn ending_under_a_held_lock(env: &Env, code: i32) -> (String, std::fs::File) {
    let go = env.path("go");
    let script = format!("echo up; while [ ! -e '{go}' ]; do sleep 0.02; done; exit {code}");
    let id = env.start_job(&["sh", "-c", &script]);
    watching(env, &id);
    let lock = hold_lock(env, &id);
    common::write_file(std::path::Path::new(&go), "");
    (id, lock)
}

/// A job that ends while somebody else holds its lock (a `tag set` or `kill` stopped
/// under it) is reported ended at once, and its record is written once the lock is
/// free; a command that needs the lock gives up, naming the holder. The supervisor used
/// to wait for the lock with the outcome in hand, and the dead job read `running` for
/// as long as the holder was stopped; `tag set` waited as long.
#[test]
fn a_job_ending_under_a_held_lock_is_reported_ended_and_recorded_once_it_is_free() {
    let env = Env::new();
    let (id, lock) = ending_under_a_held_lock(&env, 7);
    let ended = || env.ok(&["status", &id])["state"] == "exited";
    assert!(eventually(Duration::from_secs(10), ended), "{}", env.ok(&["status", &id]));
    let interim = env.ok(&["status", &id]);
    assert_eq!(interim["exit_code"], 7);
    let waited = env.ok(&["wait", "--until", "10000", &id]);
    assert_eq!((waited["state"].clone(), waited["exit_code"].clone()), (serde_json::json!("exited"), 7.into()));
    assert_eq!(env.ok(&["list", "--all"])["jobs"][0]["state"], "exited");
    assert_eq!(env.read_json(&id, "state.json")["job"]["status"], "running", "written under a held lock");
    let args = ["tag", "set", &id, "--tag", "x"];
    let out = common::output_within(&mut env.command(&args), Duration::from_secs(30)).expect("tag set gave up");
    let error = common::single_json(&args, &out);
    assert_eq!((out.status.code(), error["error"]["code"].clone()), (Some(1), "internal_error".into()), "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("locked by another process (pid {})", std::process::id())), "{message}");
    drop(lock);
    let recorded = || env.read_json(&id, "state.json")["job"]["status"] == "exited";
    assert!(eventually(Duration::from_secs(10), recorded), "{}", env.read_json(&id, "state.json"));
    let interim_file = env.job_dir(&id).with_file_name(format!(".outcome-{id}"));
    assert!(eventually(Duration::from_secs(10), || !interim_file.exists()), "the interim record stays");
    assert_eq!(env.ok(&["tag", "set", &id, "--tag", "x"])["tags"], serde_json::json!(["x"]));
    let recorded = env.ok(&["status", &id]);
    assert_eq!(recorded["exit_code"], 7);
    // The end is when the job ended, not when the lock came free (seconds later here).
    assert_eq!(recorded["finished_at"], interim["finished_at"]);
}

/// The heartbeat skips a beat while the lock is held instead of waiting for it: it used
/// to stop the supervisor's whole loop there, timeout and output included, for as long
/// as the holder was stopped.
#[test]
fn a_held_lock_stops_neither_the_supervisor_loop_nor_the_timeout() {
    let env = Env::new();
    let args = ["run", "--snapshot-after", "0", "--progress-every", "50", "--timeout", "1500", "--", "sh", "-c"];
    let id = env.ok(&[&args[..], &["echo up; sleep 30"]].concat())["job_id"].as_str().expect("id").to_string();
    watching(&env, &id);
    let lock = hold_lock(&env, &id);
    killed_at_once_and_recorded_once_free(&env, &id, lock);
}

/// The job reads `killed` while `lock` is held, and `state.json` says so once it is free.
fn killed_at_once_and_recorded_once_free(env: &Env, id: &str, lock: std::fs::File) {
    let killed = || env.ok(&["status", id])["state"] == "killed";
    assert!(eventually(Duration::from_secs(15), killed), "{}", env.ok(&["status", id]));
    drop(lock);
    assert!(eventually(Duration::from_secs(10), || env.read_json(id, "state.json")["job"]["status"] == "killed"));
}

/// `kill` under a held lock: the signal goes, and the answer says so once the short wait
/// for the `killed` record has passed; the supervisor records the real end. It used to
/// answer `internal_error` after the kill had happened, and a retry `delivered: false`.
#[test]
fn a_kill_under_a_held_lock_reports_the_signal_it_sent() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "echo up; exec sleep 60"]);
    watching(&env, &id);
    let lock = hold_lock(&env, &id);
    let args = ["kill", &id];
    let out = common::output_within(&mut env.command(&args), Duration::from_secs(5)).expect("kill answered");
    let answer = common::single_json(&args, &out);
    assert_eq!((answer["ok"].clone(), answer["delivered"].clone()), (true.into(), true.into()), "{answer}");
    killed_at_once_and_recorded_once_free(&env, &id, lock);
}

/// A bulk removal passes over a job whose lock a stopped process holds after a short
/// wait instead of the full one, and a removed job takes its last-resort record along.
#[test]
fn bulk_removal_passes_over_held_locks_and_removes_last_resort_records() {
    let env = Env::new();
    let done = env.ok(&["run", "--wait", "--", "true"])["job_id"].as_str().expect("id").to_string();
    let (ended, lock) = ending_under_a_held_lock(&env, 4);
    let interim = env.job_dir(&ended).with_file_name(format!(".outcome-{ended}"));
    assert!(eventually(Duration::from_secs(10), || interim.exists()), "no interim record");
    // The supervisor dies waiting for the lock: its interim record stays.
    let supervisor = pid_of(&env.read_json(&ended, "state.json")["supervisor_pid"]);
    // SAFETY: signalling a process this test started.
    unsafe { libc::kill(supervisor, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(5), || !alive(supervisor as u64)));
    let args = ["delete", "--all"];
    let out = common::output_within(&mut env.command(&args), Duration::from_secs(5)).expect("delete --all answered");
    let answer = common::single_json(&args, &out);
    let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
    let action = |id: &str| jobs.iter().find(|j| j["job_id"] == id).map(|j| j["action"].clone());
    assert_eq!((action(&done), action(&ended)), (Some("deleted".into()), Some("skipped".into())), "{answer}");
    drop(lock);
    assert_eq!(env.ok(&["status", &ended])["exit_code"], 4, "the interim record is the outcome");
    env.ok(&["delete", &ended]);
    assert!(!interim.exists(), "the last-resort record outlived its job");
}

/// A `start` whose supervisor finds the job's lock held (by a process stopped between
/// `start`'s record and the supervisor's) gives up before its front-end does: `start`
/// fails with the reason, and the job never runs. The supervisor used to wait for the
/// lock without end: `start` answered `running` after its 10 s, readers then reported
/// the job lost, and once the lock was free the job ran all the same.
#[test]
fn a_start_held_up_by_a_lock_fails_and_never_runs_later() {
    use std::os::fd::AsRawFd;
    let env = Env::new();
    // The lock must be taken between `start`'s `running` record and the supervisor's:
    // a window of a few milliseconds, so a round that misses it is run again.
    let caught = (0..20).find_map(|_| {
        let id = env.ok(&["create", "--", "sh", "-c", "echo ran"])["job_id"].as_str().expect("id").to_string();
        let start = env.command(&["start", &id]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start");
        let state = env.job_dir(&id).join("state.json");
        // A tight loop, not a poll: the window is short.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut text = String::new();
        while std::time::Instant::now() < deadline && !text.contains("\"running\"") && !text.contains("\"exited\"") {
            text = std::fs::read_to_string(&state).unwrap_or_default();
        }
        if !text.contains("\"running\"") {
            drop(start.wait_with_output());
            return None;
        }
        let lock = std::fs::File::options().append(true).open(env.job_dir(&id).join(".lock")).expect("open the lock");
        // SAFETY: flock on a descriptor we own.
        let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        // In the window: the supervisor has not recorded the job's process yet.
        let early = locked && env.read_json(&id, "state.json")["pid"].is_null();
        if early {
            Some((id, start, lock))
        } else {
            drop(start.wait_with_output());
            None
        }
    });
    let (id, start, lock) = caught.expect("the lock was never taken before the supervisor's");
    let out = start.wait_with_output().expect("start");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
    assert_eq!(out.status.code(), Some(1), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("could not start") && message.contains("is locked by another process"), "{message}");
    drop(lock);
    let status = env.ok(&["status", &id]);
    assert_eq!(status["state"], "failed", "{status}");
    // Nothing runs it later: its supervisor is gone.
    let supervisor = pid_of(&env.read_json(&id, "state.json")["supervisor_pid"]);
    assert!(eventually(Duration::from_secs(10), || !alive(supervisor as u64)));
    assert_eq!(std::fs::read_to_string(env.job_dir(&id).join("stdout.log")).unwrap_or_default(), "");
    assert_eq!(env.ok(&["status", &id])["state"], "failed");
}
