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

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
        Ok(Staging { dir, target, written: Vec::new(), meta_copy: None, committed: false, _signals: signals })
    }

    /// Written before `write_state`, which carries its copy.
    pub fn write_meta(&mut self, meta: &Meta) -> Result<()> {
        let written = self.write_json(META, meta)?;
        self.meta_copy =
            written.metadata().ok().and_then(|m| Stamp::of_metadata(&m)).and_then(|s| meta_copy::copy(meta, s));
        Ok(())
    }

    pub fn write_state(&mut self, state: &State) -> Result<()> {
        let state = State { meta_copy: self.meta_copy.clone(), ..state.clone() };
        self.write_json(STATE, &state)?;
        Ok(())
    }

    /// Returns the file written, kept open until `commit`.
    fn write_json<T: serde::Serialize>(&mut self, name: &str, value: &T) -> Result<&File> {
        let bytes = super::job_json(name, value)?;
        let path = self.dir.file(name);
        let context = |e| Error::io(format!("write {}", path.display()), e);
        let mut file = self.create_new(name).map_err(context)?;
        file.write_all(&bytes).map_err(context)?;
        // Starts the write-back now; `commit` waits for it. Only a hint: `fdatasync`
        // there is what makes the data durable, so a failure here changes nothing.
        // SAFETY: a descriptor we own; offset 0 and length 0 mean the whole file.
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        self.written.push(file);
        Ok(&self.written[self.written.len() - 1])
    }

    /// Creates the supervisor's reserve, its space already written (`supervisor::record`),
    /// so that the directory holds everything the supervisor starts with when `run`
    /// answers: an `rm -r` of it right after never races with a file being created.
    pub fn create_reserve(&self) -> Result<()> {
        let context = |e| Error::io(format!("create {}", self.dir.file(super::RESERVE).display()), e);
        let mut file = self.create_new(super::RESERVE).map_err(context)?;
        file.write_all(&[b' '; super::RESERVE_BYTES]).map_err(context)
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
        for file in self.written.drain(..) {
            file.sync_data().map_err(|e| Error::io(format!("write {}", self.dir.path.display()), e))?;
        }
        std::fs::rename(&self.dir.path, &self.target.path)
            .map_err(|e| Error::io(format!("create job directory {}", self.target.path.display()), e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
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
