//! Recording the terminal state whatever the storage does (README "Output and
//! storage"). The normal path is the atomic replace of `state.json`. When that fails
//! (full disk, file-size limit), a reserve created at start is used: a `.tmp-` file in
//! the job directory that already owns its disk blocks, so writing the state into it and
//! renaming it needs no new space. When even that fails (read-only directory), the
//! outcome goes to the last-resort file in the root that readers check
//! (`jobstore::outcome`).

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

use crate::jobstore::{self, JobDir, outcome};
use crate::wire::State;

/// Enough for any state record we write; allocated once per job.
const RESERVE_BYTES: usize = jobstore::RESERVE_BYTES;

/// Where a terminal record went.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// `state.json`.
    InJob,
    /// The last-resort file in the root (`jobstore::outcome`).
    LastResort,
}

pub struct Recorder {
    job: JobDir,
    reserve: Option<tempfile::NamedTempFile>,
}

impl Recorder {
    /// Creates the reserve; an error if the disk has no room for it (the job must not
    /// start: its end could not be recorded once the disk is full). Without one for any
    /// other reason the last-resort file is still there.
    ///
    /// The write alone sets the space aside: a filesystem allocates at `write` or, with
    /// delayed allocation (ext4, XFS), reserves the blocks then and counts them as used,
    /// so a disk that fills up later cannot take them. An fsync would add nothing for
    /// a file that is never read after a crash, and it used to cost every launch a
    /// journal commit before the start answer.
    pub fn new(job: &JobDir) -> Result<Recorder, String> {
        let made = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&job.path).and_then(|reserve| {
            reserve.as_file().write_all(&[b' '; RESERVE_BYTES])?;
            Ok(reserve)
        });
        match made {
            Ok(reserve) => Ok(Recorder { job: job.clone(), reserve: Some(reserve) }),
            Err(e) if jobstore::out_of_space(&e) => {
                Err(format!("no room for the job's records in {}: {e}", job.path.display()))
            }
            Err(_) => Ok(Recorder { job: job.clone(), reserve: None }),
        }
    }

    /// Takes over the reserve `run`'s front-end made in the staging directory. None if
    /// it is not there: the directory may be being deleted, and must not get a new file
    /// under `rm -r` (the last-resort file still serves).
    pub fn adopt(job: &JobDir) -> Recorder {
        let path = job.file(jobstore::RESERVE);
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .ok()
            .filter(|file| file.metadata().is_ok_and(|m| m.is_file() && m.len() >= RESERVE_BYTES as u64));
        match opened.zip(tempfile::TempPath::try_from_path(path).ok()) {
            Some((file, path)) => {
                Recorder { job: job.clone(), reserve: Some(tempfile::NamedTempFile::from_parts(file, path)) }
            }
            None => Recorder { job: job.clone(), reserve: None },
        }
    }

    /// Records a terminal state; returns where it went, or why it went nowhere.
    pub fn terminal(&mut self, state: &State) -> Result<Recorded, String> {
        let Err(first) = self.job.write_state(state) else { return Ok(Recorded::InJob) };
        if let Some(reserve) = self.reserve.take()
            && write_reserve(reserve, &self.job, state).is_ok()
        {
            return Ok(Recorded::InJob);
        }
        outcome::record(&self.job, state)
            .map(|()| Recorded::LastResort)
            .map_err(|last| format!("{}; last resort: {}", first.message, last.message))
    }
}

fn write_reserve(mut reserve: tempfile::NamedTempFile, job: &JobDir, state: &State) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let file = reserve.as_file_mut();
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_data()?;
    reserve.persist(job.file(jobstore::STATE)).map_err(|e| e.error)?;
    Ok(())
}
