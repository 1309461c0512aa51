//! The last-resort record of a job's outcome, for when the job directory cannot take
//! one more write (full disk, read-only directory): the supervisor writes the terminal
//! `state.json` content to `<root>/.outcome-<id>` instead, and the reader's
//! lost-supervisor repair (`liveness::repair`) reports it rather than
//! `supervisor lost`. The supervisor also writes it while its terminal record waits for
//! a job lock that somebody else holds (who may be stopped), and removes it once the
//! record is in `state.json`; readers (`jobs::settle`) believe it over a `running`
//! record meanwhile. Root entries that are not directories are ignored by every
//! command (docs/compatibility.md §5.1), so older readers never see it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::JobDir;
use crate::error::Result;
use crate::wire::State;

/// A state record is a few hundred bytes; anything bigger is not ours.
const MAX_BYTES: u64 = 64 * 1024;

fn path(job: &JobDir) -> Option<PathBuf> {
    let root = job.path.parent()?;
    Some(root.join(format!(".outcome-{}", job.id)))
}

/// Writes the last-resort record (atomically, in the root).
pub fn record(job: &JobDir, state: &State) -> Result<()> {
    let root = job.path.parent().unwrap_or(&job.path);
    super::write_pretty(root, &format!(".outcome-{}", job.id), state)
}

/// The terminal state the supervisor could record only in the last-resort file, if any.
/// Opened without following symlinks or blocking, and only a regular file is read.
pub fn recorded(job: &JobDir) -> Option<State> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path(job)?)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).ok()?;
    let state: State = serde_json::from_slice(&bytes).ok()?;
    (state.job.id == job.id && state.status().is_terminal()).then_some(state)
}

/// Removes the last-resort record once its content is safely in `state.json`.
pub fn clear(job: &JobDir) {
    if let Some(path) = path(job) {
        let _ = std::fs::remove_file(path);
    }
}
