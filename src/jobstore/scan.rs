//! Reading the small files of many jobs quickly, for `list`: paths are resolved relative
//! to an open descriptor of the root (two path components instead of the whole root
//! path per file), each file costs one `openat`, one `fstat` (the checks of `read`) and
//! its reads, and large roots are split across threads. At 20,000 jobs this is what
//! `list` spends its time on.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::Root;
use super::meta_copy::Stamp;
use super::read::{JSON_CAP, open_checked, read_capped};

pub struct Scan {
    root: OwnedFd,
}

impl Scan {
    /// `None` when the root cannot be opened (missing roots are handled by the caller).
    pub fn open(root: &Root) -> Option<Scan> {
        let path = CString::new(root.path.as_os_str().as_bytes()).ok()?;
        // SAFETY: a NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        // SAFETY: `fd` is a fresh descriptor when non-negative.
        (fd >= 0).then(|| Scan { root: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// One `getdents64` read of the root into `buffer`: each name `Root::dir_names`
    /// gives (directories below the root, dot-names and names that are not UTF-8 left
    /// out) goes to `each`. `Some(false)` once the directory is read to its end, `None` if
    /// it cannot be read. The standard library's reader allocates twice per entry.
    fn read_some(&self, buffer: &mut [u8], each: &mut impl FnMut(String)) -> Option<bool> {
        // Header of a `linux_dirent64`: inode (8 bytes), offset (8), record length (2),
        // type (1), then the NUL-terminated name.
        const NAME_AT: usize = 19;
        // SAFETY: the kernel writes at most `buffer.len()` bytes into our buffer.
        let n =
            unsafe { libc::syscall(libc::SYS_getdents64, self.root.as_raw_fd(), buffer.as_mut_ptr(), buffer.len()) };
        let filled = usize::try_from(n).ok()?;
        let mut at = 0;
        while at + NAME_AT < filled {
            let length = usize::from(u16::from_ne_bytes([buffer[at + 16], buffer[at + 17]]));
            let kind = buffer[at + 18];
            if length <= NAME_AT {
                // Not a record the kernel writes; stop rather than loop.
                return None;
            }
            let record = buffer.get(at + NAME_AT..at + length)?;
            at += length;
            let Ok(name) = CStr::from_bytes_until_nul(record) else { continue };
            let directory = match kind {
                libc::DT_DIR => true,
                libc::DT_UNKNOWN => self.is_directory(name),
                _ => false,
            };
            if let (true, Ok(name)) = (directory, name.to_str())
                && !name.starts_with('.')
            {
                each(name.to_string());
            }
        }
        Some(filled > 0)
    }

    /// Maps `f` over the names `Root::dir_names` gives, in no particular order: on one
    /// thread more than there are CPUs, at most five (this one included), when the root
    /// is large enough to pay for them. The other threads start on the first names while
    /// this one is still reading the directory (at 2,000 jobs the reading took a
    /// millisecond, all of it before the first job file was opened), and each result is
    /// written once, into the vector returned (a second copy of a few hundred kilobytes
    /// cost a page fault per fresh page, which `list` felt). `None` if the directory
    /// cannot be read.
    pub fn par_map_dirs<T: Send>(&self, f: impl Fn(&str) -> T + Sync) -> Option<Vec<T>> {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut first = Vec::new();
        let more = self.read_some(&mut buffer, &mut |name| first.push(name))?;
        // One thread more than there are CPUs: this one spends its first part reading
        // the directory, and the two others on two CPUs kept both busy meanwhile (at
        // 2,000 jobs on 2 CPUs: 15.6 ms against 17.4 with two threads).
        let threads = (usable_cpus() + 1).min(5);
        if threads < 2 || (!more && first.len() < 256) {
            let mut mapped: Vec<T> = first.iter().map(|name| f(name)).collect();
            let mut more = more;
            while more {
                more = self.read_some(&mut buffer, &mut |name| mapped.push(f(&name)))?;
            }
            return Some(mapped);
        }
        let feed = Feed::new(first, self.subdirectories());
        let read = std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(|| feed.work(&f));
            }
            let mut read = Some(more);
            let mut block = Vec::with_capacity(BLOCK);
            while read == Some(true) {
                read = self.read_some(&mut buffer, &mut |name| {
                    block.push(name);
                    if block.len() == BLOCK {
                        feed.push(std::mem::replace(&mut block, Vec::with_capacity(BLOCK)));
                    }
                });
            }
            feed.push(block);
            feed.close();
            feed.work(&f);
            read
        });
        read.map(|_| feed.into_vec())
    }

    /// How many directories the root holds, from its link count (two plus one per
    /// subdirectory on ext4, xfs and tmpfs; 1, hence 0 here, where it is not kept).
    fn subdirectories(&self) -> usize {
        // SAFETY: fstat fills the zeroed struct we own.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(self.root.as_raw_fd(), &mut stat) } != 0 {
            return 0;
        }
        usize::try_from(stat.st_nlink).unwrap_or(0).saturating_sub(2).min(1 << 20)
    }

    /// For filesystems that do not report entry types.
    fn is_directory(&self, name: &CStr) -> bool {
        // SAFETY: fstatat fills the zeroed struct we own; the name is NUL-terminated.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        let found =
            unsafe { libc::fstatat(self.root.as_raw_fd(), name.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) } == 0;
        found && stat.st_mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// Calls `use_bytes` with the content of `<root>/<job>/<file>`, or returns `None` if
    /// it cannot be read. The bytes live in a buffer kept per thread, so reading
    /// thousands of files allocates nothing (musl's allocator, in the static build, is
    /// slow and takes a global lock).
    pub fn with_file<T>(&self, job: &str, file: &str, use_bytes: impl FnOnce(&[u8]) -> T) -> Option<T> {
        thread_local! {
            static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(8192));
        }
        let file = at_path(job, file, |path| open_checked(self.root.as_raw_fd(), path).ok())?;
        BUFFER.with(|buffer| {
            let mut content = buffer.borrow_mut();
            content.clear();
            read_capped(&file, &mut content, JSON_CAP).ok()?;
            Some(use_bytes(&content))
        })
    }

    /// The stamp of `<root>/<job>/<file>` (`meta_copy`): one `fstatat`, which does not
    /// follow a symlink.
    pub fn stamp(&self, job: &str, file: &str) -> Option<Stamp> {
        at_path(job, file, |path| {
            // SAFETY: fstatat fills the zeroed struct we own; the path is NUL-terminated.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            let found =
                unsafe { libc::fstatat(self.root.as_raw_fd(), path.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) }
                    == 0;
            if found { Stamp::of_stat(&stat) } else { None }
        })
    }
}

/// Calls `f` with `<job>/<file>` as a C string. It is built on the stack: job ids are
/// short, and a heap path per file is an allocation per file. Longer names (any
/// directory can sit in the root) take the heap. `None` for a name with a NUL.
fn at_path<T>(job: &str, file: &str, f: impl FnOnce(&CStr) -> Option<T>) -> Option<T> {
    let mut stack = [0u8; 96];
    let heap;
    let length = job.len() + 1 + file.len();
    let path: &[u8] = if length < stack.len() {
        stack[..job.len()].copy_from_slice(job.as_bytes());
        stack[job.len()] = b'/';
        stack[job.len() + 1..length].copy_from_slice(file.as_bytes());
        &stack[..=length]
    } else {
        heap = CString::new(format!("{job}/{file}")).ok()?;
        heap.as_bytes_with_nul()
    };
    f(CStr::from_bytes_with_nul(path).ok()?)
}

/// Names handed out to the threads of `par_map_dirs` in blocks, as they ask for them
/// (a thread that started late or got less CPU does not keep the others waiting), and the
/// results: written in place into a vector sized from the root's link count, the few
/// that do not fit (a root on a filesystem without link counts, or that grew) into a
/// vector per thread, appended at the end.
struct Feed<T> {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// The allocation of a `Vec<T>` of this capacity, taken apart; `into_vec` (or a
    /// panic, which leaks it) ends it.
    slots: *mut MaybeUninit<T>,
    capacity: usize,
    /// How many slots have been claimed (it may count past the end: then none was).
    claimed: AtomicUsize,
    overflow: Mutex<Vec<T>>,
}

// SAFETY: the slots are written only through claims, each index by one thread, and read
// only by `into_vec`, which owns the feed; the rest is behind locks and atomics.
unsafe impl<T: Send> Sync for Feed<T> {}

struct Queue {
    blocks: Vec<Vec<String>>,
    closed: bool,
}

const BLOCK: usize = 32;

impl<T: Send> Feed<T> {
    fn new(first: Vec<String>, capacity: usize) -> Feed<T> {
        let blocks = first.chunks(BLOCK).map(<[String]>::to_vec).collect();
        let mut slots = std::mem::ManuallyDrop::new(Vec::<MaybeUninit<T>>::with_capacity(capacity));
        Feed {
            queue: Mutex::new(Queue { blocks, closed: false }),
            ready: Condvar::new(),
            slots: slots.as_mut_ptr(),
            capacity: slots.capacity(),
            claimed: AtomicUsize::new(0),
            overflow: Mutex::new(Vec::new()),
        }
    }

    fn push(&self, block: Vec<String>) {
        if block.is_empty() {
            return;
        }
        // A poisoned lock means a thread panicked: its panic is reported when the scope
        // ends, and nothing more needs doing.
        if let Ok(mut queue) = self.queue.lock() {
            queue.blocks.push(block);
            self.ready.notify_one();
        }
    }

    /// No more names will come.
    fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.closed = true;
            self.ready.notify_all();
        }
    }

    /// Maps blocks until the queue is closed and empty.
    fn work(&self, f: &(impl Fn(&str) -> T + Sync)) {
        let mut overflow = Vec::new();
        while let Some(block) = self.next_block() {
            for name in &block {
                let value = f(name);
                let slot = self.claimed.fetch_add(1, Ordering::Relaxed);
                if slot < self.capacity {
                    // SAFETY: `slot` is within the allocation and was claimed by this thread
                    // alone (the counter hands each index out once); nothing reads the
                    // slots before every thread is done (`into_vec`).
                    unsafe { (*self.slots.add(slot)).write(value) };
                } else {
                    overflow.push(value);
                }
            }
        }
        if !overflow.is_empty()
            && let Ok(mut all) = self.overflow.lock()
        {
            all.append(&mut overflow);
        }
    }

    fn next_block(&self) -> Option<Vec<String>> {
        let mut queue = self.queue.lock().ok()?;
        loop {
            if let Some(block) = queue.blocks.pop() {
                return Some(block);
            }
            if queue.closed {
                return None;
            }
            queue = self.ready.wait(queue).ok()?;
        }
    }

    /// The results, once every thread has finished `work`.
    fn into_vec(self) -> Vec<T> {
        let filled = self.claimed.load(Ordering::Relaxed).min(self.capacity);
        // SAFETY: `MaybeUninit<T>` has the layout of `T`; the first `filled` slots are
        // initialised (every claimed index in bounds was written before its thread
        // ended, and the claims are the indices below the counter); the allocation is
        // handed over whole.
        let mut mapped = unsafe { Vec::from_raw_parts(self.slots.cast::<T>(), filled, self.capacity) };
        mapped.append(&mut self.overflow.into_inner().unwrap_or_default());
        mapped
    }
}

/// The CPUs this process may run on. `std::thread::available_parallelism` also reads the
/// cgroup's CPU quota, a dozen system calls and two file parses on every `list`, serial
/// before the parallel part; a quota below the CPU count only makes a thread wait its turn.
fn usable_cpus() -> usize {
    // SAFETY: sched_getaffinity fills the zeroed set we own; CPU_COUNT reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        usize::try_from(libc::CPU_COUNT(&set)).unwrap_or(1).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(scan: &Scan) -> Vec<String> {
        let mut names = scan.par_map_dirs(str::to_string).unwrap_or_else(|| panic!("read"));
        names.sort();
        names
    }

    /// Large roots (mapped while the directory is read, on several threads) and small
    /// ones (mapped here), with every kind of entry the filter must tell apart: the names
    /// are those of the standard reader, each mapped once.
    #[test]
    fn every_directory_is_mapped_once_as_the_standard_reader_names_them() {
        for count in [0, 10, 255, 256, 3000] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let root = Root { path: dir.path().to_path_buf() };
            for i in 0..count {
                std::fs::create_dir(dir.path().join(format!("01J{i:023}"))).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::create_dir(dir.path().join(".new-01J")).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(dir.path().join("file"), b"").unwrap_or_else(|e| panic!("{e}"));
            std::os::unix::fs::symlink(dir.path().join("01J00000000000000000000000"), dir.path().join("link"))
                .unwrap_or_else(|e| panic!("{e}"));
            let scan = Scan::open(&root).unwrap_or_else(|| panic!("open"));
            let mut standard = root.dir_names().ok().flatten().unwrap_or_default();
            standard.sort();
            assert_eq!(standard.len(), count);
            assert_eq!(names_of(&scan), standard, "{count} directories");
        }
    }

    /// More directories than the link count announced (a root that grows while read, or
    /// a filesystem that keeps no count) go to the overflow, none lost or doubled.
    #[test]
    fn results_past_the_announced_count_are_kept() {
        let names: Vec<String> = (0..1000).map(|i| format!("{i:04}")).collect();
        let feed = Feed::new(names[..100].to_vec(), 300);
        std::thread::scope(|scope| {
            scope.spawn(|| feed.work(&str::to_string));
            for block in names[100..].chunks(7) {
                feed.push(block.to_vec());
            }
            feed.close();
            feed.work(&str::to_string);
        });
        let mut mapped = feed.into_vec();
        mapped.sort();
        assert_eq!(mapped, names);
    }
}
