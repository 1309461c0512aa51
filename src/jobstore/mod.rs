//! The job store: the root directory, job ids, job directories and their files.
//!
//! Every JSON file is replaced atomically (`atomic`), every read-modify-write happens
//! under the job's lock (`Locked`), and readers never lock: judging whether a `running`
//! record's supervisor is really alive is `liveness`, persisting the verdict is the
//! engine's explicit step (`jobs::current`). **API boundary**: the layout and file formats
//! are shared with 0.1.18 (docs/compatibility.md §5).

mod atomic;
pub mod liveness;
pub mod meta_copy;
pub mod names;
pub mod outcome;
pub mod read;
pub mod root;
pub mod scan;
pub mod staging;
pub mod waiter;
pub mod watches;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use atomic::{Lock, write_atomic};
pub use root::{Root, home_dir};

use crate::error::{Code, Error, Result};
use crate::wire::{Meta, State};

pub const META: &str = "meta.json";
pub const STATE: &str = "state.json";
/// The supervisor's reserve for recording the end on a full disk (`supervisor::record`):
/// a `.tmp-` name, which readers and `gc` pass over.
pub const RESERVE: &str = ".tmp-reserve";
pub const RESERVE_BYTES: usize = 8 * 1024;
pub const STDOUT_LOG: &str = "stdout.log";
pub const STDERR_LOG: &str = "stderr.log";
pub const FULL_LOG: &str = "full.log";
pub const COMPLETION_EVENT: &str = "completion_event.json";
pub const MATCH_EVENTS: &str = "notification_events.ndjson";

/// `<log>.1`, the generation a log capped with `--max-log-bytes` was last rotated to
/// (written by the supervisor; read by tail and follow).
pub fn rotated_log(path: &std::path::Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    name.into()
}

/// docs/decisions.md OP-5: an id or prefix is 1 to 26 ASCII letters and digits. Checked before
/// the text is ever joined to a path.
pub fn valid_id(id: &str) -> bool {
    (1..=26).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A new id (docs/decisions.md OP-5): a ULID of the milliseconds since the epoch and 80
/// bits from the kernel's generator. Not through a user-space generator: seeding one
/// probed the CPU's features, each probe (`cpuid`) a trap to the hypervisor on a
/// virtual machine, and cost more than the call itself, on every `run`.
pub fn new_id() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut random = [0u8; 16];
    fill_random(&mut random);
    ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(u64::MAX), u128::from_ne_bytes(random)).to_string()
}

/// Fills `bytes` from `getrandom(2)`, or `/dev/urandom` where that call is missing. If
/// neither works, what is left is the time and our pid: an id taken already then fails
/// the job's creation (its directory exists), it never shares one.
fn fill_random(bytes: &mut [u8]) {
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the kernel writes at most the unfilled length into our buffer.
        let n = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0) };
        match n {
            n if n > 0 => filled += n as usize,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    if filled < bytes.len() {
        use std::io::Read;
        let urandom = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes[filled..]));
        if urandom.is_err() {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let fallback = (nanos as u64 ^ u64::from(std::process::id()).rotate_left(40)).to_ne_bytes();
            for (byte, value) in bytes[filled..].iter_mut().zip(fallback.iter().cycle()) {
                *byte = *value;
            }
        }
    }
}

/// One job directory, named by its id, directly below the root.
#[derive(Debug, Clone)]
pub struct JobDir {
    pub id: String,
    pub path: PathBuf,
}

impl JobDir {
    pub fn new(root: &Path, id: &str) -> JobDir {
        JobDir { id: id.to_string(), path: root.join(id) }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn file_string(&self, name: &str) -> String {
        self.file(name).to_string_lossy().into_owned()
    }

    pub fn read_meta(&self) -> Result<Meta> {
        self.read_file(META)
    }

    pub fn read_state(&self) -> Result<State> {
        self.read_file(STATE)
    }

    /// A job file; `job_not_found` when the job is gone. A `delete` or `gc` racing this
    /// read (a `wait` on the job, a `start`) removes the directory, and the file's
    /// absence then means the job no longer exists, not that its store is broken.
    fn read_file<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let path = self.file(name);
        read_json(&path).map_err(|e| {
            let missing = fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
            if missing && !is_job_dir(&self.path) { Error::not_found(&self.id) } else { e }
        })
    }

    /// Writes `meta.json` without the lock, for tests: a job being created is written
    /// through `staging::Staging`, every other write goes through `Locked`.
    #[cfg(test)]
    pub fn write_meta(&self, meta: &Meta) -> Result<()> {
        write_pretty(&self.path, META, meta)
    }

    /// Writes `state.json` without taking the lock: only for the supervisor's own
    /// records (it holds the lock where it must). A job being created is written through
    /// `staging::Staging`, every other write goes through `Locked`.
    pub fn write_state(&self, state: &State) -> Result<()> {
        write_pretty(&self.path, STATE, state)
    }

    /// Writes a terminal `state.json` that must not be lost (a failed start), with the
    /// in-place fallback of `write_or_overwrite` when the disk has no room for the
    /// atomic write. Same locking rule as `write_state`.
    pub fn write_final_state(&self, state: &State) -> Result<()> {
        atomic::write_or_overwrite(&self.path, STATE, &job_json(STATE, state)?)
    }

    /// Takes the job's lock (docs/decisions.md OP-12); it is released when the guard drops. The
    /// lock is not re-entrant: nothing may lock this job again while the guard lives.
    /// Gives up after `LOCK_PATIENCE` with an error naming the holder: a command never
    /// hangs behind a stopped process.
    pub fn lock(&self) -> Result<Locked> {
        self.lock_within(LOCK_PATIENCE)
    }

    /// `lock`, giving up after `patience` with one holder.
    pub fn lock_within(&self, patience: std::time::Duration) -> Result<Locked> {
        self.locked_or_busy(Lock::acquire_within(&self.path, patience)?, patience)
    }

    /// `lock`, giving up after `patience` in all, however often the lock changes hands.
    pub fn lock_before(&self, patience: std::time::Duration) -> Result<Locked> {
        self.locked_or_busy(Lock::acquire_before(&self.path, patience)?, patience)
    }

    fn locked_or_busy(&self, lock: Option<Lock>, patience: std::time::Duration) -> Result<Locked> {
        match lock {
            Some(lock) => Ok(Locked { job: self.clone(), _lock: lock }),
            None => Err(Error::internal(format!(
                "job {} is locked by another process ({}) for more than {} s: it may be stopped (SIGSTOP, a debugger)",
                self.id,
                lock_holder(&self.file(".lock")).map_or_else(|| "unknown pid".to_string(), |pid| format!("pid {pid}")),
                patience.as_secs_f64()
            ))),
        }
    }

    /// The job's lock, waiting as long as it takes: for the supervisor's own records,
    /// which must be written whatever happens (readers learn a terminal one meanwhile
    /// from the last-resort file, `supervisor::watch`).
    pub fn lock_waiting(&self) -> Result<Locked> {
        Ok(Locked { job: self.clone(), _lock: Lock::acquire(&self.path)? })
    }

    /// The job's lock if nobody holds it now (`None` if somebody does).
    pub fn try_lock(&self) -> Result<Option<Locked>> {
        Ok(Lock::try_acquire(&self.path)?.map(|lock| Locked { job: self.clone(), _lock: lock }))
    }
}

/// A job under its lock: the only way to read-modify-write `state.json` or `meta.json`
/// after the job exists (apart from the supervisor's own records). Whatever runs under
/// it receives the guard, so it never needs to, and never may, lock again. It holds its
/// own copy of the job's name and path rather than a borrow, so that the supervisor can
/// keep it across calls that need its state mutably.
pub struct Locked {
    job: JobDir,
    _lock: Lock,
}

impl Locked {
    pub fn job(&self) -> &JobDir {
        &self.job
    }

    pub fn read_state(&self) -> Result<State> {
        self.job.read_state()
    }

    pub fn read_meta(&self) -> Result<Meta> {
        self.job.read_meta()
    }

    /// `JobDir::write_final_state` under the lock.
    pub fn write_final_state(&self, state: &State) -> Result<()> {
        self.job.write_final_state(state)
    }

    pub fn write_state(&self, state: &State) -> Result<()> {
        write_pretty(&self.job.path, STATE, state)
    }

    /// Writes `meta.json` and the copy `list` reads in `state.json` (`meta_copy`). A crash
    /// or a failed write between the two files must not leave a copy that still looks
    /// current: it cannot when the new `meta.json` differs in size from the one the copy
    /// names, and otherwise (where timestamps are coarse, a rewrite within the same tick
    /// would keep the time too) the old copy is removed first. The new copy only saves
    /// `list` a file: if writing it fails, `list` reads `meta.json`.
    pub fn write_meta(&self, meta: &Meta) -> Result<()> {
        let bytes = job_json(META, meta)?;
        let state = self.read_state().ok();
        let same_size = |state: &&State| state.meta_copy.as_ref().is_some_and(|c| c.meta_size == bytes.len() as u64);
        if let Some(state) = state.as_ref().filter(same_size) {
            self.write_state(&State { meta_copy: None, ..state.clone() })?;
        }
        write_atomic(&self.job.path, META, &bytes)?;
        let stamp = fs::symlink_metadata(self.job.file(META)).ok().and_then(|m| meta_copy::Stamp::of_metadata(&m));
        if let (Some(mut state), Some(copy)) = (state, stamp.and_then(|stamp| meta_copy::copy(meta, stamp))) {
            state.meta_copy = Some(copy);
            let _ = self.write_state(&state);
        }
        Ok(())
    }
}

/// How long a command waits for one holder of a job's lock (`JobDir::lock`); the wait
/// starts over whenever the lock changes hands, so that a queue of writers on one job
/// (2,000 parallel `tag set`s took 15 s on two CPUs) is served in full.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The process holding an exclusive `flock` on `path`, from `/proc/locks` (matched by
/// the file's inode): for the message of a command that gave up waiting.
fn lock_holder(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let inode = fs::metadata(path).ok()?.ino();
    let locks = fs::read_to_string("/proc/locks").ok()?;
    // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`: pid, then major:minor:inode.
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, file) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        (*kind == "FLOCK" && file.rsplit(':').next()?.parse::<u64>().ok()? == inode).then(|| pid.parse().ok())?
    })
}

/// Is this a job directory: a real directory (not a symlink) holding `meta.json` or
/// `state.json`? Anything else below the root is never treated as a job (docs/decisions.md OP-5, OP-19).
pub fn is_job_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && (fs::symlink_metadata(path.join(META)).is_ok() || fs::symlink_metadata(path.join(STATE)).is_ok())
}

/// Reads a job's JSON file through the checks of `read`: a planted symlink, FIFO,
/// device, foreign or oversized file is an error of this job, never a hang or an abort.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let context = |refused: read::Refused| match refused {
        read::Refused::NotOurs { .. } => Error::new(
            Code::InsecureRoot,
            format!("{} is {refused}; remove the job or fix its owner (chown)", path.display()),
        ),
        other => Error::internal(format!("read {}: {other}", path.display())),
    };
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::internal(format!("read {}: path contains a NUL byte", path.display())))?;
    let file = read::open_checked(libc::AT_FDCWD, &cpath).map_err(context)?;
    let mut bytes = Vec::with_capacity(4096);
    read::read_capped(&file, &mut bytes, read::JSON_CAP).map_err(context)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::internal(format!("parse {}: {e}", path.display())))
}

/// Pretty JSON with two-space indentation and no trailing newline, as 0.1.18 writes.
pub fn write_pretty<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    write_atomic(dir, name, &job_json(name, value)?)
}

/// The bytes of a job file: pretty JSON, never larger than its readers accept
/// (`read::JSON_CAP`), so that a job defined with a huge command line or environment is
/// refused instead of written and then unreadable.
pub fn job_json<T: serde::Serialize>(name: &str, value: &T) -> Result<Vec<u8>> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::internal(format!("serialize {name}: {e}")))?;
    if bytes.len() > read::JSON_CAP {
        let message = format!(
            "{name} would be {} bytes, more than the {} MiB a job file may hold: shorten the command, environment or tags",
            bytes.len(),
            read::JSON_CAP >> 20
        );
        return Err(Error::new(Code::InvalidRequest, message));
    }
    Ok(bytes)
}

/// Whether a write failed for lack of space (a full disk, or a quota): a job's reserve
/// that fails so refuses the job (`Staging::create_reserve`, `supervisor::record`).
pub fn out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Makes the entries of directory `path` (a job directory renamed into the root) durable.
/// A failure is logged, not returned: it comes after the job exists, and changes nothing
/// of what a reader finds until a power cut.
pub fn sync_dir(path: &Path) {
    let synced = fs::File::open(path).and_then(|dir| dir.sync_all());
    if let Err(e) = synced {
        crate::debug!("sync {}: {e}", path.display());
    }
}

/// The message for a prefix that matches several jobs (docs/compatibility.md §2.5).
pub fn ambiguous(prefix: &str, mut candidates: Vec<String>) -> Error {
    candidates.sort();
    let shown = candidates.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    let more = if candidates.len() > 5 { format!(", ... and {} more", candidates.len() - 5) } else { String::new() };
    Error::new(Code::AmbiguousJobId, format!("ambiguous job ID prefix '{prefix}': matches {shown}{more}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_validation() {
        assert!(valid_id("01J9ZK3M8E5PQRSTVWYZ12ABCD"));
        assert!(valid_id("01j9"));
        for bad in ["", ".", "..", "a/b", "/etc", "%2F", "a\0b", "01J9ZK3M8E5PQRSTVWYZ12ABCDE", "a b", "é"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    /// New ids are ULIDs of now, random past the timestamp, and valid ids.
    #[test]
    fn new_ids_are_ulids_of_now_and_differ() {
        let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
        let before = now();
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let after = now();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            assert!(valid_id(id) && id.len() == 26, "{id}");
            let ulid = ulid::Ulid::from_string(id).expect("a ULID");
            assert!((before..=after).contains(&u128::from(ulid.timestamp_ms())), "{id}");
        }
        // 80 random bits: in 1,000 ids every one of the 16 random characters varies.
        for column in 10..26 {
            let distinct: std::collections::HashSet<u8> = ids.iter().map(|id| id.as_bytes()[column]).collect();
            assert!(distinct.len() > 8, "column {column}");
        }
    }

    #[test]
    fn ambiguity_lists_five_sorted_candidates() {
        let ids = ["F", "B", "A", "E", "D", "C", "G"].iter().map(|s| s.to_string()).collect();
        assert_eq!(ambiguous("x", ids).message, "ambiguous job ID prefix 'x': matches A, B, C, D, E, ... and 2 more");
    }
}
