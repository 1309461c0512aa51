//! The launcher of `run`, in the child forked by `launch::Launching::fork_run` before it
//! execs the supervisor: the start handshake, done with async-signal-safe calls only and
//! no allocation (the front-end may be multi-threaded: `serve`), and what it leaves the
//! supervisor on its descriptors (docs/decisions.md OP-2, ARCHITECTURE.md step 3).

use std::os::fd::RawFd;

use super::spawn::Program;

pub const SPEC_FD: RawFd = 3;
pub const ACK_FD: RawFd = 4;
/// `run`: the adoption record (`Adoption`), and the job's stdout and stderr pipes.
pub const ADOPT_FD: RawFd = 5;
pub const JOB_STDOUT_FD: RawFd = 6;
pub const JOB_STDERR_FD: RawFd = 7;
/// How long the launcher of `run` lets the front-end answer before it execs the
/// supervisor (see `hand_over_run`); the job's output waits in its pipes meanwhile.
const READER_PATIENCE_MS: i32 = 500;
/// Then, once a CLI front-end has exited, how long the launcher lets its caller take
/// the answer (reap it) before the exec (see `hand_over_run`).
const REAP_PATIENCE_MS: i32 = 5;
/// What the front-end of `run` sends once the job directory is in place: `GO` when it
/// goes on after its answer (`serve`, `mcp`: the launcher execs once the answer pipe is
/// dropped), `GO_THEN_EXIT` when it exits right after (the CLI: the launcher execs once
/// the front-end has exited). Both the same length: the launcher reads exactly that.
pub const GO: &[u8] = b"go\n";
pub const GO_THEN_EXIT: &[u8] = b"gx\n";

/// After the answer, what the front-end of `run` does: see `GO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAnswer {
    GoesOn,
    Exits,
}

/// What the launcher of `run` tells the supervisor it execs, on `ADOPT_FD`: one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// The front-end went away before `go`; a job process it forked never ran.
    Abandoned,
    /// No job process was forked (it could not be prepared, or the fork failed): the
    /// supervisor starts it itself.
    NotForked,
    /// The job process `pid`, let through its gate at `spawned_ns` (`CLOCK_MONOTONIC`);
    /// `errno` is 0 if its exec happened, else why it failed (the child has exited).
    /// `yielding`: the launcher put itself in `SCHED_BATCH` after the answer (see
    /// `hand_over_run`), which the supervisor undoes once started.
    Forked { pid: u32, spawned_ns: u64, errno: i32, yielding: bool },
}

impl Adoption {
    pub fn parse(line: &str) -> Option<Adoption> {
        let mut fields = line.trim_end().split('\t');
        match fields.next()? {
            "abandoned" => Some(Adoption::Abandoned),
            "not-forked" => Some(Adoption::NotForked),
            "forked" => Some(Adoption::Forked {
                pid: fields.next()?.parse().ok()?,
                spawned_ns: fields.next()?.parse().ok()?,
                errno: fields.next()?.parse().ok()?,
                yielding: fields.next()? == "yielding",
            }),
            _ => None,
        }
    }
}

/// The launcher of `run`, in the forked child that becomes the supervisor: the start
/// handshake, then the exec (module comment). Only async-signal-safe calls, no
/// allocation. Never returns.
///
/// # Safety
/// Call only in the freshly forked child, with fds 0-2 on /dev/null and `spec_read` and
/// `ack_write` above 7 (`dup_high`).
pub unsafe fn hand_over_run(image: Option<&Program>, spec_read: RawFd, ack_write: RawFd, front_end: u32) {
    // SAFETY: async-signal-safe calls on descriptors of ours (see above).
    unsafe {
        // A stray signal must not end us before the job is handed over, and a stop
        // request (`pkill agent-exec` right after `run` answered) must stop the job and
        // be recorded as for any job: we were born with the stop signals blocked
        // (`Launching::fork_with`), and one stays pending, through our exec, until the
        // supervisor handles it (`watch::Signals::new`). The job process gets the
        // defaults and an empty mask back before its exec.
        for &signal in super::IGNORED_SIGNALS {
            libc::signal(signal, libc::SIG_IGN);
        }
        // Until our exec we hold copies of every descriptor of the front-end: its ends
        // of our pipes (its death would never reach us as end of file), and in `serve`
        // its clients' sockets (a connection would stay open after serve closed it).
        // Keep ours on 3 and 4, placeholders on 5..=7 (every descriptor made below gets
        // a higher number, so the dup2()s onto them at the end clobber nothing needed),
        // all close-on-exec for the job process, and close the rest.
        libc::dup3(spec_read, SPEC_FD, libc::O_CLOEXEC);
        libc::dup3(ack_write, ACK_FD, libc::O_CLOEXEC);
        for fd in ADOPT_FD..=JOB_STDERR_FD {
            libc::dup3(0, fd, libc::O_CLOEXEC);
        }
        close_from(JOB_STDERR_FD + 1);
        let (spec_read, ack_write, devnull) = (SPEC_FD, ACK_FD, 0);
        let job = image.and_then(|image| image.fork_raw(devnull, true).ok());
        let mut pids = Line::new();
        pids.push(b"pids\t");
        pids.number(u64::from(libc::getpid().unsigned_abs()));
        pids.push(b"\t-\t");
        match &job {
            Some(job) => pids.number(u64::from(job.pid)),
            None => pids.push(b"-"),
        }
        pids.push(b"\t-\n");
        write_all(ack_write, pids.bytes());
        let mut adoption = Line::new();
        let mut yielding = false;
        // The spec follows `go`. The front-end's write of both blocks until they fit in
        // the pipe, and one that exits after its answer is what we wait for below: take
        // a spec longer than a pipe holds out of its way first. A spec cut short (the
        // front-end gave up on us, stopped for too long, or died) is no `go`.
        let go = read_go(spec_read).filter(|_| spill_spec(spec_read));
        match job {
            Some(job) if go.is_some() => {
                libc::write(job.gate, b"x".as_ptr().cast(), 1);
                libc::close(job.gate);
                let spawned_ns = monotonic_ns();
                // End of file when the exec happened; the errno when it failed.
                let errno = read_errno(job.status);
                libc::close(job.status);
                if errno == 0 {
                    // Our exec and start-up take a millisecond of CPU, which the front-end
                    // needs now to answer and exit, on a machine busy with the job's own
                    // start: on two CPUs, exec'ing at once delayed the end of `run` by
                    // 1.4 ms. Wait, briefly, for the front-end to drop its end of the
                    // answer pipe or, one that `Exits`, for its exit (closing that pipe is
                    // an early step of a process's exit, which then had to wait for us).
                    // Its caller, woken by that exit, then competed with our exec for
                    // a CPU (0.2-0.4 ms later to see the exit, on two CPUs): wait for the
                    // caller to reap it too, a few milliseconds at most (a pidfd reports
                    // the reap as a hang-up since Linux 6.x; older kernels never do, and
                    // the exec there comes REAP_PATIENCE_MS after the exit). Woken by
                    // that reap, we took the CPU from the caller inside its wait()
                    // (wake-up preemption) for the whole exec: until the supervisor has
                    // adopted the job, we are a `SCHED_BATCH` process, which never
                    // preempts on waking (the job process, forked before, keeps the
                    // caller's policy).
                    let exits = go == Some(AfterAnswer::Exits);
                    let pidfd = if exits { libc::syscall(libc::SYS_pidfd_open, front_end, 0) as RawFd } else { -1 };
                    write_all(ack_write, b"ok\n");
                    yielding = yield_to_caller();
                    let mut gone = if pidfd >= 0 {
                        libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 }
                    } else {
                        libc::pollfd { fd: ack_write, events: 0, revents: 0 }
                    };
                    libc::poll(&mut gone, 1, READER_PATIENCE_MS);
                    if pidfd >= 0 {
                        if gone.revents & (libc::POLLIN | libc::POLLHUP) == libc::POLLIN {
                            let mut reaped = libc::pollfd { fd: pidfd, events: 0, revents: 0 };
                            libc::poll(&mut reaped, 1, REAP_PATIENCE_MS);
                        }
                        libc::close(pidfd);
                    }
                }
                adoption.push(b"forked\t");
                adoption.number(u64::from(job.pid));
                adoption.push(b"\t");
                adoption.number(spawned_ns);
                adoption.push(b"\t");
                adoption.number(u64::from(errno.unsigned_abs()));
                adoption.push(if yielding { b"\tyielding\n" } else { b"\tas-is\n" });
                libc::dup2(job.stdout, JOB_STDOUT_FD);
                libc::dup2(job.stderr, JOB_STDERR_FD);
            }
            Some(job) => {
                // The held child sees end of file at its gate and exits, having run nothing.
                libc::close(job.gate);
                let mut status = 0;
                libc::waitpid(job.pid as libc::pid_t, &mut status, 0);
                adoption.push(b"abandoned\n");
            }
            None if go.is_some() => adoption.push(b"not-forked\n"),
            None => adoption.push(b"abandoned\n"),
        }
        // The record goes through a pipe of its own: a few bytes, never blocking.
        let mut fds = [-1; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) == 0 {
            write_all(fds[1], adoption.bytes());
            libc::close(fds[1]);
            libc::dup2(fds[0], ADOPT_FD);
        }
        // Ours again across the exec.
        libc::fcntl(SPEC_FD, libc::F_SETFD, 0);
        libc::fcntl(ACK_FD, libc::F_SETFD, 0);
    }
}

/// Puts this process in `SCHED_BATCH` if it is in the default policy (one started under
/// `chrt` keeps what it was given); whether it did.
fn yield_to_caller() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system calls on this process.
    unsafe {
        libc::sched_getscheduler(0) == libc::SCHED_OTHER && libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0
    }
}

/// Undoes `yield_to_caller`, in the supervisor it exec'd (an unprivileged process may
/// always go back from `SCHED_BATCH` to the default policy).
pub fn stop_yielding() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain system call on this process.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) } != 0 {
        crate::debug!("sched_setscheduler(SCHED_OTHER): {}", std::io::Error::last_os_error());
    }
}

/// Moves the launch spec (one line) from the pipe on `SPEC_FD` into a memory file put
/// in its place, rewound for the supervisor, so that the front-end's write of it never
/// waits for the supervisor's start-up. Where no memory file can be made, the pipe
/// stays (a spec longer than a pipe then waits for it). Returns whether the whole line
/// came (or is left in the pipe); a spec cut short is not passed on: the supervisor
/// then finds the drained pipe's end. Async-signal-safe, no allocation.
fn spill_spec(spec_read: RawFd) -> bool {
    // SAFETY: system calls on descriptors of ours and a buffer on the stack.
    unsafe {
        let memory = libc::syscall(libc::SYS_memfd_create, c"launch-spec".as_ptr(), libc::MFD_CLOEXEC) as RawFd;
        if memory < 0 {
            return true;
        }
        let mut whole = false;
        let mut buffer = [0u8; 4096];
        loop {
            let n = libc::read(spec_read, buffer.as_mut_ptr().cast(), buffer.len());
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                break;
            }
            let chunk = &buffer[..n as usize];
            write_all(memory, chunk);
            if chunk.contains(&b'\n') {
                whole = true;
                break;
            }
        }
        if whole {
            libc::lseek(memory, 0, libc::SEEK_SET);
            libc::dup3(memory, SPEC_FD, libc::O_CLOEXEC);
        }
        libc::close(memory);
        whole
    }
}

/// Closes every descriptor from `first` on. Async-signal-safe.
pub fn close_from(first: RawFd) {
    // SAFETY: closing descriptors; close_range (Linux 5.9) or, where it is missing, one
    // close per possible number below the limit.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0) == 0 {
            return;
        }
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        let last = RawFd::try_from(limit.rlim_cur.min(1 << 16)).unwrap_or(1 << 16);
        for fd in first..last {
            libc::close(fd);
        }
    }
}

/// Reads the front-end's `go`: `None` at end of file (the front-end gave up or died) or
/// for anything else. Reads no further: the spec that follows is the supervisor's.
/// Async-signal-safe.
fn read_go(fd: RawFd) -> Option<AfterAnswer> {
    let mut got = [0u8; GO.len()];
    if read_full(fd, &mut got) != GO.len() {
        return None;
    }
    match &got[..] {
        GO => Some(AfterAnswer::GoesOn),
        GO_THEN_EXIT => Some(AfterAnswer::Exits),
        _ => None,
    }
}

/// The errno a failed exec sends, or 0 at end of file (the exec happened).
fn read_errno(fd: RawFd) -> i32 {
    let mut bytes = [0u8; 4];
    if read_full(fd, &mut bytes) == bytes.len() { i32::from_ne_bytes(bytes) } else { 0 }
}

/// Reads until `buffer` is full or end of file; returns how much was read.
/// Async-signal-safe.
fn read_full(fd: RawFd, buffer: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buffer.len() {
        // SAFETY: reading into the unfilled part of a buffer we own.
        let n = unsafe { libc::read(fd, buffer[got..].as_mut_ptr().cast(), buffer.len() - got) };
        match n {
            n if n > 0 => got += n as usize,
            n if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    got
}

/// Writes all of `bytes`, giving up on an error (a reader that went away).
/// Async-signal-safe.
fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a buffer we own.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        match n {
            n if n > 0 => bytes = &bytes[n as usize..],
            n if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// Now on `CLOCK_MONOTONIC`, the clock of `Instant`, in nanoseconds. Async-signal-safe.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime fills the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    u64::try_from(now.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
}

/// A line built on the stack, for the children that must not allocate.
struct Line {
    bytes: [u8; 96],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line { bytes: [0; 96], len: 0 }
    }

    fn push(&mut self, text: &[u8]) {
        let end = (self.len + text.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&text[..end - self.len]);
        self.len = end;
    }

    fn number(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines the launcher builds on the stack read back as what they say.
    #[test]
    fn launcher_lines() {
        let mut line = Line::new();
        line.push(b"forked\t");
        line.number(0);
        line.push(b"\t");
        line.number(u64::MAX);
        line.push(b"\t");
        line.number(2);
        line.push(b"\tyielding\n");
        assert_eq!(line.bytes(), format!("forked\t0\t{}\t2\tyielding\n", u64::MAX).as_bytes());
        assert_eq!(
            Adoption::parse(&format!("forked\t42\t{}\t2\tyielding\n", u64::MAX)),
            Some(Adoption::Forked { pid: 42, spawned_ns: u64::MAX, errno: 2, yielding: true })
        );
        assert_eq!(
            Adoption::parse("forked\t42\t7\t0\tas-is\n"),
            Some(Adoption::Forked { pid: 42, spawned_ns: 7, errno: 0, yielding: false })
        );
        assert_eq!(Adoption::parse("forked\t42\t7\t0\n"), None);
        assert_eq!(Adoption::parse("abandoned\n"), Some(Adoption::Abandoned));
        assert_eq!(Adoption::parse("not-forked\n"), Some(Adoption::NotForked));
        assert_eq!(Adoption::parse("forked\t1\n"), None);
        assert_eq!(Adoption::parse(""), None);
        // A line longer than the buffer is cut, never overflowed.
        let mut long = Line::new();
        for _ in 0..50 {
            long.push(b"abc");
        }
        assert_eq!(long.bytes().len(), 96);
    }
}
