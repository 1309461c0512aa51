//! What `delete` and `gc` share: judging whether a job may go, measuring it, and
//! removing it without racing the processes that still own it (docs/decisions.md OP-12, OP-19).
//!
//! Each command decides *which* jobs it wants from its own rules; this module only
//! guarantees that a job whose supervisor or job process is alive is never removed, and
//! that the decision is taken again under the job lock right before the removal, so a
//! concurrent `start` cannot launch a job into a directory that is being deleted.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::jobstore::{JobDir, Locked, liveness, outcome};
use crate::time;
use crate::wire::{JobResult, JobState, State, Status};

/// A job's condition as far as removal is concerned.
#[derive(Debug, Clone)]
pub enum Standing {
    /// `state.json` is missing or invalid; liveness cannot be judged.
    Unreadable,
    /// A process of the job is alive: never removable.
    Live(State),
    /// No process of the job is alive; a `running` record has been turned into the
    /// `failed` "supervisor lost" record every reader reports (docs/decisions.md OP-1).
    Settled(State),
}

impl Standing {
    /// Reads the state as every reader does, persisting the lost-supervisor repair
    /// (`jobs::current`, which locks: never called under the lock).
    pub fn read(job: &JobDir) -> Standing {
        match super::current(job) {
            Ok(state) => Standing::of(state),
            Err(_) => Standing::Unreadable,
        }
    }

    /// The same judgement from the raw file, under the job lock; the repair is applied
    /// in memory only, since the directory is about to go.
    fn read_locked(locked: &Locked) -> Standing {
        match locked.read_state() {
            Ok(state) => Standing::of(state),
            Err(_) => Standing::Unreadable,
        }
    }

    fn of(mut state: State) -> Standing {
        if liveness::is_live(&state) {
            return Standing::Live(state);
        }
        if state.status() == Status::Running {
            let reason = Some(liveness::SUPERVISOR_LOST.to_string());
            state.finish(Status::Failed, JobResult::default(), reason, time::now());
        }
        Standing::Settled(state)
    }

    /// The `state` reported in delete/gc entries.
    pub fn state(&self) -> JobState {
        match self {
            Standing::Unreadable => JobState::Unknown,
            Standing::Live(state) | Standing::Settled(state) => state.status().into(),
        }
    }
}

pub enum Removal {
    Removed,
    /// Under the lock the job no longer qualified; this is what it looks like now.
    Kept(Box<Standing>),
    /// The OS refused; the directory may be partly removed.
    Failed(std::io::Error),
}

/// How long a bulk removal waits for each job's lock (`remove_if`).
pub const BULK_LOCK_PATIENCE: Duration = Duration::from_secs(1);

/// Removes the job directory if `still_wanted` holds for its standing re-read under the
/// job lock. Removing a directory whose `.lock` we hold is fine on Linux, and a `start`
/// waiting for that lock then finds the directory gone instead of launching into it.
///
/// `patience` is how long to wait for the lock: a bulk removal (`gc`, `delete --all`)
/// goes through jobs one after another, and must not spend the full wait on each one
/// whose lock a stopped process holds.
pub fn remove_if(job: &JobDir, patience: Duration, still_wanted: impl Fn(&Standing) -> bool) -> Removal {
    let locked = match job.lock_within(patience) {
        Ok(locked) => locked,
        Err(e) => return Removal::Failed(std::io::Error::other(e.message)),
    };
    let standing = Standing::read_locked(&locked);
    if !still_wanted(&standing) {
        return Removal::Kept(Box::new(standing));
    }
    match fs::remove_dir_all(&job.path) {
        Ok(()) => {
            // The job's last-resort record, if one was left in the root, goes with it.
            outcome::clear(job);
            Removal::Removed
        }
        Err(e) => Removal::Failed(e),
    }
}

/// Bytes of the regular files below `path`, never following symlinks (docs/decisions.md OP-18):
/// a link to a large tree elsewhere is not what deleting the job frees. Unreadable
/// entries count as zero; the figure is informative.
pub fn dir_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => metadata.len(),
        Ok(metadata) if metadata.is_dir() => contents_size(path),
        _ => 0,
    }
}

/// Entry types come from the directory listing itself, so only regular files cost a
/// `stat` (for their size); symlinks are never followed.
fn contents_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            Ok(kind) if kind.is_dir() => contents_size(&entry.path()),
            _ => 0,
        })
        .fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_regular_files_and_ignores_symlinks() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let sub = dir.path().join("a/b");
        fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        fs::write(dir.path().join("x"), [0u8; 10]).unwrap_or_else(|e| panic!("{e}"));
        fs::write(sub.join("y"), [0u8; 5]).unwrap_or_else(|e| panic!("{e}"));
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        fs::write(outside.path().join("big"), [0u8; 1000]).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link-dir")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path().join("big"), dir.path().join("link-file"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dir_size(dir.path()), 15);
        assert_eq!(dir_size(&dir.path().join("missing")), 0);
    }

    #[test]
    fn a_running_record_without_a_live_process_is_settled_as_failed() {
        let mut state = State::new("X", Status::Running, time::now());
        state.supervisor_pid = Some(std::process::id());
        state.supervisor_pid_start = liveness::start_time(std::process::id()).map(|s| s + 1);
        match Standing::of(state) {
            Standing::Settled(s) => assert_eq!(s.status(), Status::Failed),
            other => panic!("{other:?}"),
        }
        let mut exited = State::new("X", Status::Exited, time::now());
        exited.supervisor_pid = Some(std::process::id());
        exited.supervisor_pid_start = liveness::start_time(std::process::id());
        assert!(matches!(Standing::of(exited), Standing::Live(_)));
    }
}
