//! SIGKILL of the supervisor at random moments of a job's life: during launch, while
//! output streams, around the final state write. Whatever the moment, the job is
//! reported terminal (or, if the kill came too late to matter, its real outcome), and
//! `wait` returns. `AGENT_EXEC_SOAK=1` (see `make soak`) runs many more rounds.

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
