//! `--exit-code`: the job's outcome as our process exit status, the way `timeout(1)` and
//! `systemd-run --wait` report it, so a shell script or Make target needs no JSON parsing.

use crate::signals;
use crate::wire::{JobState, Readiness, WaitedJob};

/// The job was still running when the deadline passed (as `timeout(1)` exits).
pub const STILL_RUNNING: u8 = 124;
/// The job could not start or its supervisor was lost, so it has no exit status of its own.
pub const FAILED: u8 = 125;

/// The exit status that stands for a job in `state` with the recorded `exit_code` and
/// `signal`: its own code, 128+N for a death by signal N.
pub fn of(state: JobState, exit_code: Option<i32>, signal: Option<&str>) -> u8 {
    match state {
        JobState::Exited => exit_code.and_then(|c| u8::try_from(c).ok()).unwrap_or(FAILED),
        JobState::Killed => signal.and_then(signals::number).and_then(|n| u8::try_from(128 + n).ok()).unwrap_or(FAILED),
        JobState::Created | JobState::Running => STILL_RUNNING,
        JobState::Failed | JobState::Unknown => FAILED,
    }
}

/// With a readiness wait: 0 once ready; else 124 if the deadline passed with the job
/// going, else the job's own non-zero status, or 125 for a job that ended well but was
/// never ready. Without one: `of`.
pub fn of_ready(readiness: Option<&Readiness>, state: JobState, exit_code: Option<i32>, signal: Option<&str>) -> u8 {
    match readiness {
        None => of(state, exit_code, signal),
        Some(r) if r.ready => 0,
        Some(_) if !state.is_terminal() => STILL_RUNNING,
        Some(_) => match of(state, exit_code, signal) {
            0 => FAILED,
            code => code,
        },
    }
}

/// Many jobs: the first non-zero status in the order given, else 0. Under `--any` only
/// the jobs that ended count (124 if none did): the others were not waited for. No job
/// at all (a tag that matches nothing) is 0 in both modes: there was nothing to wait
/// for, and nothing is still running.
pub fn of_many(jobs: &[WaitedJob], any: bool) -> u8 {
    let counted: Vec<&WaitedJob> = jobs.iter().filter(|j| !any || j.state.is_terminal()).collect();
    if any && counted.is_empty() && !jobs.is_empty() {
        return STILL_RUNNING;
    }
    counted.iter().map(|j| of(j.state, j.exit_code, j.signal.as_deref())).find(|&code| code != 0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_outcome() {
        assert_eq!(of(JobState::Exited, Some(0), None), 0);
        assert_eq!(of(JobState::Exited, Some(3), None), 3);
        assert_eq!(of(JobState::Killed, None, Some("TERM")), 128 + 15);
        assert_eq!(of(JobState::Killed, None, Some("SEGV")), 128 + 11);
        assert_eq!(of(JobState::Killed, None, Some("40")), 128 + 40);
        assert_eq!(of(JobState::Running, None, None), STILL_RUNNING);
        assert_eq!(of(JobState::Created, None, None), STILL_RUNNING);
        assert_eq!(of(JobState::Failed, None, None), FAILED);
    }
}
