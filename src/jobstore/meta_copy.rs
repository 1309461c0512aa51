//! The copy of `meta.json`'s listed fields in `state.json` (`wire::MetaCopy`), which lets
//! `list` read one file per job instead of two: at 2,000 jobs, opening and reading the
//! second file was half of `list`'s time, nearly all of it in the kernel.
//!
//! Whoever writes `meta.json` writes the copy, under the same lock: the staging of a new
//! job, and `Locked::write_meta` (`tag set`, `notify set`). Every other writer of
//! `state.json` reads it, changes what it owns and writes the rest back, copy included.
//!
//! The copy names the `meta.json` it was taken from by its size and modification time,
//! and `list` uses it only while `meta.json` still matches: a `meta.json` replaced or
//! rewritten by anything else (agent-exec 0.1.18, an editor) sends `list` back to
//! reading it. Our own rewrite (`Locked::write_meta`) removes the copy before it
//! replaces `meta.json`, so that no crash between the two leaves a copy that looks
//! current where timestamps are coarse. The inode number would say more, but a root
//! restored with `cp -a` or `rsync -a` keeps sizes and times (to the nanosecond), not
//! inodes, and its jobs should stay one file each to list.

use std::os::unix::fs::MetadataExt;

use super::read::effective_uid;
use crate::wire::{Meta, MetaCopy};

/// The most the copied fields may take together, in bytes: a copy must never make
/// `state.json` too large for the places a terminal record must fit (the supervisor's
/// reserve, the in-place rewrite of a full disk: a few kilobytes). A job with more
/// (a very long working directory, hundreds of tags) has no copy and is listed from its
/// `meta.json`.
const MAX_COPIED: usize = 1024;

/// The size and modification time (nanoseconds since the epoch) of a `meta.json` that is
/// a regular file of ours; `None` for anything else, which never matches a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: u64,
}

impl Stamp {
    pub fn of_stat(stat: &libc::stat) -> Option<Stamp> {
        let regular = stat.st_mode & libc::S_IFMT == libc::S_IFREG;
        Stamp::new(regular, stat.st_uid, u64::try_from(stat.st_size).ok()?, stat.st_mtime, stat.st_mtime_nsec)
    }

    pub fn of_metadata(metadata: &std::fs::Metadata) -> Option<Stamp> {
        let regular = metadata.file_type().is_file();
        Stamp::new(regular, metadata.uid(), metadata.size(), metadata.mtime(), metadata.mtime_nsec())
    }

    fn new(regular: bool, owner: u32, size: u64, seconds: i64, nanoseconds: i64) -> Option<Stamp> {
        (regular && owner == effective_uid()).then_some(())?;
        let mtime_ns =
            u64::try_from(seconds).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(nanoseconds).ok()?)?;
        Some(Stamp { size, mtime_ns })
    }

    /// Does `copy` describe the `meta.json` with this stamp?
    pub fn matches(self, copy: &MetaCopy) -> bool {
        copy.meta_size == self.size && copy.meta_mtime_ns == self.mtime_ns
    }
}

/// The copy of `meta`, written as the file with `stamp`; `None` when it would be too
/// large to carry.
pub fn copy(meta: &Meta, stamp: Stamp) -> Option<MetaCopy> {
    let copy = MetaCopy {
        meta_size: stamp.size,
        meta_mtime_ns: stamp.mtime_ns,
        created_at: meta.created_at.clone(),
        cwd: meta.cwd.clone(),
        name: meta.name.clone(),
        tags: meta.tags.clone(),
    };
    // Measured as written (indented): escapes can make a field several times its length.
    serde_json::to_vec_pretty(&copy).is_ok_and(|bytes| bytes.len() <= MAX_COPIED).then_some(copy)
}
