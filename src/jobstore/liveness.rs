//! Liveness, not trust (docs/decisions.md OP-1, OP-4): a `running` record is believed only while
//! the process responsible for the job is alive with the start time we recorded. A pid
//! alone proves nothing, since the kernel reuses them; pids 0 and 1 are never trusted
//! (`kill(0)` and `kill(-1)` would signal our own group or every process of the user);
//! and pids recorded in another PID namespace are not checked at all: there they name
//! other processes, or none (issue 11).

use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use super::{JobDir, Locked};
use crate::time;
use crate::wire::{JobResult, State, Status};

pub const SUPERVISOR_LOST: &str = "supervisor lost";

/// What `/proc/PID/stat` tells about a live (not zombie) process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    pgid: i64,
    sid: i64,
    /// Clock ticks since boot (field 22).
    start: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    // One read into a stack buffer: the file is a few hundred bytes, and this runs on
    // every read of a running job and twice per launch.
    let mut buffer = [0u8; 1024];
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let n = std::io::Read::read(&mut file, &mut buffer).ok()?;
    // The command name (field 2) may contain spaces, parentheses and any bytes: parse
    // only what follows its closing parenthesis.
    let close = buffer[..n].iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&buffer[close + 1..n]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let process_state = fields.next()?;
    if process_state == "Z" || process_state == "X" {
        return None;
    }
    let _ppid = fields.next()?;
    let pgid = fields.next()?.parse().ok()?;
    let sid = fields.next()?.parse().ok()?;
    let start = fields.nth(15)?.parse().ok()?;
    Some(ProcStat { pgid, sid, start })
}

/// The start time of a live process; `None` if it does not exist or is a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|stat| stat.start)
}

/// Does any live (not zombie) process other than `except` belong to process group
/// `pgid`? A scan of `/proc`; when `/proc` cannot be read the answer is yes, the safe
/// side for a caller that would otherwise give up on signalling the group.
pub fn group_has_members(pgid: u32, except: u32) -> bool {
    any_live_process(|pid, stat| pid != except && stat.pgid == i64::from(pgid)).unwrap_or(true)
}

/// Does a live process match `wanted`? `None` when `/proc` cannot be read.
fn any_live_process(wanted: impl Fn(u32, ProcStat) -> bool) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .any(|pid| proc_stat(pid).is_some_and(|stat| wanted(pid, stat))),
    )
}

/// The inode of our PID namespace, recorded with every pid we write (`pid_ns`).
pub fn pid_namespace() -> Option<u64> {
    static NAMESPACE: OnceLock<Option<u64>> = OnceLock::new();
    *NAMESPACE.get_or_init(|| std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino()))
}

/// Can we check (and signal) the pids of this record? Not when they were recorded in
/// another PID namespace. Records without `pid_ns` (0.1.18) are taken as ours.
pub fn checkable(state: &State) -> bool {
    state.pid_ns.is_none_or(|ns| pid_namespace() == Some(ns))
}

/// A pid we may look at: 0 and 1 never are.
fn trusted(pid: Option<u32>) -> Option<u32> {
    pid.filter(|&pid| pid > 1)
}

/// Is the process `pid` still the one that started at `start`?
pub fn same_process(pid: u32, start: Option<u64>) -> bool {
    if pid <= 1 {
        return false;
    }
    match start {
        Some(start) => start_time(pid) == Some(start),
        None => pid_exists(pid),
    }
}

fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 1 && unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

/// Has the process in charge of a `running` job gone? Until the start handshake that is
/// the front-end, then the supervisor. Records written by 0.1.18 have only `pid`. From
/// another PID namespace nothing is ever declared lost.
pub fn is_lost(state: &State) -> bool {
    if state.status() != Status::Running || !checkable(state) {
        return false;
    }
    match (state.supervisor_pid, state.pid) {
        (Some(pid), _) => !same_process(pid, state.supervisor_pid_start),
        (None, Some(pid)) => !pid_exists(pid),
        (None, None) => false,
    }
}

/// Does any process of this job still run? A `running` record counts while its
/// supervisor is alive; beyond that, the supervisor and the job's process group count
/// whenever they are still there, whatever the status says: a terminal record is
/// written before the supervisor has delivered its notifications, a job that traps
/// TERM outlives the `killed` record, and a killed supervisor can leave its job behind.
/// A pid without a start time (a 0.1.18 record) proves nothing once the job is
/// terminal, since pids are reused. A job of another PID namespace counts as live: we
/// cannot tell.
pub fn is_live(state: &State) -> bool {
    if !checkable(state) {
        return true;
    }
    let supervisor_alive = match (trusted(state.supervisor_pid), state.supervisor_pid_start) {
        (Some(pid), Some(start)) => start_time(pid) == Some(start),
        _ => false,
    };
    (state.status() == Status::Running && !is_lost(state)) || supervisor_alive || job_group(state).is_some()
}

/// The job's process group, if any member of it is alive. The job process leads its own
/// session and group, so the group id is its pid. A member is a process in that group
/// and session that did not start before the job did. The group cannot be another one
/// of the same number: the kernel does not reuse a pid while a group or session is
/// named by it, and a pid reused by a new leader shows a different start time.
pub fn job_group(state: &State) -> Option<u32> {
    if !checkable(state) {
        return None;
    }
    let (leader, start) = (trusted(state.pid)?, state.pid_start?);
    match proc_stat(leader) {
        Some(stat) if stat.start == start => return Some(leader),
        Some(_) => return None,
        None => {}
    }
    let group = i32::try_from(leader).ok()?;
    // SAFETY: signal 0 to a process group only checks that it has members.
    if unsafe { libc::kill(-group, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return None;
    }
    let is_member = |_, s: ProcStat| s.pgid == i64::from(group) && s.sid == i64::from(group) && s.start >= start;
    any_live_process(is_member)?.then_some(leader)
}

/// The lost-supervisor repair (docs/decisions.md OP-1), for a `running` record `seen` whose
/// responsible process is gone: re-checked under the job lock the caller holds, so that a
/// supervisor's own terminal record is never overwritten, then recorded. Taking the
/// caller's guard instead of locking makes a repair inside a locked section safe:
/// `flock` on a second descriptor of the same file would wait for ourselves.
pub fn repair(locked: &Locked, seen: State) -> State {
    let job = locked.job();
    match locked.read_state() {
        Ok(current) if is_lost(&current) => {
            let repaired = recorded_or_lost(job, current);
            if locked.write_state(&repaired).is_ok() {
                super::outcome::clear(job);
            }
            repaired
        }
        Ok(current) => current,
        Err(_) => recorded_or_lost(job, seen),
    }
}

/// What a lost job really became, in memory only: a supervisor that could not write its
/// terminal record to the job directory left it in the last-resort file (`outcome`),
/// which is the real outcome, not a loss.
pub fn recorded_or_lost(job: &JobDir, state: State) -> State {
    super::outcome::recorded(job).unwrap_or_else(|| lost(state))
}

/// The `failed` "supervisor lost" record, in memory only.
pub fn lost(mut state: State) -> State {
    state.finish(Status::Failed, JobResult::default(), Some(SUPERVISOR_LOST.to_string()), time::now());
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let me = std::process::id();
        let start = start_time(me);
        assert!(start.is_some());
        assert!(same_process(me, start));
        assert!(!same_process(me, start.map(|s| s + 1)));
    }

    #[test]
    fn pids_0_and_1_are_never_trusted() {
        for pid in [0, 1] {
            assert!(!same_process(pid, None));
            assert!(!pid_exists(pid));
            let mut state = State::new("X", Status::Killed, time::now());
            state.pid = Some(pid);
            state.pid_start = start_time(1);
            assert_eq!(job_group(&state), None);
            state.job.status = Status::Running;
            state.supervisor_pid = Some(pid);
            assert!(is_lost(&state));
        }
    }

    #[test]
    fn records_of_another_pid_namespace_are_never_judged() {
        let mut state = State::new("X", Status::Running, time::now());
        state.supervisor_pid = Some(std::process::id());
        state.supervisor_pid_start = Some(1);
        state.pid_ns = pid_namespace().map(|ns| ns + 1);
        assert!(!is_lost(&state));
        assert!(is_live(&state));
        state.pid = Some(std::process::id());
        state.pid_start = start_time(std::process::id());
        assert_eq!(job_group(&state), None);
        state.pid_ns = pid_namespace();
        assert!(is_lost(&state));
    }

    #[test]
    fn running_state_with_a_dead_supervisor_is_lost() {
        let mut state = State::new("X", Status::Running, time::now());
        state.supervisor_pid = Some(std::process::id());
        state.supervisor_pid_start = start_time(std::process::id());
        assert!(!is_lost(&state));
        state.supervisor_pid_start = Some(1);
        assert!(is_lost(&state));
        state.job.status = Status::Exited;
        assert!(!is_lost(&state));
    }
}
