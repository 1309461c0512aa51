//! The front-end side of a launch: double fork, exec of the supervisor, start handshake.
//!
//! The caller may be multi-threaded (`serve`), so between `fork` and `execve` the children
//! make only async-signal-safe calls and allocate nothing; every string and pointer is
//! prepared beforehand. The intermediate child calls `setsid` and forks the supervisor,
//! then exits and is reaped, so no zombie is ever left behind. The supervisor gets the
//! launch spec on fd 3 (never on argv: it holds secrets) and answers on fd 4.
//!
//! `start` execs the supervisor at once; it answers once the job process is running or
//! has failed to start. `run` (`Launching::fork_run`) does the whole start handshake
//! before that exec, in the forked child, so that the supervisor's exec and start-up are
//! no longer between the call and its answer (docs/decisions.md OP-2): the child forks
//! the job process held at a gate before its exec, reports both pids, waits for `go`
//! (the job directory is complete), opens the gate, sees the exec happen and answers
//! `ok`, and only then execs the supervisor, which adopts the job: the record of what
//! happened on fd 5, the job's stdout and stderr pipes on fds 6 and 7.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use super::spawn::Program;
use super::spec::LaunchSpec;
use crate::error::{Error, Result};
use crate::jobstore::{JobDir, liveness};

/// The hidden subcommand the supervisor is exec'd as.
pub const SUPERVISE_ARG: &str = "__supervise";
pub const SPEC_FD: RawFd = 3;
pub const ACK_FD: RawFd = 4;
/// `run`: the adoption record (`Adoption`), and the job's stdout and stderr pipes.
pub const ADOPT_FD: RawFd = 5;
pub const JOB_STDOUT_FD: RawFd = 6;
pub const JOB_STDERR_FD: RawFd = 7;
/// How long the launcher of `run` lets the front-end answer before it execs the
/// supervisor (see `hand_over_run`); the job's output waits in its pipes meanwhile.
const READER_PATIENCE_MS: i32 = 500;
/// What the front-end of `run` sends once the job directory is in place: `GO` when it
/// goes on after its answer (`serve`, `mcp`: the launcher execs once the answer pipe is
/// dropped), `GO_THEN_EXIT` when it exits right after (the CLI: the launcher execs once
/// the front-end has exited). Both the same length: the launcher reads exactly that.
const GO: &[u8] = b"go\n";
const GO_THEN_EXIT: &[u8] = b"gx\n";

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
    Forked { pid: u32, spawned_ns: u64, errno: i32 },
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
            }),
            _ => None,
        }
    }
}

/// What the launcher of `run` reports before the job directory exists: the supervisor's
/// pid and that of the job process it forked and holds before the exec (none when it
/// could not fork one), with their start times (read by the front-end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pids {
    pub supervisor: u32,
    pub supervisor_start: Option<u64>,
    pub job: Option<(u32, Option<u64>)>,
}

impl Pids {
    /// `pids\tSUPERVISOR\tSTART\tJOB\tSTART\n`, `-` for what is unknown.
    fn parse(line: &str) -> Option<Pids> {
        let mut fields = line.trim_end().split('\t');
        if fields.next() != Some("pids") {
            return None;
        }
        let mut next = || -> Option<Option<u64>> {
            let field = fields.next()?;
            if field == "-" { Some(None) } else { field.parse().ok().map(Some) }
        };
        let supervisor = u32::try_from(next()??).ok()?;
        let supervisor_start = next()?;
        let job = next()?.and_then(|pid| u32::try_from(pid).ok());
        let job_start = next()?;
        Some(Pids { supervisor, supervisor_start, job: job.map(|pid| (pid, job_start)) })
    }
}

/// How the supervisor answered the handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    Started,
    /// The job could not be started; `state.json` already says `failed` with this reason.
    Failed(String),
    /// The supervisor died before answering.
    Lost,
}

/// Launches the supervisor of an existing job and waits for its start handshake.
pub fn launch(job: &JobDir, spec: &LaunchSpec) -> Result<Handshake> {
    Launching::fork(job)?.hand_over(spec)
}

/// A supervisor forked: for `start`, exec'd and blocked reading its launch spec; for
/// `run`, holding the job process and waiting for `go` before its exec (module comment),
/// which lets the front-end write the job directory meanwhile. Dropped without an
/// answer, it closes the spec pipe: the supervisor then lets the held job process go
/// without running it, records the job as failed if it exists, and exits.
pub struct Launching {
    intermediate: libc::pid_t,
    reaped: bool,
    spec_write: Option<File>,
    ack_read: Option<BufReader<File>>,
}

impl Launching {
    /// Forks the supervisor of the job at `job.path` (`start`).
    pub fn fork(job: &JobDir) -> Result<Launching> {
        Launching::fork_with(job, None)
    }

    /// Forks the launcher of `run` for the job at `job.path`, which need not exist yet;
    /// it forks `image` (when the front-end could prepare it) as the job process.
    pub fn fork_run(job: &JobDir, image: Option<&Program>) -> Result<Launching> {
        Launching::fork_with(job, Some(image))
    }

    fn fork_with(job: &JobDir, run: Option<Option<&Program>>) -> Result<Launching> {
        let exec = ExecImage::new(job)?;
        let (spec_read, spec_write) = pipe()?;
        let (ack_read, ack_write) = pipe()?;
        let devnull =
            File::options().read(true).write(true).open("/dev/null").map_err(|e| Error::io("open /dev/null", e))?;
        // Keep the descriptors the grandchild dup2()s away from 0..=7, so that no dup2 can
        // clobber another source before it is used.
        // The originals are dropped here: a write end left open in this process would keep
        // the handshake read from ever seeing end of file.
        let spec_read = dup_high(spec_read)?;
        let ack_write = dup_high(ack_write)?;
        let devnull = dup_high(OwnedFd::from(devnull))?;
        let mut empty_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: sigemptyset initialises the set we own.
        unsafe { libc::sigemptyset(&mut empty_mask) };
        let front_end = std::process::id();

        // SAFETY: fork in a possibly multi-threaded process; both children below only call
        // async-signal-safe functions (setsid, fork, _exit, sigprocmask, dup2, execve...).
        let intermediate = unsafe { libc::fork() };
        if intermediate < 0 {
            return Err(Error::io("fork supervisor", std::io::Error::last_os_error()));
        }
        if intermediate == 0 {
            unsafe {
                libc::setsid();
                let supervisor = libc::fork();
                if supervisor != 0 {
                    libc::_exit(if supervisor < 0 { 1 } else { 0 });
                }
                libc::sigprocmask(libc::SIG_SETMASK, &empty_mask, std::ptr::null_mut());
                // `serve` ignores SIGCHLD so that the kernel reaps its children (PID 1
                // duties); an ignored disposition survives exec, and the supervisor must
                // be able to wait for its job and sinks.
                libc::signal(libc::SIGCHLD, libc::SIG_DFL);
                let devnull = devnull.as_raw_fd();
                libc::dup2(devnull, 0);
                libc::dup2(devnull, 1);
                libc::dup2(devnull, 2);
                let (spec_read, ack_write) = (spec_read.as_raw_fd(), ack_write.as_raw_fd());
                // `run`'s launcher leaves fds 3..=7 in place, and the numbers of
                // `spec_read` and `ack_write` may be taken by then by the job's pipes.
                match run {
                    Some(image) => hand_over_run(image, spec_read, ack_write, front_end),
                    None => {
                        libc::dup2(spec_read, SPEC_FD);
                        libc::dup2(ack_write, ACK_FD);
                    }
                }
                libc::execve(exec.path.as_ptr(), exec.argv_ptrs.as_ptr(), exec.envp_ptrs.as_ptr());
                libc::_exit(127);
            }
        }
        drop((spec_read, ack_write, devnull));
        Ok(Launching {
            intermediate,
            reaped: false,
            spec_write: Some(File::from(spec_write)),
            ack_read: Some(BufReader::new(File::from(ack_read))),
        })
    }

    /// The pids the launcher of `run` reports (`None` if it died first), with their
    /// start times.
    pub fn pids(&mut self) -> Option<Pids> {
        let mut line = String::new();
        if let Some(ack_read) = self.ack_read.as_mut() {
            let _ = ack_read.read_line(&mut line);
        }
        let mut pids = Pids::parse(&line)?;
        pids.supervisor_start = liveness::start_time(pids.supervisor);
        pids.job = pids.job.map(|(pid, _)| (pid, liveness::start_time(pid)));
        Some(pids)
    }

    /// Tells the launcher of `run` that the job directory is complete, with the launch
    /// spec for the supervisor, and waits for the answer: `ok` once the job process has
    /// exec'd, or the supervisor's `failed`. After `ok` the launcher waits, before it
    /// execs the supervisor (see `hand_over_run`), for this to be dropped or, if the
    /// front-end `Exits`, for the front-end's exit.
    pub fn go(&mut self, spec: &LaunchSpec, after: AfterAnswer) -> Result<Handshake> {
        let spec = LaunchSpec { staged: true, ..spec.clone() };
        let mut payload =
            serde_json::to_vec(&spec).map_err(|e| Error::internal(format!("serialize launch spec: {e}")))?;
        payload.push(b'\n');
        if let Some(spec_write) = self.spec_write.take() {
            // One write for both, a distinct system call (`writev`) that a test can
            // interrupt to play a front-end dying right before `go`. The spec is read by
            // the supervisor after its exec: longer than a pipe holds, it keeps us here
            // until then. A launcher already gone: EPIPE, and the answer below is `Lost`.
            let go = if after == AfterAnswer::Exits { GO_THEN_EXIT } else { GO };
            let _ = write_all_vectored(&spec_write, &[go, &payload]);
        }
        self.reap_intermediate()?;
        let mut answer = String::new();
        if let Some(ack_read) = self.ack_read.as_mut() {
            // One line: the supervisor keeps its end open while the job runs.
            let _ = ack_read.read_line(&mut answer);
        }
        Ok(parse_ack(&answer))
    }

    fn reap_intermediate(&mut self) -> Result<()> {
        if !self.reaped {
            self.reaped = true;
            reap(self.intermediate)?;
        }
        Ok(())
    }

    fn answer(&mut self) -> String {
        let mut answer = String::new();
        if let Some(mut ack_read) = self.ack_read.take() {
            let _ = ack_read.read_to_string(&mut answer);
        }
        answer
    }

    /// Sends the launch spec and waits for the supervisor's answer.
    pub fn hand_over(mut self, spec: &LaunchSpec) -> Result<Handshake> {
        let payload = serde_json::to_vec(spec).map_err(|e| Error::internal(format!("serialize launch spec: {e}")))?;
        if let Some(mut spec_write) = self.spec_write.take() {
            // A supervisor that died early closes its end: the write fails with EPIPE
            // (SIGPIPE is ignored by the Rust runtime) and the handshake below reports it
            // as lost. Written before the intermediate child is reaped, so that it is
            // waiting in the pipe when the supervisor gets there; a supervisor never
            // forked leaves no reader, hence EPIPE.
            let _ = spec_write.write_all(&payload);
        }
        self.reap_intermediate()?;
        Ok(parse_ack(&self.answer()))
    }
}

impl Drop for Launching {
    fn drop(&mut self) {
        // Not handed over (the job could not be created): the supervisor reads an empty
        // spec and exits. The intermediate child is reaped in every case, once.
        drop(self.spec_write.take());
        let _ = self.reap_intermediate();
    }
}

fn parse_ack(answer: &str) -> Handshake {
    let answer = answer.trim_end();
    if answer == "ok" {
        return Handshake::Started;
    }
    match answer.split_once('\t') {
        Some(("failed", reason)) => Handshake::Failed(reason.to_string()),
        _ => Handshake::Lost,
    }
}

/// The launcher of `run`, in the forked child that becomes the supervisor: the start
/// handshake, then the exec (module comment). Only async-signal-safe calls, no
/// allocation. Never returns.
///
/// # Safety
/// Call only in the freshly forked child, with fds 0-2 on /dev/null and `spec_read` and
/// `ack_write` above 7 (`dup_high`).
unsafe fn hand_over_run(image: Option<&Program>, spec_read: RawFd, ack_write: RawFd, front_end: u32) {
    // SAFETY: async-signal-safe calls on descriptors of ours (see above).
    unsafe {
        // A stray signal must not end us before the job is handed over, and a stop
        // request (`pkill agent-exec` right after `run` answered) must stop the job and
        // be recorded as for any job: it stays pending, through our exec, until the
        // supervisor handles it (`watch::Signals::new`). The job process gets the
        // defaults and an empty mask back before its exec.
        for &signal in super::IGNORED_SIGNALS {
            libc::signal(signal, libc::SIG_IGN);
        }
        let mut stop: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut stop);
        for &signal in super::STOP_SIGNALS {
            libc::sigaddset(&mut stop, signal);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &stop, std::ptr::null_mut());
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
        let go = read_go(spec_read);
        if go.is_some() {
            // The spec follows `go`. The front-end's write of both blocks until they fit
            // in the pipe, and one that exits after its answer is what we wait for
            // below: take a spec longer than a pipe holds out of its way first.
            spill_spec(spec_read);
        }
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
                    let exits = go == Some(AfterAnswer::Exits);
                    let pidfd = if exits { libc::syscall(libc::SYS_pidfd_open, front_end, 0) as RawFd } else { -1 };
                    write_all(ack_write, b"ok\n");
                    let mut gone = if pidfd >= 0 {
                        libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 }
                    } else {
                        libc::pollfd { fd: ack_write, events: 0, revents: 0 }
                    };
                    libc::poll(&mut gone, 1, READER_PATIENCE_MS);
                    if pidfd >= 0 {
                        libc::close(pidfd);
                    }
                }
                adoption.push(b"forked\t");
                adoption.number(u64::from(job.pid));
                adoption.push(b"\t");
                adoption.number(spawned_ns);
                adoption.push(b"\t");
                adoption.number(u64::from(errno.unsigned_abs()));
                adoption.push(b"\n");
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

/// Moves the launch spec (one line) from the pipe on `SPEC_FD` into a memory file put
/// in its place, rewound for the supervisor, so that the front-end's write of it never
/// waits for the supervisor's start-up. Where no memory file can be made, the pipe
/// stays (a spec longer than a pipe then waits for it). Async-signal-safe, no allocation.
fn spill_spec(spec_read: RawFd) {
    // SAFETY: system calls on descriptors of ours and a buffer on the stack.
    unsafe {
        let memory = libc::syscall(libc::SYS_memfd_create, c"launch-spec".as_ptr(), libc::MFD_CLOEXEC) as RawFd;
        if memory < 0 {
            return;
        }
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
                break;
            }
        }
        libc::lseek(memory, 0, libc::SEEK_SET);
        libc::dup3(memory, SPEC_FD, libc::O_CLOEXEC);
        libc::close(memory);
    }
}

/// Closes every descriptor from `first` on. Async-signal-safe.
fn close_from(first: RawFd) {
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

/// `write_all` of several buffers with `writev`.
fn write_all_vectored(file: &File, buffers: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice> = buffers.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    let mut writer = file;
    while !slices.is_empty() {
        match writer.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

/// Everything `execve` needs, built before forking.
struct ExecImage {
    path: CString,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl ExecImage {
    fn new(job: &JobDir) -> Result<ExecImage> {
        let exe = own_executable()?;
        let cstring = |bytes: &[u8]| CString::new(bytes).map_err(|_| Error::internal("path contains a NUL byte"));
        let path = cstring(exe.as_os_str().as_bytes())?;
        let argv = vec![
            cstring(b"agent-exec")?,
            cstring(SUPERVISE_ARG.as_bytes())?,
            cstring(job.path.as_os_str().as_bytes())?,
        ];
        let envp: Vec<CString> = std::env::vars_os()
            .filter_map(|(key, value)| {
                let mut entry = key.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                CString::new(entry).ok()
            })
            .collect();
        let argv_ptrs = argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let envp_ptrs = envp.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        Ok(ExecImage { path, _argv: argv, _envp: envp, argv_ptrs, envp_ptrs })
    }
}

/// The file to exec as the supervisor. The kernel names a process after the file it
/// executes, so executing `/proc/self/exe` would make every supervisor show as `exe` in
/// `ps`, `pgrep` and `pidof`: the path the link points to is used while it is still the
/// same file (same device and inode). A binary replaced or deleted since we started
/// (an upgrade) is reached through the link, which still holds the running version.
fn own_executable() -> Result<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let link = std::path::Path::new("/proc/self/exe");
    let Ok(running) = std::fs::metadata(link) else {
        return std::env::current_exe().map_err(|e| Error::io("locate own executable", e));
    };
    let same_file = |path: &std::path::Path| {
        std::fs::metadata(path).is_ok_and(|m| m.dev() == running.dev() && m.ino() == running.ino())
    };
    Ok(std::fs::read_link(link).ok().filter(|path| same_file(path)).unwrap_or_else(|| link.to_path_buf()))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io("create pipe", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Moves a descriptor to number 10 or above (close-on-exec), closing the original.
fn dup_high(fd: OwnedFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that we then own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(Error::io("duplicate descriptor", std::io::Error::last_os_error()));
    }
    // SAFETY: `new` is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn reap(pid: libc::pid_t) -> Result<()> {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } >= 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // Under `serve` SIGCHLD is ignored: the kernel has already released the child
        // once this wait returns (see crate::reaper).
        if err.raw_os_error() == Some(libc::ECHILD) {
            return Ok(());
        }
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io("reap launcher", err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_answers() {
        assert_eq!(parse_ack("ok\n"), Handshake::Started);
        assert_eq!(parse_ack("failed\tno such dir\n"), Handshake::Failed("no such dir".into()));
        assert_eq!(parse_ack(""), Handshake::Lost);
        assert_eq!(parse_ack("garbage"), Handshake::Lost);
    }

    #[test]
    fn pids_lines() {
        let parsed = |line: &str| Pids::parse(line);
        assert_eq!(
            parsed("pids\t10\t5\t11\t6\n"),
            Some(Pids { supervisor: 10, supervisor_start: Some(5), job: Some((11, Some(6))) })
        );
        assert_eq!(
            parsed("pids\t10\t-\t11\t-\n"),
            Some(Pids { supervisor: 10, supervisor_start: None, job: Some((11, None)) })
        );
        assert_eq!(parsed("pids\t10\t-\t-\t-\n"), Some(Pids { supervisor: 10, supervisor_start: None, job: None }));
        assert_eq!(Pids::parse(""), None);
        assert_eq!(Pids::parse("ok\n"), None);
        assert_eq!(Pids::parse("pids\t-\t1\t2\t3\n"), None);
    }

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
        line.push(b"\n");
        assert_eq!(line.bytes(), format!("forked\t0\t{}\t2\n", u64::MAX).as_bytes());
        assert_eq!(
            Adoption::parse(&format!("forked\t42\t{}\t2\n", u64::MAX)),
            Some(Adoption::Forked { pid: 42, spawned_ns: u64::MAX, errno: 2 })
        );
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
