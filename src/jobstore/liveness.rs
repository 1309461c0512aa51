//! Liveness, not trust (DECISIONS OP-1, OP-4): a `running` record is believed only while
//! the process responsible for the job is alive with the start time we recorded. A pid
//! alone proves nothing, since the kernel reuses them.

use super::JobDir;
use crate::time;
use crate::wire::{JobResult, State, Status};

pub const SUPERVISOR_LOST: &str = "supervisor lost";

/// The start time (clock ticks since boot, field 22 of `/proc/PID/stat`) of a live
/// process; `None` if it does not exist or is a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
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
    fields.nth(18)?.parse().ok()
}

/// Is the process `pid` still the one that started at `start`?
pub fn same_process(pid: u32, start: Option<u64>) -> bool {
    match start {
        Some(start) => start_time(pid) == Some(start),
        None => pid_exists(pid),
    }
}

fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

/// Has the process in charge of a `running` job gone? Until the start handshake that is
/// the front-end, then the supervisor. Records written by 0.1.18 have only `pid`.
pub fn is_lost(state: &State) -> bool {
    if state.status() != Status::Running {
        return false;
    }
    match (state.supervisor_pid, state.pid) {
        (Some(pid), _) => !same_process(pid, state.supervisor_pid_start),
        (None, Some(pid)) => !pid_exists(pid),
        (None, None) => false,
    }
}

/// Does any process of this job still run? A `running` record counts while its
/// supervisor is alive; beyond that, the supervisor and the job process count whenever
/// their recorded start time still matches, whatever the status says: a terminal
/// record is written before the supervisor has delivered its notifications, and a
/// killed supervisor can leave its job process behind. A pid without a start time (a
/// 0.1.18 record) proves nothing once the job is terminal, since pids are reused.
pub fn is_live(state: &State) -> bool {
    let matches = |pid: Option<u32>, start: Option<u64>| match (pid, start) {
        (Some(pid), Some(start)) => start_time(pid) == Some(start),
        _ => false,
    };
    (state.status() == Status::Running && !is_lost(state))
        || matches(state.supervisor_pid, state.supervisor_pid_start)
        || matches(state.pid, state.pid_start)
}

/// Returns the state to report; a lost job is recorded as `failed` under the job lock,
/// re-checked there so that a supervisor's own terminal record is never overwritten.
pub fn refresh(job: &JobDir, state: State) -> State {
    if !is_lost(&state) {
        return state;
    }
    // A supervisor that could not write its terminal record to the job directory left
    // it in the last-resort file (`outcome`): that is the real outcome, not a loss.
    let repaired = |state: State| super::outcome::recorded(job).unwrap_or_else(|| lost(state));
    let Ok(_lock) = job.lock() else { return repaired(state) };
    match job.read_state() {
        Ok(current) if is_lost(&current) => {
            let repaired = repaired(current);
            if job.write_state(&repaired).is_ok() {
                super::outcome::clear(job);
            }
            repaired
        }
        Ok(current) => current,
        Err(_) => repaired(state),
    }
}

fn lost(mut state: State) -> State {
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
