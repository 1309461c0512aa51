//! The supervisor's event loop: one `poll()` over the SIGCHLD self-pipe and the job's
//! stdout and stderr pipes, with one deadline computed from the timers (timeout,
//! kill-after, heartbeat, drain). Nothing in it waits on a sink or on matching: output
//! lines are queued without blocking for the output-match thread, which evaluates and
//! delivers them, and completion sinks run after the loop.
//!
//! Output is handled a chunk at a time (up to `CHUNK` bytes): one `write` per log per
//! chunk, one clock read per chunk, and the `full.log` records of the chunk built in one
//! buffer (`capture`). Output that only goes to its raw log (`--no-full-log`, no
//! output-match) is `splice`d from the pipe to the file without passing through us.
//!
//! The job process is not reaped when it exits: its exit status is read with `WNOWAIT`
//! and the zombie is kept until the loop ends, so its pid, which is also the process
//! group id, cannot be reused while a scheduled SIGKILL may still be sent to the group.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::capture::{LineSplitter, Records, Stream};
use super::logs::{Logs, Which};
use super::matcher::OutputMatcher;
use super::notify::deliver_completion;
use super::record::{Recorded, Recorder};
use super::spawn::{self, JobProcess};
use super::spec::LaunchSpec;
use super::timers::{Due, Timers};
use crate::jobstore::{JobDir, Lock, liveness, outcome};
use crate::wire::{JobResult, Status};
use crate::{signals, time};

/// Reading what the job left in its pipes when it exited stops after this many bytes, so
/// a descendant that floods the pipe cannot delay the terminal record.
const EXIT_DRAIN_LIMIT: usize = 16 << 20;
/// Bytes read from a pipe at once. The pipes are enlarged to match, so a fast writer
/// fills a whole chunk between two wake-ups.
const CHUNK: usize = 256 * 1024;
/// `full.log` records are written out once they reach this size, which bounds the
/// buffer for chunks of very short lines (a record is up to 31 bytes longer than its
/// line).
const RECORDS_FLUSH: usize = 256 * 1024;
/// After the job exited while a kill-after SIGKILL is pending, how often the process
/// group is checked for members still alive.
const GROUP_RECHECK: Duration = Duration::from_millis(100);

/// Signals delivered as readable bytes on a socket pair (signal-hook's self-pipe).
struct SignalPipe {
    read: UnixStream,
}

/// The supervisor's signals: SIGCHLD from the job, and the requests to stop.
pub struct Signals {
    child: SignalPipe,
    stop: SignalPipe,
}

impl Signals {
    /// Installs the handlers, then unblocks the stop requests, which the launcher of
    /// `run` blocks until we can handle them (one sent meanwhile arrives now).
    pub fn new() -> std::io::Result<Signals> {
        let signals =
            Signals { child: SignalPipe::new(&[libc::SIGCHLD])?, stop: SignalPipe::new(super::STOP_SIGNALS)? };
        // SAFETY: sigemptyset/sigaddset fill a set we own; sigprocmask changes our mask.
        unsafe {
            let mut stop: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut stop);
            for &signal in super::STOP_SIGNALS {
                libc::sigaddset(&mut stop, signal);
            }
            libc::sigprocmask(libc::SIG_UNBLOCK, &stop, std::ptr::null_mut());
        }
        Ok(signals)
    }
}

impl SignalPipe {
    fn new(signals: &[libc::c_int]) -> std::io::Result<SignalPipe> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        for &signal in signals {
            signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
        }
        Ok(SignalPipe { read })
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.read.read(&mut buf), Ok(n) if n > 0) {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Data(usize),
    Empty,
    Eof,
}

struct Source {
    stream: Stream,
    pipe: OwnedFd,
    lines: LineSplitter,
}

/// How the job process ended, read without reaping it.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Code(i32),
    Signal(i32),
}

/// How long the terminal record waits for a held job lock before its outcome goes to
/// the last-resort file meanwhile.
const INTERIM_AFTER: Duration = Duration::from_secs(1);

pub struct Watch {
    job: JobDir,
    spec: LaunchSpec,
    /// The job process: also its process group id.
    pid: u32,
    spawned: Instant,
    signals: Signals,
    sources: Vec<Source>,
    logs: Logs,
    records: Records,
    buffer: Vec<u8>,
    matcher: OutputMatcher,
    timers: Timers,
    recorder: Recorder,
    exited: bool,
    /// Output nothing else needs is spliced from the pipe to its log; false once the
    /// log's filesystem refused a splice.
    splice: bool,
    /// What the terminal record said about the logs, to rewrite it if the drain after
    /// the exit changed that.
    recorded_logs: (Option<String>, u64),
}

impl Watch {
    pub fn new(
        job: JobDir,
        spec: LaunchSpec,
        process: JobProcess,
        spawned: Instant,
        signals: Signals,
        logs: Logs,
        recorder: Recorder,
    ) -> Watch {
        let JobProcess { pid, stdout, stderr } = process;
        let sources = vec![
            Source { stream: Stream::Stdout, pipe: stdout, lines: LineSplitter::default() },
            Source { stream: Stream::Stderr, pipe: stderr, lines: LineSplitter::default() },
        ];
        for source in &sources {
            let fd = source.pipe.as_raw_fd();
            // SAFETY: fcntl on a pipe we own. A larger pipe means fewer wake-ups under
            // heavy output; the kernel may refuse the size, which only costs speed.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETPIPE_SZ, CHUNK as libc::c_int);
            }
        }
        let timers = Timers::new(spawned, spec.timeout_ms, spec.kill_after_ms, spec.progress_every_ms);
        let matcher = OutputMatcher::new(&job, &spec);
        Watch {
            job,
            spec,
            pid,
            spawned,
            signals,
            sources,
            logs,
            records: Records::default(),
            buffer: vec![0; CHUNK],
            matcher,
            timers,
            recorder,
            exited: false,
            splice: true,
            recorded_logs: (None, 0),
        }
    }

    pub fn run(mut self) {
        self.check_exit();
        loop {
            for due in self.timers.due(Instant::now()) {
                match due {
                    Due::Term => self.signal(libc::SIGTERM),
                    Due::Kill => self.signal(libc::SIGKILL),
                    Due::Heartbeat => self.heartbeat(),
                    Due::DrainOver => self.finish_lines(),
                }
            }
            if self.exited && self.sources.is_empty() {
                if !self.timers.kill_pending() {
                    break;
                }
                // The SIGKILL is for members that outlived the leader. With none left
                // there is nothing to wait for; otherwise look again soon. (The zombie
                // leader, reaped after the loop, keeps the group id from being reused.)
                if !liveness::group_has_members(self.pid, self.pid) {
                    self.timers.cancel_kill();
                    break;
                }
                self.wait_for_events(Some(GROUP_RECHECK));
                continue;
            }
            self.wait_for_events(None);
        }
        self.finish_lines();
        // Reap the job process only now: see the module comment.
        spawn::reap(self.pid);
        self.record_late_log_changes();
        // The completion first: output-match deliveries still queued are best effort
        // and may take long (docs/decisions.md OP-10), the end is not.
        self.matcher.flush();
        if let Ok(state) = self.job.read_state() {
            deliver_completion(&self.job, &self.spec.wrapper, self.spec.cwd.as_deref(), &state);
        }
        self.matcher.finish();
    }

    /// Waits for output, the job's exit or the next timer, or at most `cap`.
    fn wait_for_events(&mut self, cap: Option<Duration>) {
        let next = self.timers.next();
        let capped = cap.map(|cap| Instant::now() + cap);
        let timeout_ms = match next.into_iter().chain(capped).min() {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0)).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        let mut fds: Vec<libc::pollfd> = [self.signals.child.read.as_raw_fd(), self.signals.stop.read.as_raw_fd()]
            .into_iter()
            .chain(self.sources.iter().map(|s| s.pipe.as_raw_fd()))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n <= 0 {
            return;
        }
        let ready: Vec<usize> = (0..self.sources.len()).filter(|&i| fds[i + 2].revents != 0).collect();
        for index in ready.into_iter().rev() {
            if self.read_chunk(index) == Chunk::Eof {
                self.close_source(index);
            }
        }
        if fds[0].revents != 0 {
            self.signals.child.drain();
            self.check_exit();
        }
        if fds[1].revents != 0 {
            self.signals.stop.drain();
            // Asked to stop: the job gets what its timeout would give it, and its end is
            // recorded as usual before we exit. After its exit there is nothing to stop.
            if !self.exited {
                self.timers.stop_now(Instant::now());
            }
        }
    }

    fn read_chunk(&mut self, index: usize) -> Chunk {
        self.matcher.refresh();
        if self.splice && !self.logs.wants_full() && !self.matcher.active() && self.logs.error.is_none() {
            let source = &self.sources[index];
            let which = if source.stream == Stream::Stdout { Which::Stdout } else { Which::Stderr };
            match self.logs.splice_from(which, source.pipe.as_raw_fd(), CHUNK) {
                Ok(0) => return Chunk::Eof,
                Ok(n) => return Chunk::Data(n),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => return Chunk::Empty,
                // The log's filesystem cannot splice: copy from now on.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.splice = false,
                // A storage fault, recorded: read below to discard what the job writes.
                Err(_) => {}
            }
        }
        // SAFETY: reading into a buffer we own from a descriptor we own.
        let n = unsafe {
            libc::read(self.sources[index].pipe.as_raw_fd(), self.buffer.as_mut_ptr().cast(), self.buffer.len())
        };
        match n {
            0 => Chunk::Eof,
            n if n > 0 => {
                self.on_output(index, n as usize);
                Chunk::Data(n as usize)
            }
            _ => match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Chunk::Empty,
                _ => Chunk::Eof,
            },
        }
    }

    /// Raw bytes to the stream's log, then the lines of the chunk to `full.log` and to
    /// output-match. Without either, lines are not even looked for.
    fn on_output(&mut self, index: usize, n: usize) {
        let Watch { sources, buffer, logs, records, matcher, .. } = self;
        let source = &mut sources[index];
        let stream = source.stream;
        let bytes = &buffer[..n];
        logs.write(if stream == Stream::Stdout { Which::Stdout } else { Which::Stderr }, bytes);
        let matching = matcher.active();
        let full = logs.wants_full();
        if !matching && !full {
            return;
        }
        records.tick();
        source.lines.feed(bytes, &mut |piece| {
            if full {
                records.push(stream, &piece);
                if records.buffer.len() >= RECORDS_FLUSH {
                    logs.write(Which::Full, &records.buffer);
                    records.buffer.clear();
                }
            }
            if matching && !piece.continued {
                matcher.on_line(stream, piece.bytes);
            }
        });
        logs.write(Which::Full, &records.buffer);
        records.buffer.clear();
        matcher.flush();
    }

    fn close_source(&mut self, index: usize) {
        let mut source = self.sources.remove(index);
        let Watch { logs, records, matcher, .. } = self;
        let full = logs.wants_full();
        records.tick();
        source.lines.finish(&mut |piece| {
            if full {
                records.push(source.stream, &piece);
            }
            if !piece.continued {
                matcher.on_line(source.stream, piece.bytes);
            }
        });
        logs.write(Which::Full, &records.buffer);
        records.buffer.clear();
        matcher.flush();
    }

    fn finish_lines(&mut self) {
        while !self.sources.is_empty() {
            self.close_source(0);
        }
    }

    /// Looks at the job process's exit without reaping it.
    fn check_exit(&mut self) {
        if self.exited {
            return;
        }
        // SAFETY: waitid on our own child, into a zeroed siginfo we own.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        let found = unsafe { libc::waitid(libc::P_PID, self.pid, &mut info, flags) };
        // SAFETY: si_pid and si_status are valid for SIGCHLD information.
        if found != 0 || unsafe { info.si_pid() } == 0 {
            return;
        }
        let status = unsafe { info.si_status() };
        let exit = if info.si_code == libc::CLD_EXITED { Exit::Code(status) } else { Exit::Signal(status) };
        self.on_exit(exit);
    }

    /// Records the outcome at once, after taking what the job left in its pipes, so that
    /// a snapshot taken on the terminal state already shows the job's last output.
    fn on_exit(&mut self, exit: Exit) {
        let duration_ms = self.spawned.elapsed().as_millis() as u64;
        self.exited = true;
        for index in (0..self.sources.len()).rev() {
            let mut taken = 0;
            loop {
                match self.read_chunk(index) {
                    Chunk::Data(n) if taken + n < EXIT_DRAIN_LIMIT => taken += n,
                    Chunk::Data(_) | Chunk::Empty => break,
                    Chunk::Eof => {
                        self.close_source(index);
                        break;
                    }
                }
            }
        }
        let (outcome, result) = match exit {
            Exit::Code(code) => {
                (Status::Exited, JobResult { exit_code: Some(code), signal: None, duration_ms: Some(duration_ms) })
            }
            Exit::Signal(signal) => (
                Status::Killed,
                JobResult { exit_code: None, signal: Some(signals::name(signal)), duration_ms: Some(duration_ms) },
            ),
        };
        // A directory that refuses even the lock file (read-only) must not cost the
        // outcome: record it without the lock then. A lock held by a stopped process
        // (a `tag set` under SIGSTOP) must not hide it either: past a second, the outcome
        // goes to the last-resort file, which readers believe over a `running` record,
        // and we wait for the lock to write it where it belongs.
        // The end is when the job ended, however long the lock takes.
        let ended_at = time::now();
        let mut interim = false;
        let lock = match Lock::acquire_before(&self.job.path, INTERIM_AFTER) {
            Ok(Some(lock)) => Some(lock),
            Ok(None) => {
                if let Ok(mut state) = self.job.read_state() {
                    state.finish(outcome, result.clone(), None, ended_at.clone());
                    self.note_logs(&mut state);
                    interim = outcome::record(&self.job, &state).is_ok();
                }
                Lock::acquire(&self.job.path).ok()
            }
            Err(_) => None,
        };
        if let Ok(mut state) = self.job.read_state() {
            state.finish(outcome, result, None, ended_at);
            self.note_logs(&mut state);
            // The interim file goes once the record is in the job directory (not if the
            // record itself could only go to the last-resort file).
            if self.recorder.terminal(&state) == Ok(Recorded::InJob) && interim {
                outcome::clear(&self.job);
            }
        }
        drop(lock);
        self.timers.child_exited(Instant::now());
    }

    fn note_logs(&mut self, state: &mut crate::wire::State) {
        state.log_error = self.logs.error.clone();
        state.log_dropped_bytes = (self.logs.dropped_bytes > 0).then_some(self.logs.dropped_bytes);
        self.recorded_logs = (self.logs.error.clone(), self.logs.dropped_bytes);
    }

    /// Output drained after the terminal record may have hit a storage fault or a
    /// rotation; the record is brought up to date (only if it is still ours).
    fn record_late_log_changes(&mut self) {
        if self.recorded_logs == (self.logs.error.clone(), self.logs.dropped_bytes) {
            return;
        }
        let _lock = self.job.lock_waiting().ok();
        if let Ok(mut state) = self.job.read_state()
            && state.status().is_terminal()
        {
            self.note_logs(&mut state);
            let _ = self.recorder.terminal(&state);
        }
    }

    fn signal(&self, signal: i32) {
        // After the leader's exit only the timeout's SIGKILL is still sent; the group id
        // is safe to use because the leader is not reaped yet.
        if !self.exited || signal == libc::SIGKILL {
            // SAFETY: the job is our unreaped child, so its process group id is still ours.
            unsafe { libc::kill(-(self.pid as i32), signal) };
        }
    }

    /// Skipped while somebody else holds the lock: waiting for it here would stop the
    /// whole loop (output, timeout, signals) behind a stopped holder.
    fn heartbeat(&self) {
        let Ok(Some(_lock)) = self.job.try_lock() else { return };
        if let Ok(mut state) = self.job.read_state()
            && state.status() == Status::Running
        {
            state.updated_at = time::now();
            let _ = self.job.write_state(&state);
        }
    }
}
