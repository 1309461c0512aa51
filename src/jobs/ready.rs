//! Readiness waits (issue 14 item 3): `--for-output` (a line of the job's output
//! matches) and `--for-port` (a TCP connect succeeds), for `wait`, `run` and `start`.
//!
//! The logs are scanned from their first byte, so output written before the wait began
//! counts and there is no race between `run` and `wait`. Appends wake us through
//! inotify on the job directory (`IN_MODIFY`); the poll interval is the fallback and the
//! cadence of the port probe and the liveness check. Only complete lines are matched
//! while the job runs; its unterminated last line is matched too once it has ended.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::follow;
use crate::error::Result;
use crate::jobstore::watches::Watches;
use crate::jobstore::{self, JobDir, Root, liveness};
use crate::wire::{Readiness, State, Stream, StreamFilter, WaitBody};

/// Port probes never block longer than this, so a deadline is kept.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the supervisor drains a finished job's pipes at most (`supervisor::watch`).
const DRAIN: Duration = Duration::from_millis(2500);
/// The port is probed at least this often, whatever `--poll-ms` says.
const PORT_PROBE: Duration = Duration::from_millis(100);
/// Scanning the logs stops at the wait's deadline, but never before it had this long,
/// so that `--until 0` still looks at the output already there.
const SCAN_AT_LEAST: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub enum Pattern {
    Contains(String),
    Regex(regex_lite::Regex),
}

impl Pattern {
    fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Contains(text) => line.contains(text.as_str()),
            Pattern::Regex(regex) => regex.is_match(line),
        }
    }
}

/// What "ready" means.
#[derive(Debug, Clone)]
pub enum Condition {
    Output { pattern: Pattern, stream: StreamFilter },
    Port { host: String, port: u16 },
}

/// A readiness wait: the condition, how long at most (`None`: until the job ends), and
/// the fallback poll interval.
#[derive(Debug, Clone)]
pub struct ReadyWait {
    pub condition: Condition,
    pub until: Option<Duration>,
    pub poll: Duration,
}

/// `wait --for-output` / `--for-port` on one job: the `wait` answer plus the readiness.
pub fn wait_ready(root: &Root, job_id: &str, wait: &ReadyWait) -> Result<WaitBody> {
    let job = root.lookup(job_id)?;
    let (state, readiness) = await_ready(&job, wait)?;
    Ok(super::wait::wait_body(&job, &state, Some(readiness)))
}

/// Waits until the condition holds, the job ends, or the deadline passes; returns the
/// job's state then and the readiness answer.
pub fn await_ready(job: &JobDir, wait: &ReadyWait) -> Result<(State, Readiness)> {
    let started = Instant::now();
    let deadline = wait.until.map(|d| started + d);
    let scan_deadline = deadline.map(|d| d.max(started + SCAN_AT_LEAST));
    let mut poll = wait.poll.max(jobstore::waiter::MIN_POLL);
    let mut scanners = Vec::new();
    if let Condition::Output { stream, .. } = &wait.condition {
        for (name, which) in [(jobstore::STDOUT_LOG, Stream::Stdout), (jobstore::STDERR_LOG, Stream::Stderr)] {
            let wanted = matches!(
                (stream, which),
                (StreamFilter::Either, _)
                    | (StreamFilter::Stdout, Stream::Stdout)
                    | (StreamFilter::Stderr, Stream::Stderr)
            );
            if wanted {
                scanners.push(Scanner::new(job.file(name), which));
            }
        }
    } else {
        poll = poll.min(PORT_PROBE);
    }
    let mut probe = match &wait.condition {
        Condition::Port { host, port } => Some(PortProbe::new(host, *port, system_resolve)),
        Condition::Output { .. } => None,
    };
    let mut watches = Watches::new();
    if let Some(watches) = &mut watches {
        watches.add_with_appends(job, 0);
    }
    loop {
        let state = super::current(job)?;
        let ended = state.status().is_terminal();
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let found = match (&wait.condition, &mut probe) {
            (Condition::Output { pattern, .. }, _) => {
                scanners.iter_mut().find_map(|s| s.scan(pattern, ended, scan_deadline))
            }
            // A slow name lookup is waited for no longer than the deadline (nor than a
            // poll, so that the job's end is noticed).
            (Condition::Port { .. }, Some(probe)) => {
                probe.connects(remaining.map_or(poll, |r| r.min(poll))).then(Readiness::ready)
            }
            (Condition::Port { .. }, None) => unreachable!("a port wait has its probe"),
        };
        if let Some(readiness) = found {
            return Ok((state, readiness));
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if ended && let Condition::Output { pattern, .. } = &wait.condition {
            // The terminal record comes before the supervisor's last drain of the pipes:
            // give it its bounded drain time, then read the logs one last time.
            let drained = Instant::now() + DRAIN;
            while liveness::is_live(&state) && Instant::now() < drained {
                std::thread::sleep(jobstore::waiter::MIN_POLL);
            }
            let found = scanners.iter_mut().find_map(|s| s.scan(pattern, true, scan_deadline));
            return Ok((state, found.unwrap_or_else(Readiness::not_ready)));
        }
        if ended || remaining == Some(Duration::ZERO) {
            return Ok((state, Readiness::not_ready()));
        }
        let pause = remaining.map_or(poll, |r| r.min(poll));
        match &watches {
            Some(watches) => drop(watches.wait(pause)),
            None => std::thread::sleep(pause),
        }
    }
}

/// Resolves a host name and port to addresses; the system's may block for seconds.
type Resolve = fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;
type Lookup = std::io::Result<Vec<SocketAddr>>;

fn system_resolve(host: &str, port: u16) -> Lookup {
    (host, port).to_socket_addrs().map(Iterator::collect)
}

/// Makes closing `stream` send a reset instead of the normal end (`SO_LINGER` 0).
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a value of the size we pass.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// The `--for-port` probe. `to_socket_addrs` blocks while DNS is slow (about 10 s for a
/// resolver that does not answer), which made `--until` late: a name is resolved in a
/// helper thread that is waited for only as long as the caller allows. A lookup still
/// running is picked up by the next probe rather than started again, so a wait has at
/// most one such thread. A literal address or `localhost` needs no DNS, and no thread.
struct PortProbe {
    host: String,
    port: u16,
    resolve: Resolve,
    pending: Option<mpsc::Receiver<Lookup>>,
}

impl PortProbe {
    fn new(host: &str, port: u16, resolve: Resolve) -> PortProbe {
        PortProbe { host: host.to_string(), port, resolve, pending: None }
    }

    /// Whether a TCP connect succeeds; waits for a name lookup at most `budget`.
    fn connects(&mut self, budget: Duration) -> bool {
        let local = self.host.parse::<IpAddr>().is_ok() || self.host.eq_ignore_ascii_case("localhost");
        let lookup = if local { Some((self.resolve)(&self.host, self.port)) } else { self.lookup(budget) };
        let Some(Ok(addresses)) = lookup else { return false };
        addresses.into_iter().any(|address| {
            let Ok(stream) = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) else { return false };
            if stream.local_addr().is_ok_and(|local| local != address) {
                return true;
            }
            // Where nothing listens, the kernel may connect the probe to itself (TCP
            // simultaneous open, when the ephemeral port it picked is the probed one):
            // that is no server, and a normal close would leave a TIME_WAIT on exactly
            // the address the job's server is about to bind, refusing it for a minute.
            // Closed with a reset instead, which leaves nothing behind.
            reset_on_close(&stream);
            false
        })
    }

    /// The lookup's result, or `None` if it has not finished within `budget`.
    fn lookup(&mut self, budget: Duration) -> Option<Lookup> {
        let receiver = match self.pending.take() {
            Some(receiver) => receiver,
            None => {
                let (sender, receiver) = mpsc::channel();
                let (resolve, host, port) = (self.resolve, self.host.clone(), self.port);
                let spawned = std::thread::Builder::new()
                    .name("resolve".into())
                    .spawn(move || drop(sender.send(resolve(&host, port))));
                if let Err(e) = spawned {
                    return Some(Err(e));
                }
                receiver
            }
        };
        match receiver.recv_timeout(budget) {
            Ok(lookup) => Some(lookup),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.pending = Some(receiver);
                None
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(std::io::Error::other("the resolver thread ended"))),
        }
    }
}

/// The longest line matched whole: a longer one is matched on its first `LINE_MAX`
/// bytes, like the supervisor's output-match, so memory stays bounded whatever the job
/// prints (a 1 GB line without a newline used to be read whole).
const LINE_MAX: usize = 64 * 1024;

/// Reads one log from where it left off (across `--max-log-bytes` rotations, through
/// the follower's reader) and matches its complete lines. A scan that found a line
/// stops reading there: a scanner is not used after a match. A scan also stops at the
/// wait's deadline, checked between lines (one line's match is bounded by
/// `crate::pattern::SIZE_LIMIT`), keeping the rest of the chunk it was reading for the
/// next scan.
struct Scanner {
    path: std::path::PathBuf,
    stream: Stream,
    /// Opened at the first scan that finds the file.
    log: Option<follow::Log>,
    lines: Lines,
}

/// The line being assembled from the chunks read: its first `LINE_MAX` bytes and the
/// log offset of its first byte; and the bytes read but not looked at yet when a scan
/// reached its deadline (at most one chunk), with the offset of the first.
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
    start: u64,
    pending: Vec<u8>,
    pending_at: u64,
}

/// Where feeding bytes to `Lines` stopped.
enum Fed {
    Found(Readiness),
    /// Every line of the bytes was looked at.
    Done,
    /// The deadline passed: the rest is kept in `Lines::pending`.
    Stopped,
}

impl Scanner {
    fn new(path: std::path::PathBuf, stream: Stream) -> Scanner {
        Scanner { path, stream, log: None, lines: Lines::default() }
    }

    fn scan(&mut self, pattern: &Pattern, ended: bool, deadline: Option<Instant>) -> Option<Readiness> {
        if self.log.is_none() {
            self.log = follow::Log::open(self.path.clone(), self.stream).ok();
        }
        let stream = self.stream;
        let lines = &mut self.lines;
        let mut check_line = |line: &[u8], at: u64| check(stream, pattern, line, at);
        if !lines.pending.is_empty() {
            let (pending, at) = (std::mem::take(&mut lines.pending), lines.pending_at);
            match lines.feed(&pending, at, deadline, &mut check_line) {
                Fed::Found(readiness) => return Some(readiness),
                Fed::Stopped => return None,
                Fed::Done => {}
            }
        }
        let mut found = None;
        let mut stopped = false;
        if let Some(log) = &mut self.log {
            log.copy_new(
                &mut |_, bytes, offset| match lines.feed(bytes, offset, deadline, &mut check_line) {
                    // Stop reading: the rest of the log is not needed.
                    Fed::Found(readiness) => {
                        found = Some(readiness);
                        Err(std::io::ErrorKind::Interrupted.into())
                    }
                    Fed::Done => Ok(()),
                    // The chunk counts as read: its rest is pending.
                    Fed::Stopped => {
                        stopped = true;
                        Ok(())
                    }
                },
                deadline,
            );
        }
        if found.is_none() && !stopped && ended && lines.pending.is_empty() && !lines.line.is_empty() {
            found = check(stream, pattern, &lines.line, lines.start);
        }
        found
    }
}

impl Lines {
    /// Takes the next bytes of the log (`offset` is the first one's) and calls `check`
    /// on each line they complete, until it finds something or, between two lines, the
    /// deadline has passed; bytes that come while some are pending are only kept.
    fn feed(
        &mut self,
        bytes: &[u8],
        offset: u64,
        deadline: Option<Instant>,
        check: &mut impl FnMut(&[u8], u64) -> Option<Readiness>,
    ) -> Fed {
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(bytes);
            return Fed::Stopped;
        }
        let mut rest = bytes;
        let mut at = offset;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.pending = rest.to_vec();
                self.pending_at = at;
                return Fed::Stopped;
            }
            self.push(&rest[..newline]);
            let found = check(&self.line, self.start);
            self.line.clear();
            at += newline as u64 + 1;
            self.start = at;
            rest = &rest[newline + 1..];
            if let Some(readiness) = found {
                return Fed::Found(readiness);
            }
        }
        self.push(rest);
        Fed::Done
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = LINE_MAX.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn check(stream: Stream, pattern: &Pattern, line: &[u8], offset: u64) -> Option<Readiness> {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    pattern.matches(text).then(|| Readiness {
        ready: true,
        matched_line: Some(text.to_string()),
        stream: Some(stream),
        offset: Some(offset),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_match_with_their_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stdout.log");
        std::fs::write(&path, "starting\nlistening on 8080\nready").expect("write");
        let mut scanner = Scanner::new(path.clone(), Stream::Stdout);
        let found = scanner.scan(&Pattern::Contains("listening".into()), false, None).expect("a match");
        assert_eq!((found.matched_line.as_deref(), found.offset), (Some("listening on 8080"), Some(9)));
        // The unterminated last line counts only once the job has ended.
        let mut scanner = Scanner::new(path, Stream::Stdout);
        let ready = Pattern::Regex(crate::pattern::compile("^rea.y$").expect("regex"));
        assert!(scanner.scan(&ready, false, None).is_none());
        assert_eq!(scanner.scan(&ready, true, None).and_then(|r| r.offset), Some(27));
    }

    /// `--max-log-bytes` renames a full log to `<name>.1` and starts a new one. The scan
    /// used to reopen the name and seek to its old offset, past the end of the new file,
    /// so a line written just after a rotation was never seen.
    #[test]
    fn a_line_after_a_rotation_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stdout.log");
        std::fs::write(&path, "starting the server, please wait\n").expect("write");
        let mut scanner = Scanner::new(path.clone(), Stream::Stdout);
        let ready = Pattern::Contains("ready".into());
        assert!(scanner.scan(&ready, false, None).is_none());
        std::fs::rename(&path, jobstore::rotated_log(&path)).expect("rotate");
        std::fs::write(&path, "up\nready\n").expect("write the new generation");
        let found = scanner.scan(&ready, false, None).expect("the line after the rotation");
        // Offsets count on across the generations.
        assert_eq!((found.matched_line.as_deref(), found.offset), (Some("ready"), Some(33 + 3)));
    }

    /// A resolver that blocks until the test lets it go.
    static RELEASE: std::sync::Mutex<Option<mpsc::Receiver<()>>> = std::sync::Mutex::new(None);

    fn blocking_resolve(_: &str, port: u16) -> Lookup {
        let release = RELEASE.lock().expect("lock").take().expect("one lookup");
        release.recv().ok();
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }

    /// `--for-host` with a slow DNS answered only after the lookup (about 10 s), whatever
    /// `--until` said. The probe now gives up at its budget while the lookup is still
    /// blocked, and the next probe takes that lookup's result instead of starting another.
    #[test]
    fn a_blocked_name_lookup_does_not_hold_the_probe() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (release, blocked) = mpsc::channel();
        *RELEASE.lock().expect("lock") = Some(blocked);
        let (done, answered) = mpsc::channel();
        let prober = std::thread::spawn(move || {
            let mut probe = PortProbe::new("slow.example.com", port, blocking_resolve);
            let first = probe.connects(Duration::from_millis(50));
            done.send(first).expect("send");
            // The lookup is let go now: the pending one answers, none is started again.
            probe.connects(Duration::from_secs(60))
        });
        // A hang detector, not a timing goal: the probe answers while the lookup blocks.
        let first = answered.recv_timeout(Duration::from_secs(20)).expect("the probe waited for the blocked lookup");
        assert!(!first);
        release.send(()).expect("release");
        assert!(prober.join().expect("join"));
    }

    /// Only the first `LINE_MAX` bytes of a line are kept and matched.
    #[test]
    fn a_long_line_is_matched_on_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stdout.log");
        let long = format!("head{}tail\nnext\n", "x".repeat(3 * LINE_MAX));
        std::fs::write(&path, &long).expect("write");
        let mut scanner = Scanner::new(path.clone(), Stream::Stdout);
        assert!(scanner.scan(&Pattern::Contains("tail".into()), false, None).is_none());
        let mut scanner = Scanner::new(path.clone(), Stream::Stdout);
        let found = scanner.scan(&Pattern::Contains("head".into()), false, None).expect("the start of the line");
        assert_eq!(found.matched_line.map(|line| line.len()), Some(LINE_MAX));
        let mut scanner = Scanner::new(path, Stream::Stdout);
        let found = scanner.scan(&Pattern::Contains("next".into()), false, None).expect("the next line");
        assert_eq!(found.offset, Some(3 * LINE_MAX as u64 + 9));
    }

    /// Bytes read when the deadline has passed are kept, not looked at: the next scan
    /// goes on from there with the right offsets.
    #[test]
    fn a_scan_past_its_deadline_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stdout.log");
        std::fs::write(&path, "").expect("write");
        let mut scanner = Scanner::new(path, Stream::Stdout);
        let ready = Pattern::Contains("ready".into());
        assert!(scanner.scan(&ready, false, None).is_none());
        let fed = scanner.lines.feed(b"one\ntwo\nready\n", 0, Some(Instant::now()), &mut |_, _| None);
        assert!(matches!(fed, Fed::Stopped));
        assert_eq!(scanner.lines.pending, b"one\ntwo\nready\n");
        let found = scanner.scan(&ready, false, None).expect("found on the next scan");
        assert_eq!((found.matched_line.as_deref(), found.offset), (Some("ready"), Some(8)));
    }
}
