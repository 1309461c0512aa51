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
    let env = Env::new();
    let ran = env.dir.path().join("ran");
    std::fs::create_dir(&ran).expect("mkdir");
    // Kills are spread over the time a whole launch takes on this machine (and build).
    let timed = Instant::now();
    env.ok(&["run", "--snapshot-after", "0", "--", "true"]);
    let span = timed.elapsed().as_micros() as u64 + 1;
    for round in 0..rounds(24, 300) {
        let marker = ran.join(round.to_string());
        let mut front = env
            .command(&["run", "--snapshot-after", "0", "--", "touch", &marker.to_string_lossy()])
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
            Some("exited") => assert!(marker.exists(), "{id} exited without running: {end}"),
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
    assert!(made < rounds(24, 300), "no round killed the front-end before the job was complete");
}

/// The window that random kills rarely hit, driven step by step: this test plays the
/// front-end of a staged launch against a real supervisor (`agent-exec __supervise DIR`
/// with the spec pipe on fd 3 and the answer pipe on fd 4, as `supervisor::launch`
/// sets them up). It reads the pids, makes the job directory hold the record a
/// front-end writes, and then dies (closes the spec pipe) before saying `go`: the
/// supervisor records the job as failed, the held child never runs the command, and
/// both processes are gone. The same without any directory leaves nothing at all.
#[test]
fn a_front_end_gone_before_go_leaves_a_failed_job_that_never_ran() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    /// A pipe whose ends sit above fd 10, so that the dup2 onto 3 and 4 cannot clobber
    /// one another.
    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the array; F_DUPFD_CLOEXEC returns new descriptors, and
        // every descriptor is then owned here exactly once.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            let high = fds.map(|fd| {
                let new = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                libc::close(fd);
                assert!(new >= 10);
                new
            });
            (OwnedFd::from_raw_fd(high[0]), OwnedFd::from_raw_fd(high[1]))
        }
    }

    let env = Env::new();
    for with_directory in [true, false] {
        let marker = env.dir.path().join(format!("ran-{with_directory}"));
        let job = if with_directory {
            env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string()
        } else {
            "01J0000000000000000000GONE".to_string()
        };
        let job_dir = env.job_dir(&job);
        let (spec_read, spec_write) = pipe();
        let (ack_read, ack_write) = pipe();
        let (spec_fd, ack_fd) = (spec_read.as_raw_fd(), ack_write.as_raw_fd());
        let mut command = env.command(&["__supervise", &job_dir.to_string_lossy()]);
        // SAFETY: only dup2 (async-signal-safe) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(spec_fd, 3) < 0 || libc::dup2(ack_fd, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut supervisor = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("supervisor");
        drop((spec_read, ack_write));
        let mut spec_write = std::fs::File::from(spec_write);
        // The launch spec is private to the binary; this is its shape for a staged launch.
        let spec = serde_json::json!({
            "command": ["touch", marker.to_string_lossy()],
            "wrapper": ["sh", "-c"],
            "env": [],
            "env_files": [],
            "inherit_env": true,
            "cwd": null,
            "full_log": job_dir.join("full.log"),
            "timeout_ms": 0,
            "kill_after_ms": 0,
            "progress_every_ms": 0,
            "staged": true,
        });
        writeln!(spec_write, "{spec}").expect("send spec");
        // A supervisor that does not know staged launches waits for the end of the spec
        // instead of answering: give it a deadline rather than hang.
        let mut poll = libc::pollfd { fd: ack_read.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: polling one descriptor we own.
        assert_eq!(unsafe { libc::poll(&mut poll, 1, 10_000) }, 1, "no pids from the supervisor within 10 s");
        let mut answers = BufReader::new(std::fs::File::from(ack_read));
        let mut pids = String::new();
        answers.read_line(&mut pids).expect("pids");
        let fields: Vec<&str> = pids.trim_end().split('\t').collect();
        assert_eq!(fields.len(), 5, "{pids:?}");
        assert_eq!(fields[0], "pids", "{pids:?}");
        let (supervisor_pid, child): (u64, u64) =
            (fields[1].parse().expect("supervisor pid"), fields[3].parse().expect("job pid"));
        assert_eq!(supervisor_pid, u64::from(supervisor.id()));
        assert!(common::alive(child), "the held child is not there");
        if with_directory {
            env.edit_json(&job, "state.json", |state| {
                state["job"]["status"] = "running".into();
                state["pid"] = child.into();
                state["supervisor_pid"] = supervisor_pid.into();
            });
        }
        // The front-end dies here.
        drop(spec_write);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut answers, &mut rest).expect("answer");
        assert!(rest.starts_with("failed\tthe front-end exited before handing the job over"), "{rest:?}");
        supervisor.wait().expect("supervisor exits");
        assert!(eventually(Duration::from_secs(5), || !common::alive(child)), "the held child lingers");
        assert!(!marker.exists(), "the job ran without a go");
        if with_directory {
            let state = env.ok(&["status", &job]);
            assert_eq!(state["state"], "failed", "{state}");
            assert_eq!(env.read_json(&job, "state.json")["pid"], serde_json::Value::Null);
        } else {
            assert!(!job_dir.exists(), "a directory appeared for a launch that never made one");
        }
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
