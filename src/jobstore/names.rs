//! Job names (issue 14 item 4): the claim files under `<root>/.names/` and `@NAME`.
//!
//! A name belongs to at most one non-terminal job of a root. `n-<NAME>` holds the id of
//! the job that claimed it last; the claim counts only while that job is neither
//! terminal nor lost, so a job that ends (or whose supervisor vanished) frees its name
//! without anyone having to remove the file. Claims are made under `NamesLock`, an
//! exclusive `flock` on the name's own `l-<NAME>`: the check of the current holder and
//! the creation of the new job are one step, so two concurrent `run --name x` start one
//! job. The lock is per name because `--if-running replace` holds it while it stops the
//! holder (up to its grace plus 10 s): only claims of that same name wait meanwhile.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use super::atomic::{Lock, write_atomic};
use super::{JobDir, Root, liveness, valid_id};
use crate::error::{Error, Result};

const DIR: &str = ".names";
/// Claim files get a prefix so that the names `.` and `..` are ordinary file names.
const PREFIX: &str = "n-";
/// A name's lock file; the lock is taken before the name's claim file is read.
const LOCK_PREFIX: &str = "l-";
const MAX_LEN: usize = 64;

/// 1 to 64 of `[A-Za-z0-9._-]`.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if (1..=MAX_LEN).contains(&name.len()) && name.bytes().all(allowed) {
        Ok(())
    } else {
        Err(format!("invalid name '{}': use 1-64 of A-Z a-z 0-9 . _ -", name.escape_debug()))
    }
}

/// Every claim of a name is made under this guard; it is released when dropped.
pub struct NamesLock {
    _lock: Lock,
}

impl Root {
    fn names_dir(&self) -> PathBuf {
        self.path.join(DIR)
    }

    /// Takes `name`'s lock, creating the root and `.names` (mode 0700) if needed.
    pub fn lock_name(&self, name: &str) -> Result<NamesLock> {
        self.create()?;
        let dir = self.names_dir();
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
        }
        Ok(NamesLock { _lock: Lock::acquire_file(&dir.join(format!("{LOCK_PREFIX}{name}")))? })
    }

    /// Records `job` as the holder of `name`; call under the name's lock.
    pub fn claim_name(&self, _guard: &NamesLock, name: &str, job: &JobDir) -> Result<()> {
        let id = serde_json::to_vec(&job.id).map_err(|e| Error::internal(format!("serialize name claim: {e}")))?;
        write_atomic(&self.names_dir(), &format!("{PREFIX}{name}"), &id)
    }

    /// The non-terminal, not lost job holding `name`, if any.
    pub fn name_holder(&self, name: &str) -> Option<JobDir> {
        let job = self.last_claimant(name)?;
        let state = job.read_state().ok()?;
        (!state.status().is_terminal() && !liveness::is_lost(&state)).then_some(job)
    }

    /// The job that claimed `name` last (its claim file's), if it still exists.
    fn last_claimant(&self, name: &str) -> Option<JobDir> {
        let path = self.names_dir().join(format!("{PREFIX}{name}"));
        let id: String = super::read_json(&path).ok()?;
        if !valid_id(&id) || !super::is_job_dir(&self.path.join(&id)) {
            return None;
        }
        Some(self.job(&id))
    }

    /// `@NAME`: the job holding the name, else the most recent job that had it: the
    /// last to claim it, whose claim file names it (ids do not tell: they are drawn
    /// before the name's lock is taken, and two drawn in one millisecond sort at random).
    /// Without a claim file (deleted, or a root of 0.1.18, which had none), the job with
    /// the name and the greatest id.
    pub fn lookup_name(&self, given: &str, name: &str) -> Result<JobDir> {
        if check_name(name).is_err() {
            return Err(Error::not_found(given));
        }
        if let Some(job) = self.last_claimant(name)
            && job.read_meta().is_ok_and(|meta| meta.name.as_deref() == Some(name))
        {
            return Ok(job);
        }
        let mut ids: Vec<String> = self.dir_names()?.unwrap_or_default().into_iter().filter(|n| valid_id(n)).collect();
        // ULIDs sort by creation time: the first match from the end is the most recent.
        ids.sort_unstable();
        ids.into_iter()
            .rev()
            .map(|id| self.job(&id))
            .find(|job| job.read_meta().is_ok_and(|meta| meta.name.as_deref() == Some(name)))
            .ok_or_else(|| Error::not_found(given))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "web-1", "A.b_c", ".", "..", &"x".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "é", "@x", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
