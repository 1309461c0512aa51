//! Reading the small files of many jobs quickly, for `list`: paths are resolved relative
//! to an open descriptor of the root (two path components instead of the whole root
//! path per file), each file costs one `openat`, one `fstat` (the checks of `read`) and
//! its reads, and large roots are split across threads. At 20,000 jobs this is what `list` spends its time on.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use super::Root;
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

    /// The names `Root::dir_names` gives (directories below the root, dot-names and
    /// names that are not UTF-8 left out), read with a few large `getdents64` calls on
    /// the descriptor we hold: the standard library's reader allocates twice per entry
    /// and reads 32 KiB at a time. `None` if the directory cannot be read.
    pub fn dir_names(&self) -> Option<Vec<String>> {
        // Header of a `linux_dirent64`: inode (8 bytes), offset (8), record length (2),
        // type (1), then the NUL-terminated name.
        const NAME_AT: usize = 19;
        let mut buffer = vec![0u8; 256 * 1024];
        let mut names = Vec::new();
        loop {
            // SAFETY: the kernel writes at most `buffer.len()` bytes into our buffer.
            let n = unsafe {
                libc::syscall(libc::SYS_getdents64, self.root.as_raw_fd(), buffer.as_mut_ptr(), buffer.len())
            };
            let Ok(filled) = usize::try_from(n) else { return None };
            if filled == 0 {
                return Some(names);
            }
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
                    names.push(name.to_string());
                }
            }
        }
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
        // `<job>/<file>\0` on the stack: job ids are short, and a heap path per file is
        // an allocation per file. Longer names (any directory can sit in the root) take
        // the heap.
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
        // Rejects a name with an interior NUL.
        let path = CStr::from_bytes_with_nul(path).ok()?;
        let file = open_checked(self.root.as_raw_fd(), path).ok()?;
        BUFFER.with(|buffer| {
            let mut content = buffer.borrow_mut();
            content.clear();
            read_capped(&file, &mut content, JSON_CAP).ok()?;
            Some(use_bytes(&content))
        })
    }
}

/// Maps `f` over `items`, on up to four threads (this one included) when there are
/// enough items to pay for them, keeping the order of the input. Blocks of items are
/// handed out as threads ask for them rather than split in equal shares up front, so
/// that a thread that started late or got less CPU does not keep the others waiting.
///
/// Each result is written once, into its place in the returned vector: at 2,000 jobs a
/// second copy of a few hundred kilobytes cost a page fault per fresh page, which `list`
/// felt.
pub fn par_map<T: Send, F: Fn(&str) -> T + Sync>(items: &[String], f: F) -> Vec<T> {
    const BLOCK: usize = 32;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || items.len() < 256 {
        return items.iter().map(|item| f(item)).collect();
    }
    let mut mapped: Vec<MaybeUninit<T>> = Vec::with_capacity(items.len());
    mapped.resize_with(items.len(), MaybeUninit::uninit);
    let blocks = Mutex::new(items.chunks(BLOCK).zip(mapped.chunks_mut(BLOCK)));
    let work = || {
        loop {
            // A poisoned lock means another thread panicked: stop, its panic is reported.
            let Some((from, to)) = blocks.lock().ok().and_then(|mut blocks| blocks.next()) else { return };
            for (item, slot) in from.iter().zip(to) {
                slot.write(f(item));
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        work();
    });
    // Every block was handed out and written: the scope has joined every thread, and a
    // panic in any of them would have propagated out of `scope` before this point.
    let mut mapped = std::mem::ManuallyDrop::new(mapped);
    let (pointer, length, capacity) = (mapped.as_mut_ptr(), mapped.len(), mapped.capacity());
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, all `length` elements are
    // initialised (above), and the allocation is handed over whole.
    unsafe { Vec::from_raw_parts(pointer.cast::<T>(), length, capacity) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_are_those_of_the_standard_reader() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root { path: dir.path().to_path_buf() };
        // Enough entries for several reads, and every kind the filter must tell apart.
        for i in 0..3000 {
            std::fs::create_dir(dir.path().join(format!("01J{i:023}"))).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::create_dir(dir.path().join(".new-01J")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("file"), b"").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(dir.path().join("01J00000000000000000000000"), dir.path().join("link"))
            .unwrap_or_else(|e| panic!("{e}"));
        let scan = Scan::open(&root).unwrap_or_else(|| panic!("open"));
        let mut fast = scan.dir_names().unwrap_or_default();
        let mut standard = root.dir_names().ok().flatten().unwrap_or_default();
        fast.sort();
        standard.sort();
        assert_eq!(fast.len(), 3000);
        assert_eq!(fast, standard);
    }

    #[test]
    fn par_map_keeps_the_order_of_its_input() {
        let items: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let mapped = par_map(&items, |item| item.parse::<u32>().unwrap_or(u32::MAX));
        assert_eq!(mapped, (0..5000).collect::<Vec<u32>>());
    }
}
