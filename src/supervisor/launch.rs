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
//! happened on fd 5, the job's stdout and stderr pipes on fds 6 and 7 (`handover.rs`).

use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use super::handover::{ACK_FD, ADOPT_FD, AfterAnswer, GO, GO_THEN_EXIT, SPEC_FD, close_from, hand_over_run};
use super::spawn::Program;
use super::spec::LaunchSpec;
use crate::error::{Error, Result};
use crate::jobstore::{JobDir, liveness};

/// The hidden subcommand the supervisor is exec'd as.
pub const SUPERVISE_ARG: &str = "__supervise";
/// How long a front-end waits for each step of the start handshake. A start takes
/// milliseconds; one held up longer has a process of it stopped (SIGSTOP, a debugger),
/// and no call may wait on that without a deadline.
pub const HANDSHAKE_PATIENCE: Duration = Duration::from_secs(10);
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
    /// The widest record the launcher can report: a `state.json` naming these is at
    /// least as long as one naming the real pids (the front-end sizes the file with it
    /// before they are known).
    pub const WIDEST: Pids =
        Pids { supervisor: u32::MAX, supervisor_start: Some(u64::MAX), job: Some((u32::MAX, Some(u64::MAX))) };

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
    /// No answer within `HANDSHAKE_PATIENCE`: the processes are alive but held up. The
    /// record stays `running`, naming them, and whatever comes of the start is recorded
    /// by the supervisor when they go on.
    Pending,
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
    /// Why the intermediate child could not fork the supervisor, once reaped (its exit
    /// status; unknown under `serve`, whose children the kernel reaps).
    fork_error: Option<i32>,
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

        // The stop signals are blocked from before the fork, so that none can end a child
        // before `run`'s launcher has handed the job over (see `hand_over_run`): a TERM
        // between the fork and the child's own sigprocmask was fatal. Ours come back
        // right after it.
        let stop = crate::signals::Held::new(super::STOP_SIGNALS);
        let stop_set = *stop.set();
        // SAFETY: fork in a possibly multi-threaded process; both children below only call
        // async-signal-safe functions (setsid, fork, _exit, sigprocmask, dup2, execve...).
        let intermediate = unsafe { libc::fork() };
        if intermediate != 0 {
            drop(stop);
        }
        if intermediate < 0 {
            return Err(Error::io("fork supervisor", std::io::Error::last_os_error()));
        }
        if intermediate == 0 {
            unsafe {
                libc::setsid();
                let supervisor = libc::fork();
                if supervisor != 0 {
                    // A failed fork's errno is our exit status: the front-end reports it
                    // (a process limit reached), where it could only say "exited".
                    let failed = if supervisor < 0 { *libc::__errno_location() } else { 0 };
                    libc::_exit(failed.clamp(0, 255));
                }
                // None of the front-end's blocked signals go through the exec; `run`'s
                // launcher keeps the stop signals blocked until its supervisor handles them.
                let mask = if run.is_some() { &stop_set } else { &empty_mask };
                libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
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
                        // Nothing of the caller's past them: neither the supervisor nor
                        // the job may hold, say, the write end of a pipe whose reader
                        // waits for its end (and the supervisor reads fd 5 only as
                        // `run`'s launcher record).
                        close_from(ADOPT_FD);
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
            fork_error: None,
            spec_write: Some(File::from(spec_write)),
            ack_read: Some(BufReader::new(File::from(ack_read))),
        })
    }

    /// The pids the launcher of `run` reports (`None` if it died first), with their
    /// start times; an error if it reports nothing within `HANDSHAKE_PATIENCE`. Dropped
    /// then, without `go`, we leave nothing to the launcher: when it goes on, it finds
    /// the spec pipe closed and lets its held job process exit unrun.
    pub fn pids(&mut self) -> Result<Option<Pids>> {
        let Some(line) = self.ack_read.as_mut().and_then(|ack_read| read_line_within(ack_read, HANDSHAKE_PATIENCE))
        else {
            return Err(Error::internal(format!(
                "the supervisor did not start within {} s (a process of it is stopped?)",
                HANDSHAKE_PATIENCE.as_secs()
            )));
        };
        let Some(mut pids) = Pids::parse(&line) else {
            self.reap_intermediate()?;
            return match self.fork_error {
                Some(errno) => Err(Error::io("fork supervisor", std::io::Error::from_raw_os_error(errno))),
                None => Ok(None),
            };
        };
        pids.supervisor_start = liveness::start_time(pids.supervisor);
        pids.job = pids.job.map(|(pid, _)| (pid, liveness::start_time(pid)));
        Ok(Some(pids))
    }

    /// Tells the launcher of `run` that the job directory is complete, with the launch
    /// spec for the supervisor, and waits for the answer: `ok` once the job process has
    /// exec'd, or the supervisor's `failed`. After `ok` the launcher waits, before it
    /// execs the supervisor (see `hand_over_run`), for this to be dropped or, if the
    /// front-end `Exits`, for the front-end's exit. `meanwhile` runs between the two, while
    /// the job process execs.
    pub fn go(&mut self, spec: &LaunchSpec, after: AfterAnswer, meanwhile: impl FnOnce()) -> Result<Handshake> {
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
            let sent = write_all_vectored(&spec_write, &[go, &payload], Instant::now() + HANDSHAKE_PATIENCE);
            if sent.is_err_and(|e| e.kind() == std::io::ErrorKind::TimedOut) {
                // A launcher that stopped reading (stopped itself) finds the spec cut
                // short once it goes on, and lets its held job process exit unrun.
                drop(spec_write);
                self.reap_intermediate()?;
                return Ok(Handshake::Failed(format!(
                    "the supervisor did not take its launch spec within {} s (a process of it is stopped?)",
                    HANDSHAKE_PATIENCE.as_secs()
                )));
            }
        }
        meanwhile();
        self.reap_intermediate()?;
        Ok(self.answer())
    }

    fn reap_intermediate(&mut self) -> Result<()> {
        if !self.reaped {
            self.reaped = true;
            self.fork_error = reap(self.intermediate, HANDSHAKE_PATIENCE)?.filter(|&status| status != 0);
        }
        Ok(())
    }

    /// The answer: one line (the supervisor keeps its end open while the job runs).
    fn answer(&mut self) -> Handshake {
        let handshake = match self.ack_read.as_mut().map(|ack_read| read_line_within(ack_read, HANDSHAKE_PATIENCE)) {
            Some(None) => Handshake::Pending,
            Some(Some(line)) => parse_ack(&line),
            None => Handshake::Lost,
        };
        match (handshake, self.fork_error) {
            (Handshake::Lost, Some(errno)) => {
                Handshake::Failed(format!("fork supervisor: {}", std::io::Error::from_raw_os_error(errno)))
            }
            (handshake, _) => handshake,
        }
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
        Ok(self.answer())
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

/// One line from `reader`, or what came before its end of file; `None` if neither came
/// within `patience`. The lines of the handshake are written whole, each in one `write`
/// shorter than a pipe's atomic size: once the pipe is readable, the line is there.
fn read_line_within(reader: &mut BufReader<File>, patience: Duration) -> Option<String> {
    let deadline = Instant::now() + patience;
    while reader.buffer().is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll_one(reader.get_ref().as_raw_fd(), libc::POLLIN, left) {
            n if n > 0 => break,
            0 => return None,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            // Not pollable: read as before.
            _ => break,
        }
    }
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    Some(line)
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

/// `write_all` of several buffers with `writev` into a pipe, giving up at `deadline`
/// (`TimedOut`): the pipe is made non-blocking, and a full one waited on with `poll`.
fn write_all_vectored(file: &File, buffers: &[&[u8]], deadline: Instant) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
    let mut slices: Vec<std::io::IoSlice> = buffers.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    let mut writer = file;
    while !slices.is_empty() {
        match writer.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || poll_one(fd, libc::POLLOUT, left) == 0 {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

/// Waits for our child `pid`, at most `patience` (a stopped child never exits: it is
/// left, to be reaped by whoever inherits it); its exit status, if it exited and we
/// could see it.
fn reap(pid: libc::pid_t, patience: Duration) -> Result<Option<i32>> {
    let deadline = Instant::now() + patience;
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child, without blocking.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if reaped == pid {
            return Ok(libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)));
        }
        if reaped == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            wait_for_exit(pid, left);
            continue;
        }
        let err = std::io::Error::last_os_error();
        // Under `serve` SIGCHLD is ignored: the kernel has already released the child
        // once this wait returns (see crate::reaper).
        if err.raw_os_error() == Some(libc::ECHILD) {
            return Ok(None);
        }
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::io("reap launcher", err));
        }
    }
}

/// Sleeps until our child `pid` exits or `patience` has passed: on its pidfd, or in
/// steps of a millisecond where there is none (before Linux 5.3).
fn wait_for_exit(pid: libc::pid_t, patience: Duration) {
    // SAFETY: pidfd_open of our own child; the descriptor is closed below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    if pidfd < 0 {
        std::thread::sleep(patience.min(Duration::from_millis(1)));
        return;
    }
    poll_one(pidfd, libc::POLLIN, patience.max(Duration::from_millis(1)));
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(pidfd) };
}

/// `poll(2)` of one descriptor of ours for `events`, at most `patience`: what poll
/// returns (above 0 ready, 0 timed out, below 0 an error such as EINTR).
fn poll_one(fd: RawFd, events: libc::c_short, patience: Duration) -> libc::c_int {
    let mut one = libc::pollfd { fd, events, revents: 0 };
    let ms = libc::c_int::try_from(patience.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: polling one descriptor, through a struct we own.
    unsafe { libc::poll(&mut one, 1, ms) }
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
}
