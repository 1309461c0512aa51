//! Reading the small files of many jobs quickly, for `list`: paths are resolved relative
//! to an open descriptor of the root (two path components instead of the whole root
//! path per file), files are read without a size query, and large roots are split
//! across threads. At 20,000 jobs this is what `list` spends its time on.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::Root;

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
        if path[..length].contains(&0) {
            return None;
        }
        // SAFETY: `path` is NUL-terminated with no interior NUL, relative to a directory
        // descriptor we own.
        let fd = unsafe {
            libc::openat(
                self.root.as_raw_fd(),
                path.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: fresh descriptor, owned from here on.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        BUFFER.with(|buffer| {
            let mut content = buffer.borrow_mut();
            content.clear();
            read_all(&file, &mut content).ok()?;
            Some(use_bytes(&content))
        })
    }
}

/// Reads a small regular file to its end into `content`: no size query, and no extra
/// read to confirm the end after a short one (a short read of a regular file is the end).
pub fn read_all(file: &impl AsRawFd, content: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        if content.capacity() == content.len() {
            content.reserve(content.capacity().max(4096));
        }
        let spare = content.capacity() - content.len();
        // SAFETY: reading into the spare capacity of `content`, then extending its length by
        // exactly what the kernel wrote.
        let n = unsafe { libc::read(file.as_raw_fd(), content.as_mut_ptr().add(content.len()).cast(), spare) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let n = n as usize;
        // SAFETY: the kernel initialised `n` bytes of the spare capacity.
        unsafe { content.set_len(content.len() + n) };
        if n < spare {
            return Ok(());
        }
    }
}

/// Maps `f` over `items`, on up to four threads when there are enough items to pay for
/// them, keeping the order of the input.
pub fn par_map<T: Send, F: Fn(&str) -> T + Sync>(items: &[String], f: F) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || items.len() < 256 {
        return items.iter().map(|item| f(item)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(|item| f(item)).collect::<Vec<T>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}
