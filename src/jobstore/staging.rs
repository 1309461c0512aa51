//! A job directory being assembled: `<root>/.new-<id>/`, which every reader skips, is
//! filled and then renamed whole to `<root>/<id>/`, so that no reader ever sees a job
//! without its `meta.json` and `state.json` (docs/decisions.md OP-2).
//!
//! Its files are new and invisible until that rename, so each is written in place,
//! created with `O_EXCL` (which never follows a symlink), instead of through a temporary
//! file and a rename of its own. Each file's data are sent to the disk as soon as it is
//! written (`sync_file_range`), and `commit` waits for all of them (`fdatasync`) before
//! the rename: the first wait commits the journal for every file, the others find their
//! data already there. A launch pays for one journal commit instead of one per file.
//!
//! `run` knows its first `state.json` only once the launcher reports the pids, and its
//! job may exec only once the directory is on disk. So that the costly part of that
//! (allocating the files' blocks, writing their inodes: a journal commit, or synchronous
//! metadata writes without a journal) overlaps the launcher's forks instead of following
//! them, it reserves `state.json` first (`reserve_state`: spaces as long as the widest
//! record, written and synced with `meta.json` by `sync`), then writes the record over
//! them in place (`fill_state`, padded with spaces to the same length, valid JSON), whose
//! sync in `commit` is then a one-block data write: no size, no new block to record.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::PathBuf;

use super::meta_copy::{self, Stamp};
use super::{FULL_LOG, JobDir, META, Root, STATE, STDERR_LOG, STDOUT_LOG};
use crate::error::{Error, Result};
use crate::signals;
use crate::wire::{Meta, MetaCopy, State};

pub struct Staging {
    dir: JobDir,
    target: JobDir,
    /// Written files whose data must be on disk before the rename.
    written: Vec<File>,
    /// The copy of the `meta.json` written, for `state.json` (`meta_copy`).
    meta_copy: Option<MetaCopy>,
    /// `state.json` reserved by `reserve_state`, and its length.
    reserved_state: Option<(File, usize)>,
    committed: bool,
    /// The signals that end a front-end (Ctrl-C, `kill`, a closed terminal), held back
    /// on this thread while the directory is staged: one arriving midway used to leave
    /// it behind. Dropped last, once it is renamed or removed. (SIGKILL cannot be held:
    /// `gc` removes what it leaves.)
    _signals: signals::Held,
}

impl Staging {
    /// Creates `<root>/.new-<id>/` (mode 0700). The root must exist.
    pub fn create(root: &Root, id: &str) -> Result<Staging> {
        let signals = signals::Held::new(&[libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP]);
        let target = root.job(id);
        let dir = JobDir { id: id.to_string(), path: path_of(&target) };
        DirBuilder::new()
            .mode(0o700)
            .create(&dir.path)
            .map_err(|e| Error::io(format!("create job directory {}", dir.path.display()), e))?;
        Ok(Staging {
            dir,
            target,
            written: Vec::new(),
            meta_copy: None,
            reserved_state: None,
            committed: false,
            _signals: signals,
        })
    }

    /// Written before `write_state`, which carries its copy.
    pub fn write_meta(&mut self, meta: &Meta) -> Result<()> {
        let written = self.write_json(META, meta)?;
        self.meta_copy =
            written.metadata().ok().and_then(|m| Stamp::of_metadata(&m)).and_then(|s| meta_copy::copy(meta, s));
        Ok(())
    }

    pub fn write_state(&mut self, state: &State) -> Result<()> {
        let bytes = self.state_bytes(state)?;
        self.write_new(STATE, &bytes)?;
        Ok(())
    }

    /// Creates `state.json` as spaces, as long as `widest` would be (written after
    /// `write_meta`, like `write_state`); `fill_state` writes the record over them.
    pub fn reserve_state(&mut self, widest: &State) -> Result<()> {
        let length = self.state_bytes(widest)?.len();
        let file = self.write_new(STATE, &vec![b' '; length])?.try_clone().map_err(|e| self.state_error(e))?;
        self.reserved_state = Some((file, length));
        Ok(())
    }

    /// Writes the record into the `state.json` reserved, padded with spaces to its
    /// length (a longer one, which `widest` rules out, would still be written whole).
    pub fn fill_state(&mut self, state: &State) -> Result<()> {
        let mut bytes = self.state_bytes(state)?;
        let Some((file, length)) = self.reserved_state.take() else { return self.write_state(state) };
        if bytes.len() < length {
            bytes.resize(length, b' ');
        }
        file.write_all_at(&bytes, 0).map_err(|e| self.state_error(e))?;
        start_write_back(&file);
        self.written.push(file);
        Ok(())
    }

    /// Waits for everything written so far to be on disk.
    pub fn sync(&mut self) -> Result<()> {
        for file in self.written.drain(..) {
            file.sync_data().map_err(|e| Error::io(format!("write {}", self.dir.path.display()), e))?;
        }
        Ok(())
    }

    fn state_bytes(&self, state: &State) -> Result<Vec<u8>> {
        super::job_json(STATE, &State { meta_copy: self.meta_copy.clone(), ..state.clone() })
    }

    fn state_error(&self, e: std::io::Error) -> Error {
        Error::io(format!("write {}", self.dir.file(STATE).display()), e)
    }

    /// Returns the file written, kept open until `commit`.
    fn write_json<T: serde::Serialize>(&mut self, name: &str, value: &T) -> Result<&File> {
        let bytes = super::job_json(name, value)?;
        self.write_new(name, &bytes)
    }

    fn write_new(&mut self, name: &str, bytes: &[u8]) -> Result<&File> {
        let path = self.dir.file(name);
        let context = |e| Error::io(format!("write {}", path.display()), e);
        let mut file = self.create_new(name).map_err(context)?;
        file.write_all(bytes).map_err(context)?;
        start_write_back(&file);
        self.written.push(file);
        Ok(&self.written[self.written.len() - 1])
    }

    /// Creates the supervisor's reserve, its space already written (`supervisor::record`),
    /// so that the directory holds everything the supervisor starts with when `run`
    /// answers: an `rm -r` of it right after never races with a file being created.
    ///
    /// Without the space for it, the job is not started: its end could not be recorded
    /// once the disk is full (a job started so, on a disk with room for its files but
    /// not its reserve, lost its exit status). Any other failure (a file-size limit under
    /// 8 KiB, which the records then fit under) leaves the supervisor without a reserve.
    pub fn create_reserve(&self) -> Result<()> {
        let context = |e| Error::io(format!("create {}", self.dir.file(super::RESERVE).display()), e);
        let created =
            self.create_new(super::RESERVE).and_then(|mut file| file.write_all(&[b' '; super::RESERVE_BYTES]));
        match created {
            Err(e) if super::out_of_space(&e) => Err(context(e)),
            _ => Ok(()),
        }
    }

    /// Creates the three logs, empty.
    pub fn create_logs(&self) -> Result<()> {
        for name in [STDOUT_LOG, STDERR_LOG, FULL_LOG] {
            self.create_new(name).map_err(|e| Error::io(format!("create {}", self.dir.file(name).display()), e))?;
        }
        Ok(())
    }

    fn create_new(&self, name: &str) -> std::io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.dir.file(name))
    }

    /// Waits for every written file to be on disk, then renames the directory into
    /// place. On any error (and when dropped uncommitted) the staging directory is
    /// removed.
    pub fn commit(mut self) -> Result<JobDir> {
        self.sync()?;
        std::fs::rename(&self.dir.path, &self.target.path)
            .map_err(|e| Error::io(format!("create job directory {}", self.target.path.display()), e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

/// Starts the write-back of `file` now; `sync` waits for it. Only a hint: `fdatasync`
/// there is what makes the data durable, so a failure here changes nothing.
fn start_write_back(file: &File) {
    // SAFETY: a descriptor we own; offset 0 and length 0 mean the whole file.
    unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Where the directory of `job` is assembled.
pub fn path_of(job: &JobDir) -> PathBuf {
    job.path.with_file_name(format!(".new-{}", job.id))
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Status;

    fn record(pid: u32) -> State {
        State {
            pid: Some(pid),
            supervisor_pid: Some(pid),
            ..State::new("01ARZ3NDEKTSV4RRFFQ69G5FAV", Status::Running, "2026-12-08T00:00:00Z".into())
        }
    }

    #[test]
    fn a_reserved_state_is_filled_in_place_to_its_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Root { path: dir.path().to_path_buf() };
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        let path = |staging: &Staging| staging.dir.file(STATE);
        for (widest, actual) in [(u32::MAX, 7), (7, u32::MAX)] {
            let mut staging = Staging::create(&root, id).expect("stage");
            staging.reserve_state(&record(widest)).expect("reserve");
            let reserved = std::fs::read(path(&staging)).expect("read");
            assert!(reserved.iter().all(|&b| b == b' '));
            staging.sync().expect("sync");
            staging.fill_state(&record(actual)).expect("fill");
            let filled = std::fs::read(path(&staging)).expect("read");
            // Shorter: padded to the reserved length; longer: written whole.
            assert_eq!(filled.len(), reserved.len().max(job_json_len(actual)));
            let state: State = serde_json::from_slice(&filled).expect("valid JSON");
            assert_eq!(state.pid, Some(actual));
            let job = staging.commit().expect("commit");
            assert_eq!(job.read_state().expect("read back").pid, Some(actual));
            std::fs::remove_dir_all(&job.path).expect("clean");
        }
    }

    fn job_json_len(pid: u32) -> usize {
        super::super::job_json(STATE, &record(pid)).expect("serialize").len()
    }
}
