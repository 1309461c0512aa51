//! Reading the small files of many jobs quickly, for `list`: paths are resolved relative
//! to an open descriptor of the root (two path components instead of the whole root
//! path per file), each file costs one `openat`, one `fstat` (the checks of `read`) and
//! its reads, and large roots are split across threads. At 20,000 jobs this is what `list` spends its time on.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

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
/// enough items to pay for them, keeping the order of the input.
pub fn par_map<T: Send, F: Fn(&str) -> T + Sync>(items: &[String], f: F) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || items.len() < 256 {
        return items.iter().map(|item| f(item)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let map = |part: &[String]| part.iter().map(|item| f(item)).collect::<Vec<T>>();
    std::thread::scope(|scope| {
        let mut parts = items.chunks(chunk);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts.map(|part| scope.spawn(move || map(part))).collect();
        let mut mapped = map(first);
        mapped.extend(others.into_iter().flat_map(|h| h.join().unwrap_or_default()));
        mapped
    })
}
