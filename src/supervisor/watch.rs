//! The supervisor's event loop: one `poll()` over the SIGCHLD self-pipe and the job's
//! stdout and stderr pipes, with one deadline computed from the timers (timeout,
//! kill-after, heartbeat, drain). Timer bookkeeping is the pure `Timers` type.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use super::capture::{self, LineSplitter, Stream};
use super::notify::{OutputMatcher, deliver_completion};
use super::spec::LaunchSpec;
use crate::jobstore::JobDir;
use crate::wire::{JobResult, Status};
use crate::{signals, time};

/// Output written by lingering descendants after the job process exited is read for at
/// most this long (DECISIONS OP-21).
const DRAIN: Duration = Duration::from_millis(2000);
/// Reading what the job left in its pipes when it exited stops after this many bytes, so
/// a descendant that floods the pipe cannot delay the terminal record.
const EXIT_DRAIN_LIMIT: usize = 16 << 20;

/// SIGCHLD delivered as a readable byte on a socket pair (signal-hook's self-pipe).
pub struct SignalPipe {
    read: UnixStream,
}

impl SignalPipe {
    pub fn new() -> std::io::Result<SignalPipe> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register(libc::SIGCHLD, write)?;
        Ok(SignalPipe { read })
    }

    fn drain(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.read.read(&mut buf), Ok(n) if n > 0) {}
    }
}

pub struct Logs {
    pub stdout: File,
    pub stderr: File,
    pub full: File,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Term,
    Kill,
    Heartbeat,
    DrainOver,
}

/// When each timed action is due. Pure: it is told the time and never reads a clock.
#[derive(Debug)]
pub struct Timers {
    timeout_at: Option<Instant>,
    kill_after: Duration,
    kill_at: Option<Instant>,
    beat_every: Option<Duration>,
    next_beat: Option<Instant>,
    drain_until: Option<Instant>,
}

impl Timers {
    pub fn new(spawned: Instant, timeout_ms: u64, kill_after_ms: u64, progress_ms: u64) -> Timers {
        let beat_every = (progress_ms > 0).then(|| Duration::from_millis(progress_ms));
        Timers {
            timeout_at: (timeout_ms > 0).then(|| spawned + Duration::from_millis(timeout_ms)),
            kill_after: Duration::from_millis(kill_after_ms),
            kill_at: None,
            beat_every,
            next_beat: beat_every.map(|every| spawned + every),
            drain_until: None,
        }
    }

    pub fn next(&self) -> Option<Instant> {
        [self.timeout_at, self.kill_at, self.next_beat, self.drain_until].into_iter().flatten().min()
    }

    /// Pops every action due at `now`, scheduling follow-ups (SIGKILL after SIGTERM, the
    /// next heartbeat). The heartbeat stops once the timeout fires.
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut due = Vec::new();
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.timeout_at = None;
            self.next_beat = None;
            due.push(Due::Term);
            if self.kill_after.is_zero() {
                due.push(Due::Kill);
            } else {
                self.kill_at = Some(now + self.kill_after);
            }
        }
        if self.kill_at.is_some_and(|t| t <= now) {
            self.kill_at = None;
            due.push(Due::Kill);
        }
        if let (Some(at), Some(every)) = (self.next_beat, self.beat_every)
            && at <= now
        {
            let mut next = at + every;
            while next <= now {
                next += every;
            }
            self.next_beat = Some(next);
            due.push(Due::Heartbeat);
        }
        if self.drain_until.is_some_and(|t| t <= now) {
            due.push(Due::DrainOver);
        }
        due
    }

    /// The job process is gone: no more signals or heartbeats, only the bounded drain.
    pub fn child_exited(&mut self, now: Instant) {
        self.timeout_at = None;
        self.kill_at = None;
        self.next_beat = None;
        self.drain_until = Some(now + DRAIN);
    }
}

pub struct Watch {
    job: JobDir,
    spec: LaunchSpec,
    child: Child,
    pgid: i32,
    spawned: Instant,
    sigchld: SignalPipe,
    sources: Vec<Source>,
    logs: Logs,
    matcher: OutputMatcher,
    timers: Timers,
    exited: bool,
}

impl Watch {
    pub fn new(
        job: JobDir,
        spec: LaunchSpec,
        mut child: Child,
        spawned: Instant,
        sigchld: SignalPipe,
        logs: Logs,
    ) -> Watch {
        let mut sources = Vec::new();
        if let Some(out) = child.stdout.take() {
            sources.push(Source { stream: Stream::Stdout, pipe: out.into(), lines: LineSplitter::default() });
        }
        if let Some(err) = child.stderr.take() {
            sources.push(Source { stream: Stream::Stderr, pipe: err.into(), lines: LineSplitter::default() });
        }
        for source in &sources {
            // SAFETY: toggling O_NONBLOCK on a pipe we own.
            unsafe {
                let flags = libc::fcntl(source.pipe.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(source.pipe.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
        let timers = Timers::new(spawned, spec.timeout_ms, spec.kill_after_ms, spec.progress_every_ms);
        let matcher = OutputMatcher::new(&job, &spec);
        let pgid = child.id() as i32;
        Watch { job, spec, child, pgid, spawned, sigchld, sources, logs, matcher, timers, exited: false }
    }

    pub fn run(mut self) {
        self.reap();
        'events: loop {
            if self.exited && self.sources.is_empty() {
                break;
            }
            for due in self.timers.due(Instant::now()) {
                match due {
                    Due::Term => self.signal(libc::SIGTERM),
                    Due::Kill => self.signal(libc::SIGKILL),
                    Due::Heartbeat => self.heartbeat(),
                    Due::DrainOver => break 'events,
                }
            }
            self.wait_for_events();
        }
        self.finish_lines();
        self.matcher.finish();
        if let Ok(state) = self.job.read_state() {
            deliver_completion(&self.job, &self.spec.wrapper, self.spec.cwd.as_deref(), &state);
        }
    }

    fn wait_for_events(&mut self) {
        let timeout_ms = match self.timers.next() {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis() + u128::from(left.subsec_nanos() % 1_000_000 != 0)).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.sigchld.read.as_raw_fd())
            .chain(self.sources.iter().map(|s| s.pipe.as_raw_fd()))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n <= 0 {
            return;
        }
        let ready: Vec<usize> = (0..self.sources.len()).filter(|&i| fds[i + 1].revents != 0).collect();
        for index in ready.into_iter().rev() {
            if self.read_chunk(index) == Chunk::Eof {
                self.close_source(index);
            }
        }
        if fds[0].revents != 0 {
            self.sigchld.drain();
            self.reap();
        }
    }

    fn read_chunk(&mut self, index: usize) -> Chunk {
        let mut buf = [0u8; 64 * 1024];
        // SAFETY: reading into a buffer we own from a descriptor we own.
        let n = unsafe { libc::read(self.sources[index].pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => Chunk::Eof,
            n if n > 0 => {
                self.on_output(index, &buf[..n as usize]);
                Chunk::Data(n as usize)
            }
            _ => match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Chunk::Empty,
                _ => Chunk::Eof,
            },
        }
    }

    fn on_output(&mut self, index: usize, bytes: &[u8]) {
        let stream = self.sources[index].stream;
        let log = match stream {
            Stream::Stdout => &mut self.logs.stdout,
            Stream::Stderr => &mut self.logs.stderr,
        };
        capture::append(log, bytes);
        for line in self.sources[index].lines.feed(bytes) {
            self.on_line(stream, &line);
        }
    }

    fn on_line(&mut self, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        capture::append(&mut self.logs.full, capture::record(stream, &text).as_bytes());
        self.matcher.on_line(stream, &text);
    }

    fn close_source(&mut self, index: usize) {
        let mut source = self.sources.remove(index);
        if let Some(rest) = source.lines.finish() {
            self.on_line(source.stream, &rest);
        }
    }

    fn finish_lines(&mut self) {
        while !self.sources.is_empty() {
            self.close_source(0);
        }
    }

    fn reap(&mut self) {
        if self.exited {
            return;
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            self.on_exit(status);
        }
    }

    /// Records the outcome at once, after taking what the job left in its pipes, so that
    /// a snapshot taken on the terminal state already shows the job's last output.
    fn on_exit(&mut self, status: ExitStatus) {
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
        let (outcome, result) = match (status.code(), status.signal()) {
            (Some(code), _) => {
                (Status::Exited, JobResult { exit_code: Some(code), signal: None, duration_ms: Some(duration_ms) })
            }
            (None, signal) => (
                Status::Killed,
                JobResult { exit_code: None, signal: signal.map(signals::name), duration_ms: Some(duration_ms) },
            ),
        };
        if let Ok(_lock) = self.job.lock()
            && let Ok(mut state) = self.job.read_state()
        {
            state.finish(outcome, result, None, time::now());
            let _ = self.job.write_state(&state);
        }
        self.timers.child_exited(Instant::now());
    }

    fn signal(&self, signal: i32) {
        if !self.exited {
            // SAFETY: the job is our unreaped child, so its process group id is still ours.
            unsafe { libc::kill(-self.pgid, signal) };
        }
    }

    fn heartbeat(&self) {
        let Ok(_lock) = self.job.lock() else { return };
        if let Ok(mut state) = self.job.read_state()
            && state.status() == Status::Running
        {
            state.updated_at = time::now();
            let _ = self.job.write_state(&state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timeout_without_kill_after_sends_both_signals_at_once() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0, 100, 0, 0);
        assert_eq!(timers.next(), Some(t0 + ms(100)));
        assert!(timers.due(t0 + ms(99)).is_empty());
        assert_eq!(timers.due(t0 + ms(100)), [Due::Term, Due::Kill]);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn kill_after_delays_sigkill() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0, 100, 50, 0);
        assert_eq!(timers.due(t0 + ms(100)), [Due::Term]);
        assert_eq!(timers.next(), Some(t0 + ms(150)));
        assert_eq!(timers.due(t0 + ms(150)), [Due::Kill]);
    }

    #[test]
    fn heartbeat_repeats_and_stops_at_timeout_or_exit() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0, 250, 10, 100);
        assert_eq!(timers.due(t0 + ms(100)), [Due::Heartbeat]);
        assert_eq!(timers.due(t0 + ms(230)), [Due::Heartbeat]);
        assert_eq!(timers.due(t0 + ms(250)), [Due::Term]);
        assert_eq!(timers.next(), Some(t0 + ms(260)));
        timers.child_exited(t0 + ms(255));
        assert_eq!(timers.next(), Some(t0 + ms(2255)));
        assert_eq!(timers.due(t0 + ms(2255)), [Due::DrainOver]);
    }

    #[test]
    fn no_timers_means_no_deadline() {
        assert_eq!(Timers::new(Instant::now(), 0, 500, 0).next(), None);
    }
}
