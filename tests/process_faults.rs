//! SIGKILL of the supervisor at random moments of a job's life: during launch, while
//! output streams, around the final state write. Whatever the moment, the job is
//! reported terminal (or, if the kill came too late to matter, its real outcome), and
//! `wait` returns. The same for the front-end during the steps of `run`'s launch.
//! `AGENT_EXEC_SOAK=1` (see `make soak`) runs many more rounds.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, eventually};

fn rounds(normal: usize, soak: usize) -> usize {
    if std::env::var_os("AGENT_EXEC_SOAK").is_some() { soak } else { normal }
}

/// Pids of supervisors whose argv names a job directory under `root`.
fn supervisors_under(root: &std::path::Path) -> Vec<i32> {
    let needle = root.to_string_lossy().into_owned();
    common::all_pids()
        .into_iter()
        .filter(|&pid| {
            let argv = common::cmdline(pid);
            argv.contains("__supervise") && argv.contains(&needle)
        })
        .collect()
}

/// A cheap pseudo-random sequence, so a failing round can be replayed from its number.
fn delay_for(round: usize, max_us: u64) -> Duration {
    let mixed = (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    Duration::from_micros(mixed % max_us)
}

#[test]
fn killing_the_supervisor_at_any_moment_never_leaves_a_running_job() {
    let env = Env::new();
    for round in 0..rounds(12, 300) {
        let caller = env
            .command(&[
                "run",
                "--snapshot-after",
                "0",
                "--",
                "sh",
                "-c",
                "for i in 1 2 3 4 5 6 7 8; do echo line $i; done; sleep 0.05; echo end",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let delay = delay_for(round, 60_000);
        let started = Instant::now();
        let mut killed = false;
        while started.elapsed() < delay + Duration::from_millis(200) && !killed {
            if started.elapsed() >= delay {
                for pid in supervisors_under(&env.root) {
                    // SAFETY: signalling a supervisor this test launched.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    killed = true;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let out = caller.wait_with_output().expect("caller");
        let value = common::single_json(&["run"], &out);
        let id = value["job_id"].as_str().expect("id").to_string();
        // A terminal answer is proof enough that `wait` returned before its deadline.
        let end = env.ok(&["wait", "--until", "10000", &id]);
        assert!(
            ["exited", "failed"].contains(&end["state"].as_str().unwrap_or("")),
            "round {round} (delay {delay:?}): {end}"
        );
        if end["state"] == "failed" {
            let reason = end["error"].as_str().unwrap_or("");
            assert!(
                ["supervisor lost", "supervisor exited before starting the job"].contains(&reason),
                "round {round}: {end}"
            );
        }
        // Clean up any orphaned job process of this round.
        if let Some(pid) = env.read_json(&id, "state.json")["pid"].as_i64() {
            // SAFETY: the job's own process group.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
    assert!(eventually(Duration::from_secs(5), || supervisors_under(&env.root).is_empty()));
}

/// `run` launches in steps (docs/decisions.md OP-2): the supervisor forks the job's
/// process and holds it before its exec, the front-end writes the job directory (its
/// first `state.json` naming both processes) and renames it into place, then says `go`.
/// A front-end SIGKILLed at any moment leaves no job at all (the directory was still
/// staging), a job that failed without running its command, or a job that ran; never a
/// half-written job, a `running` job nobody supervises, or a process left behind.
#[test]
fn killing_the_front_end_at_any_moment_leaves_no_half_launched_job() {
    for observe in ANSWERS {
        killing_the_front_end_at_any_moment(observe);
    }
}

/// `run` flags for the two ends of a CLI launch (`supervisor::AfterAnswer`): an
/// immediate answer, after which the front-end exits and its launcher waits for that
/// exit before exec'ing the supervisor (`gx`), and an answer that observes the job, for
/// which the launcher execs it as soon as the front-end has read `ok` (`go`).
const ANSWERS: [&[&str]; 2] = [&["--snapshot-after", "0"], &["--snapshot-after", "3000"]];

fn killing_the_front_end_at_any_moment(observe: &[&str]) {
    let env = Env::new();
    let ran = env.dir.path().join("ran");
    std::fs::create_dir(&ran).expect("mkdir");
    fn run<'a>(observe: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
        [&["run"], observe, &["--"], command].concat()
    }
    // Kills are spread over the time a whole launch takes on this machine (and build).
    let timed = Instant::now();
    env.ok(&run(observe, &["true"]));
    let span = timed.elapsed().as_micros() as u64 + 1;
    for round in 0..rounds(24, 300) {
        let marker = ran.join(round.to_string());
        let marker_arg = marker.to_string_lossy();
        let mut front = env
            .command(&run(observe, &["touch", &marker_arg]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // The fault injection itself: a kill at a pseudo-random moment of the launch.
        std::thread::sleep(delay_for(round, span));
        // SAFETY: signalling the front-end this test started.
        unsafe { libc::kill(front.id() as i32, libc::SIGKILL) };
        front.wait().expect("reap front-end");
    }
    let listed = env.ok(&["list", "--all"]);
    assert_eq!(listed["skipped"], 0, "a half-written job: {listed}");
    let jobs = listed["jobs"].as_array().cloned().unwrap_or_default();
    // The first job is the timing run.
    for job in jobs
        .iter()
        .filter(|job| env.read_json(job["job_id"].as_str().unwrap_or(""), "meta.json")["command"][0] == "touch")
    {
        let id = job["job_id"].as_str().expect("id");
        for file in ["stdout.log", "stderr.log", "full.log"] {
            assert!(env.job_dir(id).join(file).is_file(), "job {id} lacks {file}");
        }
        let end = env.ok(&["wait", "--until", "10000", id]);
        let command = env.read_json(id, "meta.json")["command"].clone();
        let marker = std::path::PathBuf::from(command[1].as_str().expect("marker path"));
        match end["state"].as_str() {
            Some("exited") => assert!(marker.exists(), "{id} ({observe:?}) exited without running: {end}"),
            Some("failed") => {
                assert_eq!(end["error"], "the front-end exited before handing the job over", "{id}: {end}");
                assert!(!marker.exists(), "{id} ran although it failed to start: {end}");
            }
            _ => panic!("{id}: {end}"),
        }
    }
    assert!(eventually(Duration::from_secs(5), || supervisors_under(&env.root).is_empty()), "processes linger");
    // Every round killed at a different step: some before the job existed, some after.
    let made = jobs.len() - 1;
    assert!(made < rounds(24, 300), "{observe:?}: no round killed the front-end before the job was complete");
}

/// The window that random kills rarely hit, driven step by step: `strace` kills the
/// front-end of `run` on entry to a chosen system call. At its `writev` (`go` and the
/// spec, sent once the job directory is in place) the launcher finds the spec pipe
/// closed instead: the held job process exits without running the command, and the
/// supervisor records the job as failed. At its `rename` (the directory still staging)
/// no job is left at all. Either way every process is gone.
#[test]
fn a_front_end_gone_before_go_leaves_a_failed_job_that_never_ran() {
    let env = Env::new();
    let cases = ANSWERS.iter().flat_map(|observe| [("writev", true), ("rename", false)].map(|c| (observe, c)));
    for (round, (observe, (syscall, job_made))) in cases.enumerate() {
        let marker = env.dir.path().join(format!("ran-{round}-{syscall}"));
        let before = env.ok(&["list", "--all"])["jobs"].as_array().map_or(0, Vec::len);
        let root = env.root.to_string_lossy().into_owned();
        let marker_arg = marker.to_string_lossy().into_owned();
        let inject = format!("inject={syscall}:signal=KILL");
        let out = env
            .program(
                "strace",
                &["-o", "/dev/null", "-e", &format!("trace={syscall}"), "-e", &inject, "--", common::BIN, "--root"],
            )
            .args([&[root.as_str(), "run"], *observe, &["--", "touch", marker_arg.as_str()]].concat())
            .stderr(Stdio::null())
            .output()
            .expect("strace");
        assert!(out.stdout.is_empty(), "{observe:?}: the front-end answered: {}", String::from_utf8_lossy(&out.stdout));
        assert!(!out.status.success(), "{observe:?}: the front-end was not killed at its {syscall}");
        // Gone: the supervisor, and before it the launcher and the held job process, which
        // carry the front-end's argv (the marker) until the launcher's exec.
        let lingering = || {
            !supervisors_under(&env.root).is_empty()
                || common::all_pids().into_iter().any(|pid| common::cmdline(pid).contains(&marker_arg))
        };
        assert!(eventually(Duration::from_secs(10), || !lingering()), "processes linger");
        let jobs = env.ok(&["list", "--all"])["jobs"].as_array().cloned().unwrap_or_default();
        if job_made {
            assert_eq!(jobs.len(), before + 1, "{jobs:?}");
            let id = jobs
                .iter()
                .map(|j| j["job_id"].as_str().unwrap_or_default().to_string())
                .find(|id| env.read_json(id, "meta.json")["command"].to_string().contains(&marker_arg));
            let id = id.expect("the job of this round");
            let state = env.ok(&["status", &id]);
            assert_eq!(state["state"], "failed", "{observe:?}: {state}");
            assert_eq!(state["error"], "the front-end exited before handing the job over", "{observe:?}: {state}");
            assert_eq!(env.read_json(&id, "state.json")["pid"], serde_json::Value::Null);
        } else {
            assert_eq!(jobs.len(), before, "a job appeared for a launch that never made one: {jobs:?}");
        }
        assert!(!marker.exists(), "{observe:?}: the job ran without a go");
    }
}

#[test]
fn many_short_jobs_leave_no_supervisor_or_zombie_behind() {
    let env = Env::new();
    let n = rounds(60, 1000);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(env.start_job(&["true"]));
    }
    for id in &ids {
        assert_eq!(env.ok(&["wait", "--until", "30000", id])["state"], "exited");
    }
    assert!(eventually(Duration::from_secs(10), || supervisors_under(&env.root).is_empty()), "supervisors linger");
    // Supervisors are reparented to init (or a subreaper) and reaped there, whenever
    // that process gets to it: those zombies are not ours. Ours would be a zombie whose
    // parent is this test or an agent-exec process (a front-end or supervisor that never
    // reaped its child). One may exist for an instant (here or in a test running beside
    // this one); one that is still a zombie seconds later was never reaped.
    let me = std::process::id().to_string();
    let stat = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombies = || -> Vec<i32> {
        common::all_pids()
            .into_iter()
            .filter(|&pid| {
                let text = stat(pid);
                let Some((_, rest)) = text.rsplit_once(')') else { return false };
                let mut fields = rest.split_whitespace();
                let (state, parent) = (fields.next(), fields.next().unwrap_or_default());
                let parent_is_ours =
                    parent == me || parent.parse().is_ok_and(|p: i32| stat(p).contains("(agent-exec)"));
                state == Some("Z") && parent_is_ours
            })
            .collect()
    };
    let seen = zombies();
    let lasting = |pid: &i32| zombies().contains(pid);
    assert!(eventually(Duration::from_secs(5), || !seen.iter().any(lasting)), "zombies never reaped: {seen:?}");
}

/// The launcher of `run` is a copy of the front-end until it execs the supervisor, and it
/// used to keep the front-end's ends of their pipes: they were closed only when their
/// numbers happened to be low (the CLI), never under `serve`. A launch that never got
/// its `go` (here: a name already in use) then left the launcher and its held job
/// process waiting for ever, the front-end's argv on show, and every launch that did
/// get one waited half a second before its supervisor started. A caller holding fds 3
/// to 7 pushes the pipes above them, as `serve` does.
#[test]
fn a_launch_refused_before_go_leaves_no_process_whatever_the_callers_descriptors() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let holder = env.ok(&["run", "--snapshot-after", "0", "--name", "holder", "--", "sleep", "30"]);
    for observe in ANSWERS {
        let marker = "agent-exec-refused-launch-marker";
        let mut command = env.command(&[&["run"], observe, &["--name", "holder", "--", "echo", marker]].concat());
        // SAFETY: only dup2 (async-signal-safe) between fork and exec.
        unsafe {
            command.pre_exec(|| {
                for fd in 3..=9 {
                    if libc::dup2(0, fd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let out = command.stdin(Stdio::null()).stderr(Stdio::null()).output().expect("run");
        assert!(String::from_utf8_lossy(&out.stdout).contains("name_in_use"), "{observe:?}: {out:?}");
        let lingering =
            || common::all_pids().into_iter().filter(|&pid| common::cmdline(pid).contains(marker)).collect::<Vec<_>>();
        assert!(
            eventually(Duration::from_secs(5), || lingering().is_empty()),
            "{observe:?}: processes linger: {:?}",
            lingering()
        );
    }
    env.ok(&["kill", "--signal", "KILL", holder["job_id"].as_str().expect("id")]);
}

/// A launch spec longer than a pipe holds (here 2,000 variables of 100 bytes, about
/// 220 KB) reaches the job whole.
#[test]
fn a_launch_spec_longer_than_a_pipe_reaches_the_job() {
    let env = Env::new();
    let entries: Vec<String> = (0..2000).map(|i| format!("VAR{i}={}", "x".repeat(100))).collect();
    for observe in ANSWERS {
        let mut args = [&["run"], observe].concat();
        for entry in &entries {
            args.extend(["--env", entry.as_str()]);
        }
        args.extend(["--", "sh", "-c", "env | grep -c '^VAR'"]);
        let id = env.ok(&args)["job_id"].as_str().expect("id").to_string();
        let value = env.ok(&["wait", "--until", "10000", &id]);
        assert_eq!(value["state"], "exited", "{observe:?}: {value}");
        assert_eq!(env.ok(&["tail", &id])["stdout_tail"], "2000", "{observe:?}");
    }
}

/// Whatever descriptors the caller leaves open, the supervisor reads its own launch
/// spec: the launcher's pipe ends sit at numbers that depend on them, and a launcher
/// that moved them onto 3 and 4 after the job's pipes had taken those numbers handed
/// the supervisor the job's stderr as its spec (the job then ended `failed`, "the
/// front-end exited before handing the job over", with a caller holding only 0-2).
#[test]
fn the_supervisor_gets_its_spec_whatever_descriptors_the_caller_holds() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    for observe in ANSWERS {
        for extra in 0..=10 {
            let args = [&["run"], observe, &["--", "sh", "-c", "echo out; echo err >&2; exit 3"]].concat();
            let mut command = env.command(&args);
            // SAFETY: only dup2 (async-signal-safe) between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    // Nothing inherited from the harness above 2 (some hold fd 10 open), so
                    // that the extra descriptors alone decide the numbers.
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                    for fd in 3..3 + extra {
                        if libc::dup2(0, fd) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
            let out = command.stdin(Stdio::null()).stderr(Stdio::null()).output().expect("run");
            let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
            let id = value["job_id"].as_str().expect("id");
            let end = env.ok(&["wait", "--until", "10000", id]);
            let case = format!("{observe:?}, {extra} extra descriptors");
            assert_eq!(end["state"], "exited", "{case}: {end}");
            assert_eq!(end["exit_code"], 3, "{case}: {end}");
            let tail = env.ok(&["tail", id]);
            assert_eq!(tail["stdout_tail"], "out", "{case}: {tail}");
            assert_eq!(tail["stderr_tail"], "err", "{case}: {tail}");
        }
    }
}

/// A descriptor the caller leaves open across its exec of agent-exec (a harness reading
/// a pipe until its end, a make jobserver) reaches neither the supervisor nor the job:
/// the caller sees the end of its pipe as soon as the front-end has answered, not when
/// the job ends. `start` handed both its caller's descriptors above 4.
#[test]
fn a_callers_descriptors_reach_neither_the_supervisor_nor_the_job() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let created = env.ok(&["create", "--", "sleep", "30"]);
    let id = created["job_id"].as_str().expect("id").to_string();
    let launches: Vec<Vec<&str>> = vec![
        vec!["start", "--snapshot-after", "0", &id],
        vec!["run", "--snapshot-after", "0", "--", "sleep", "30"],
        vec!["run", "--snapshot-after", "50", "--", "sleep", "30"],
    ];
    for launch in launches {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 fills the array we own; the descriptors are closed below.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }, 0);
        let [read_end, write_end] = fds;
        let mut command = env.command(&launch);
        // SAFETY: only dup2 (async-signal-safe) between fork and exec; it clears the
        // close-on-exec flag of the copy, as a shell's `7>&1` does.
        unsafe {
            command.pre_exec(move || {
                for fd in [5, 7, 9, 12] {
                    if libc::dup2(write_end, fd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let out = command.stdin(Stdio::null()).stderr(Stdio::null()).output().expect("launch");
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
        assert_eq!(answer["ok"], true, "{launch:?}: {answer}");
        // SAFETY: closing our own write end; reading the non-blocking read end.
        unsafe { libc::close(write_end) };
        let at_end = || {
            let mut byte = 0u8;
            // SAFETY: a one-byte read into a local.
            unsafe { libc::read(read_end, (&raw mut byte).cast(), 1) == 0 }
        };
        assert!(eventually(Duration::from_secs(5), at_end), "{launch:?}: a process of the job holds the caller's pipe");
        // SAFETY: our own descriptor.
        unsafe { libc::close(read_end) };
    }
    for job in env.ok(&["list"])["jobs"].as_array().cloned().unwrap_or_default() {
        env.ok(&["kill", "--signal", "KILL", job["job_id"].as_str().expect("id")]);
    }
}

/// A `--cwd` removed after the front-end checked it, before the job process's chdir:
/// the job is recorded `failed` with the working directory as the reason. It read
/// "spawn : No such file or directory" (no program, wrong cause). `strace` holds the
/// front-end at the fork of its launcher (after the check) while the test removes the
/// directory.
#[test]
fn a_working_directory_removed_during_the_launch_is_the_recorded_reason() {
    let env = Env::new();
    let cwd = env.dir.path().join("vanishing");
    std::fs::create_dir(&cwd).expect("mkdir");
    let root = env.root.to_string_lossy().into_owned();
    let cwd_arg = cwd.to_string_lossy().into_owned();
    let tracer = env
        .program(
            "strace",
            &["-o", "/dev/null", "--seccomp-bpf", "-e", "trace=clone", "-e", "inject=clone:delay_enter=3000000"],
        )
        .args(["--", common::BIN, "--root", root.as_str(), "run", "--cwd", cwd_arg.as_str(), "--snapshot-after", "0"])
        .args(["--", "pwd"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    // The front-end is strace's child, held in `clone` (its fork of the launcher).
    let front_end = || {
        common::all_pids().into_iter().find(|&pid| {
            common::cmdline(pid).contains("vanishing")
                && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.rsplit(')').next().unwrap_or("").split_whitespace().nth(1) == Some(&tracer.id().to_string())
                })
        })
    };
    let in_fork = || {
        front_end().is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/syscall"))
                .is_ok_and(|s| s.starts_with(&format!("{} ", libc::SYS_clone)))
        })
    };
    assert!(eventually(Duration::from_secs(10), in_fork), "the front-end never reached its fork");
    std::fs::remove_dir(&cwd).expect("rmdir");
    let out = tracer.wait_with_output().expect("strace");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
    assert_eq!(value["state"], "failed", "{value}");
    let reason = value["error"].as_str().unwrap_or("");
    assert!(reason.starts_with(&format!("working directory {cwd_arg}")), "{value}");
}

/// The parent pid of `pid`, from `/proc`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
}

/// A process of the launch stopped (SIGSTOP, a debugger) holds `run` up at most the
/// handshake's deadline (10 s): it answers `running`, the record naming the stopped
/// processes, and the job runs and is recorded once they go on. `run` waited for good.
/// `strace` holds the front-end before its `go` while the test stops the job process
/// held at its gate.
#[test]
fn a_stopped_launch_holds_run_up_only_until_its_deadline() {
    let env = Env::new();
    let marker = "held-job-stopped";
    let root = env.root.to_string_lossy().into_owned();
    let args = ["--root", root.as_str(), "run", "--tag", marker, "--snapshot-after", "0", "--", "true"];
    // The held job process: its parent, the launcher, carries the front-end's argv too.
    let held = |tracer: i32, pid: i32| {
        let parent = parent_of(pid).unwrap_or(0);
        common::cmdline(pid).contains(marker) && parent != tracer && common::cmdline(parent).contains(marker)
    };
    let value =
        answer_with_a_process_stopped(&env, &args, held).expect("run waited on a stopped process without a deadline");
    assert_eq!(value["state"], "running", "{value}");
    let id = value["job_id"].as_str().expect("id");
    let end = env.ok(&["wait", "--until", "10000", id]);
    assert_eq!((end["state"].as_str(), end["exit_code"].as_i64()), (Some("exited"), Some(0)), "{end}");
}

/// Runs `agent-exec ARGS` under `strace`, which holds the front-end 1.5 s before its
/// `go` (its `writev`); meanwhile stops the first process `pick(strace's pid, pid)`
/// chooses, waits at most 30 s for the front-end to answer, and lets the stopped process
/// go on. The answer, or `None` if none came.
fn answer_with_a_process_stopped(
    env: &Env,
    args: &[&str],
    pick: impl Fn(i32, i32) -> bool,
) -> Option<serde_json::Value> {
    // A file: an answer can be longer than a pipe holds, and nobody reads it meanwhile.
    let answer_file = env.dir.path().join("answer.json");
    let mut tracer = env
        .program(
            "strace",
            &["-o", "/dev/null", "--seccomp-bpf", "-e", "trace=writev", "-e", "inject=writev:delay_enter=1500000"],
        )
        .arg("--")
        .arg(common::BIN)
        .args(args)
        .stdout(std::fs::File::create(&answer_file).expect("answer file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    let tracer_pid = tracer.id() as i32;
    let mut found = None;
    let picked = eventually(Duration::from_secs(10), || {
        found = common::all_pids().into_iter().find(|&pid| pick(tracer_pid, pid));
        found.is_some()
    });
    assert!(picked, "no process of the launch to stop");
    let stopped = found.expect("picked");
    // SAFETY: stopping a process of this test's launch.
    unsafe { libc::kill(stopped, libc::SIGSTOP) };
    let answered = eventually(Duration::from_secs(30), || matches!(tracer.try_wait(), Ok(Some(_))));
    // SAFETY: letting it go on, whatever happened.
    unsafe { libc::kill(stopped, libc::SIGCONT) };
    if !answered {
        let _ = tracer.kill();
    }
    tracer.wait().expect("strace");
    let answer = std::fs::read(&answer_file).expect("answer");
    answered.then(|| serde_json::from_slice(&answer).expect("one JSON answer"))
}

/// Ctrl-C, TERM, QUIT or HUP to `run` at any moment of its launch leaves no `.new-<id>`
/// staging directory: they are held back while one exists. About half of the
/// interrupted launches left one.
#[test]
fn an_interrupted_launch_leaves_no_staging_directory() {
    let env = Env::new();
    let timed = Instant::now();
    env.ok(&["run", "--snapshot-after", "0", "--", "true"]);
    let span = timed.elapsed().as_micros() as u64 + 1;
    let signals = [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP];
    for round in 0..rounds(40, 400) {
        let mut front = env
            .command(&["run", "--snapshot-after", "0", "--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // The fault injection itself: a signal at a pseudo-random moment of the launch.
        std::thread::sleep(delay_for(round, span));
        // SAFETY: signalling the front-end this test started.
        unsafe { libc::kill(front.id() as i32, signals[round % signals.len()]) };
        front.wait().expect("reap front-end");
    }
    let staged: Vec<String> = std::fs::read_dir(&env.root)
        .expect("root")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".new-"))
        .collect();
    assert!(staged.is_empty(), "left behind: {staged:?}");
    let listed = env.ok(&["list", "--all"]);
    for job in listed["jobs"].as_array().cloned().unwrap_or_default() {
        env.ok(&["wait", "--until", "10000", job["job_id"].as_str().expect("id")]);
    }
}

/// A process limit that stops the launch's second fork (the launcher) is reported as
/// that fork's error, as one that stops the first fork is, and leaves no job: it was
/// recorded "supervisor exited before starting the job". Run as a uid of its own
/// (54321, which no other process uses) under `prlimit --nproc=2`: the front-end and
/// its first child are the two processes allowed.
#[test]
fn a_process_limit_reached_during_the_launch_is_the_reported_reason() {
    use std::os::unix::fs::PermissionsExt;
    const UID: u32 = 54321;
    let env = Env::new();
    let dir = std::env::temp_dir().join(format!("agent-exec-nproc-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&dir, Some(UID), Some(UID)).expect("chown");
    let root = dir.join("jobs");
    let uid = UID.to_string();
    let out = env
        .program("setpriv", &["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
        .args(["prlimit", "--nproc=2:2", "--", common::BIN, "run", "--snapshot-after", "0", "--", "true"])
        .env("HOME", &dir)
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .env("AGENT_EXEC_ROOT", &root)
        .current_dir(&dir)
        .output()
        .expect("setpriv");
    let jobs = std::fs::read_dir(&root).map(|d| d.count()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON answer");
    assert_eq!(out.status.code(), Some(1), "{value}");
    let message = value["error"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("fork supervisor: Resource temporarily unavailable"), "{value}");
    assert_eq!(jobs, 0, "a job was left for a launch that never had a supervisor");
}

/// The same with a launch spec longer than a pipe holds and the launcher stopped before
/// it reads `go`: the front-end's write of the spec waited for good. It gives up at the
/// deadline and records the job `failed`; the launcher, once continued, finds the spec
/// cut short and lets the held job process exit without running it.
#[test]
fn a_stopped_launcher_holds_a_long_spec_only_until_the_deadline() {
    let env = Env::new();
    let marker = env.dir.path().join("ran-long-spec");
    let marker_arg = marker.to_string_lossy().into_owned();
    let root = env.root.to_string_lossy().into_owned();
    let entries: Vec<String> = (0..2000).map(|i| format!("VAR{i}={}", "x".repeat(100))).collect();
    let mut args = vec!["--root", root.as_str(), "run", "--snapshot-after", "0"];
    for entry in &entries {
        args.extend(["--env", entry.as_str()]);
    }
    args.extend(["--", "touch", marker_arg.as_str()]);
    // The launcher carries the front-end's argv, and its parent (init or a subreaper) does
    // not. It is stopped once the job directory is in place: the front-end is then held
    // before its `go`, and the launcher has reported the pids (stopped before that, it
    // made the front-end give up on the pids instead, a different failure).
    let in_place = || {
        std::fs::read_dir(&env.root)
            .is_ok_and(|entries| entries.flatten().any(|e| !e.file_name().to_string_lossy().starts_with('.')))
    };
    let launcher = |tracer: i32, pid: i32| {
        pid != tracer
            && common::cmdline(pid).contains(&marker_arg)
            && !common::cmdline(parent_of(pid).unwrap_or(0)).contains(&marker_arg)
            && in_place()
    };
    let value = answer_with_a_process_stopped(&env, &args, launcher)
        .expect("run waited on a stopped launcher without a deadline");
    assert_eq!(value["state"], "failed", "{value}");
    assert!(
        value["error"].as_str().unwrap_or("").starts_with("the supervisor did not take its launch spec"),
        "{value}"
    );
    let lingering = || common::all_pids().into_iter().any(|pid| common::cmdline(pid).contains(&marker_arg));
    assert!(eventually(Duration::from_secs(10), || !lingering()), "processes linger");
    assert!(!marker.exists(), "the job ran on a spec cut short");
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(env.ok(&["status", id])["state"], "failed");
}
