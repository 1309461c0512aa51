//! Readiness waits (issue 14 item 3): `--for-output` (a line of the job's output
//! matches) and `--for-port` (a TCP connect succeeds), for `wait`, `run` and `start`.
//!
//! The logs are scanned from their first byte, so output written before the wait began
//! counts and there is no race between `run` and `wait`. Appends wake us through
//! inotify on the job directory (`IN_MODIFY`); the poll interval is the fallback and the
//! cadence of the port probe and the liveness check. Only complete lines are matched
//! while the job runs; its unterminated last line is matched too once it has ended.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

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
    let deadline = wait.until.map(|d| Instant::now() + d);
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
                scanners.push(Scanner { path: job.file(name), stream: which, offset: 0, pending: Vec::new() });
            }
        }
    } else {
        poll = poll.min(PORT_PROBE);
    }
    let mut watches = Watches::new();
    if let Some(watches) = &mut watches {
        watches.add_with_appends(job, 0);
    }
    loop {
        let state = super::current(job)?;
        let ended = state.status().is_terminal();
        let found = match &wait.condition {
            Condition::Output { pattern, .. } => scanners.iter_mut().find_map(|s| s.scan(pattern, ended)),
            Condition::Port { host, port } => connects(host, *port).then(Readiness::ready),
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
            let found = scanners.iter_mut().find_map(|s| s.scan(pattern, true));
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

fn connects(host: &str, port: u16) -> bool {
    let Ok(addresses) = (host, port).to_socket_addrs() else { return false };
    addresses.into_iter().any(|address| TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).is_ok())
}

/// Reads one log from where it left off and matches its complete lines.
struct Scanner {
    path: std::path::PathBuf,
    stream: Stream,
    /// Bytes of the log consumed so far: `pending` starts at `offset - pending.len()`.
    offset: u64,
    pending: Vec<u8>,
}

impl Scanner {
    fn scan(&mut self, pattern: &Pattern, ended: bool) -> Option<Readiness> {
        self.read_new();
        let mut start = 0;
        let base = self.offset - self.pending.len() as u64;
        while let Some(newline) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[start..start + newline];
            if let Some(found) = self.check(pattern, line, base + start as u64) {
                return Some(found);
            }
            start += newline + 1;
        }
        self.pending.drain(..start);
        if ended && !self.pending.is_empty() {
            let base = self.offset - self.pending.len() as u64;
            return self.check(pattern, &self.pending, base);
        }
        None
    }

    fn check(&self, pattern: &Pattern, line: &[u8], offset: u64) -> Option<Readiness> {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        pattern.matches(text).then(|| Readiness {
            ready: true,
            matched_line: Some(text.to_string()),
            stream: Some(self.stream),
            offset: Some(offset),
        })
    }

    /// Appends what the log gained since the last read (logs only grow while a job
    /// runs; a rotated log is read on from the same offset, like `tail -f` on a name).
    fn read_new(&mut self) {
        let Ok(mut file) = File::open(&self.path) else { return };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        if file.read_to_end(&mut fresh).is_ok() {
            self.offset += fresh.len() as u64;
            self.pending.extend_from_slice(&fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_match_with_their_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stdout.log");
        std::fs::write(&path, "starting\nlistening on 8080\nready").expect("write");
        let mut scanner = Scanner { path: path.clone(), stream: Stream::Stdout, offset: 0, pending: Vec::new() };
        let found = scanner.scan(&Pattern::Contains("listening".into()), false).expect("a match");
        assert_eq!((found.matched_line.as_deref(), found.offset), (Some("listening on 8080"), Some(9)));
        // The unterminated last line counts only once the job has ended.
        let mut scanner = Scanner { path, stream: Stream::Stdout, offset: 0, pending: Vec::new() };
        let ready = Pattern::Regex(regex_lite::Regex::new("^rea.y$").expect("regex"));
        assert!(scanner.scan(&ready, false).is_none());
        assert_eq!(scanner.scan(&ready, true).and_then(|r| r.offset), Some(27));
    }
}
