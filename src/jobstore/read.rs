//! Reading a job file that somebody else may have planted (issue 11). A job file is
//! opened without following a symlink and without blocking (a FIFO must not hang us),
//! must be a regular file owned by us, and is read up to a cap (a link to `/dev/zero`
//! or a huge file must not exhaust memory). Anything else is an error of that job only.

use std::ffi::CStr;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// The most a JSON file of a job may hold: real ones are a few kilobytes.
pub const JSON_CAP: usize = 4 << 20;

/// Why a job file was not read.
#[derive(Debug)]
pub enum Refused {
    Io(std::io::Error),
    /// A symlink, FIFO, device, directory or socket where a regular file belongs.
    NotRegular,
    TooLarge,
    /// Written by another user: its content cannot be trusted (`insecure_root`).
    NotOurs {
        owner: u32,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Io(e) if e.raw_os_error() == Some(libc::ELOOP) => f.write_str("is a symlink"),
            Refused::Io(e) => write!(f, "{e}"),
            Refused::NotRegular => f.write_str("not a regular file"),
            Refused::TooLarge => write!(f, "larger than {} MiB", JSON_CAP >> 20),
            Refused::NotOurs { owner } => write!(f, "owned by uid {owner}, not by us"),
        }
    }
}

/// Opens `path` (relative to `dir`, or as given when `dir` is `AT_FDCWD`) for reading
/// with the checks above; one `openat` and one `fstat`.
pub fn open_checked(dir: RawFd, path: &CStr) -> Result<OwnedFd, Refused> {
    let (fd, size) = open_regular(dir, path)?;
    if usize::try_from(size).map_or(true, |size| size > JSON_CAP) {
        return Err(Refused::TooLarge);
    }
    Ok(fd)
}

/// Opens a job's log with the checks above but no size cap (logs are read a piece at a
/// time, never whole); returns it with its size.
pub fn open_log(path: &std::path::Path) -> Result<(std::fs::File, u64), Refused> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| Refused::Io(e.into()))?;
    let (fd, size) = open_regular(libc::AT_FDCWD, &path)?;
    Ok((fd.into(), u64::try_from(size).unwrap_or(0)))
}

/// The checks shared by `open_checked` and `open_log`: no symlink, no blocking, a regular
/// file of ours. Returns the descriptor and the file's size.
fn open_regular(dir: RawFd, path: &CStr) -> Result<(OwnedFd, libc::off_t), Refused> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: a NUL-terminated path and a directory descriptor (or AT_FDCWD) we hold.
    let fd = unsafe { libc::openat(dir, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Refused::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor, owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fstat fills the zeroed struct we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return Err(Refused::Io(std::io::Error::last_os_error()));
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Refused::NotRegular);
    }
    if stat.st_uid != effective_uid() {
        return Err(Refused::NotOurs { owner: stat.st_uid });
    }
    Ok((fd, stat.st_size))
}

/// Our effective uid, asked once: `list` checks thousands of files.
pub fn effective_uid() -> u32 {
    static UID: OnceLock<u32> = OnceLock::new();
    // SAFETY: geteuid cannot fail.
    *UID.get_or_init(|| unsafe { libc::geteuid() })
}

/// Reads `file` to its end into `content`, refusing more than `cap` bytes (the size
/// checked at open time may grow while we read). No size query and no extra read to
/// confirm the end after a short one: a short read of a regular file is the end.
pub fn read_capped(file: &impl AsRawFd, content: &mut Vec<u8>, cap: usize) -> Result<(), Refused> {
    loop {
        if content.len() > cap {
            return Err(Refused::TooLarge);
        }
        if content.capacity() == content.len() {
            content.reserve(content.capacity().max(4096));
        }
        let spare = content.capacity() - content.len();
        // SAFETY: reading into the spare capacity of `content`, then extending its length
        // by exactly what the kernel wrote.
        let n = unsafe { libc::read(file.as_raw_fd(), content.as_mut_ptr().add(content.len()).cast(), spare) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Refused::Io(err));
        }
        let n = n as usize;
        // SAFETY: the kernel initialised `n` bytes of the spare capacity.
        unsafe { content.set_len(content.len() + n) };
        if n < spare {
            return if content.len() > cap { Err(Refused::TooLarge) } else { Ok(()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn read(path: &std::path::Path) -> Result<Vec<u8>, Refused> {
        let path = CString::new(path.as_os_str().as_bytes()).map_err(|e| Refused::Io(e.into()))?;
        let fd = open_checked(libc::AT_FDCWD, &path)?;
        let mut content = Vec::new();
        read_capped(&fd, &mut content, JSON_CAP)?;
        Ok(content)
    }

    #[test]
    fn only_small_regular_files_of_ours_are_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("state.json");
        std::fs::write(&file, b"{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&file).ok(), Some(b"{}".to_vec()));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&link).err().map(|e| e.to_string()).as_deref(), Some("is a symlink"));
        assert!(matches!(read(std::path::Path::new("/dev/zero")), Err(Refused::NotRegular)));
        assert!(matches!(read(dir.path()), Err(Refused::NotRegular)));
        let fifo = CString::new(dir.path().join("fifo").as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(matches!(read(&dir.path().join("fifo")), Err(Refused::NotRegular)));
        let big = std::fs::File::create(dir.path().join("big")).unwrap_or_else(|e| panic!("{e}"));
        big.set_len(JSON_CAP as u64 + 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(read(&dir.path().join("big")), Err(Refused::TooLarge)));
    }

    #[test]
    fn a_file_growing_past_the_cap_is_refused() {
        let mut content = Vec::new();
        let file = std::fs::File::open("/dev/zero").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(read_capped(&file, &mut content, 10_000), Err(Refused::TooLarge)));
        assert!(content.len() < 20_000);
    }
}
