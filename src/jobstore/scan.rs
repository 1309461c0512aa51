//! Reading the small files of many jobs quickly, for `list`: paths are resolved relative
//! to an open descriptor of the root (two path components instead of the whole root
//! path per file), files are read without a size query, and large roots are split
//! across threads. At 20,000 jobs this is what `list` spends its time on.

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

    /// The content of `<root>/<job>/<file>`, or `None` if it cannot be read.
    pub fn read(&self, job: &str, file: &str) -> Option<Vec<u8>> {
        let relative = CString::new(format!("{job}/{file}")).ok()?;
        // SAFETY: a NUL-terminated relative path under a directory descriptor we own.
        let fd = unsafe {
            libc::openat(self.root.as_raw_fd(), relative.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: fresh descriptor, owned from here on.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut content: Vec<u8> = Vec::with_capacity(4096);
        loop {
            let spare = content.capacity() - content.len();
            // SAFETY: reading into the spare capacity of `content`, then extending its length
            // by exactly what the kernel wrote.
            let n = unsafe { libc::read(file.as_raw_fd(), content.as_mut_ptr().add(content.len()).cast(), spare) };
            match n {
                n if n < 0 => return None,
                0 => return Some(content),
                n => {
                    let n = n as usize;
                    unsafe { content.set_len(content.len() + n) };
                    // A short read of a regular file means end of file: skip the extra
                    // read that would only confirm it.
                    if n < spare {
                        return Some(content);
                    }
                    content.reserve(content.capacity());
                }
            }
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
