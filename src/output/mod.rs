//! The one place that writes a response to stdout (JSON by default, YAML with `--yaml`),
//! and `Std`, the writer of our standard streams that every answer and stream goes through.

mod yaml;

use std::io::{self, Write};
use std::os::fd::RawFd;

pub use yaml::to_yaml;

/// Writes one response. The caller turns a failed write (a full disk, a closed stdout, a
/// reader that went away) into exit status 1: the answer is lost, so the call must not
/// look successful.
pub fn print(json: &str, as_yaml: bool) -> io::Result<()> {
    if as_yaml {
        return print_text(&to_yaml(json).unwrap_or_else(|| format!("{json}\n")));
    }
    // One write for an answer that fits a pipe, so that a reader never sees it without
    // its newline; a larger one (a `list` can be megabytes) is not copied to append it.
    let mut stdout = Std::stdout();
    if json.len() < 64 * 1024 {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        return stdout.write_all(&line);
    }
    stdout.write_all(json.as_bytes()).and_then(|()| stdout.write_all(b"\n"))
}

/// Writes one response as `write` produces it, through a buffer of 64 KiB.
pub fn print_with(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut stdout = io::BufWriter::with_capacity(64 * 1024, Std::stdout());
    write(&mut stdout)?;
    stdout.flush()
}

pub fn print_text(text: &str) -> io::Result<()> {
    Std::stdout().write_all(text.as_bytes())
}

/// stdout or stderr, written straight to the descriptor (no buffer: callers buffer where
/// they need to), waiting for room when the descriptor is non-blocking.
///
/// O_NONBLOCK belongs to the open file description, which we share with whoever gave
/// us the descriptor: an event-loop harness that sets it on its pipe sets it for us too.
/// A write past the pipe's room then fails with EAGAIN instead of waiting, and std's
/// stdout reports that as an error: an answer over 64 KiB was cut and exited 1. Waiting
/// in poll(2) until the reader makes room is what a blocking write would have done, so
/// this waits as long as one would (a reader that never reads stalls us either way).
/// Every other error stays an error (EPIPE: a lost answer, exit 1).
pub struct Std {
    fd: RawFd,
}

impl Std {
    pub fn stdout() -> Std {
        Std { fd: libc::STDOUT_FILENO }
    }

    pub fn stderr() -> Std {
        Std { fd: libc::STDERR_FILENO }
    }

    /// Waits until the descriptor can take a write (or has an error, which the next
    /// write reports).
    fn wait_for_room(&self) -> io::Result<()> {
        let mut pollfd = libc::pollfd { fd: self.fd, events: libc::POLLOUT, revents: 0 };
        loop {
            // SAFETY: poll(2) on one pollfd of ours, without a timeout.
            if unsafe { libc::poll(&raw mut pollfd, 1, -1) } >= 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

impl Write for Std {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: write(2) from a live buffer of that length; main keeps fds 0-2 open.
            let n = unsafe { libc::write(self.fd, buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n.unsigned_abs());
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => self.wait_for_room()?,
                _ => return Err(error),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
