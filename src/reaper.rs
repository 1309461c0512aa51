//! PID 1 duties of the long-running front doors (`serve`, `mcp`). In a container either
//! is often the first process of its PID namespace, so every process orphaned inside it (each job's double-forked supervisor,
//! a job's background children) is re-parented to it, and nobody else will ever reap
//! them: without this, zombies pile up until `fork` fails.
//!
//! Neither needs the exit status of any of its children (jobs report through their
//! supervisors' files), so instead of a reaper thread it asks the kernel not to keep
//! zombies at all: SIGCHLD ignored with `SA_NOCLDWAIT`. Every child, our own launcher
//! children and re-parented orphans alike, is released the moment it exits. This can
//! never race with the launcher's wait for its first fork, which a `waitpid` reaper
//! thread could steal: that wait now simply returns `ECHILD` once the child is gone
//! (`supervisor::launch` accepts that), and children get the default disposition back
//! before they exec. Done always, not only as PID 1: a server run under a subreaper,
//! or by a parent that exits, has the same orphans. Nothing else in these processes may
//! wait for a child's status (none does: jobs report through their supervisors' files).
//!
//! The other duty of an init is the way out: `stop_the_namespace_if_init`.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long PID 1 gives the other processes of its namespace to end before it exits.
/// Under a container runtime's default stop timeout (10 s), with room for the requests
/// in flight. Halfway through, a second SIGTERM makes every supervisor send its job's
/// SIGKILL at once, whatever its kill-after.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub fn release_children_on_exit() -> Result<()> {
    // SAFETY: sigaction with a zeroed struct we own; SIG_IGN is not a handler, so nothing
    // runs in signal context.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_IGN;
        action.sa_flags = libc::SA_NOCLDWAIT;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(Error::io("ignore SIGCHLD", std::io::Error::last_os_error()));
    }
    // Zombies from before (a shell that ran jobs, then exec'd `serve` as PID 1) are not
    // released by the new disposition. Nothing of ours runs yet, so none is ours.
    // SAFETY: non-blocking waits for any child.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    Ok(())
}

/// Called by `serve` and `mcp` on their way out. When PID 1 of a PID namespace exits,
/// the kernel SIGKILLs every process left in it: each supervisor would die without
/// recording its job's end, and the job would stay `running` in the store for good
/// (a later reader in another namespace cannot even declare it lost). So PID 1 first
/// asks every process to stop: SIGTERM to all of them, which each supervisor answers
/// by stopping its job as its timeout would and recording the end (a second SIGTERM
/// halfway through cuts a long kill-after short). It then waits, at most `STOP_GRACE`,
/// until no other process is left. Not PID 1: nothing, since jobs
/// outlive the server that started them.
pub fn stop_the_namespace_if_init() {
    if std::process::id() != 1 {
        return;
    }
    crate::info!("PID 1 exiting: asking every process of the namespace to stop");
    // SAFETY: kill(-1) from PID 1 signals every other process of its namespace; signal
    // 0 only checks that one is left (ESRCH once none is).
    unsafe { libc::kill(-1, libc::SIGTERM) };
    let start = Instant::now();
    let mut escalated = false;
    while unsafe { libc::kill(-1, 0) } == 0 && start.elapsed() < STOP_GRACE {
        if !escalated && start.elapsed() >= STOP_GRACE / 2 {
            // SAFETY: as above.
            unsafe { libc::kill(-1, libc::SIGTERM) };
            escalated = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
