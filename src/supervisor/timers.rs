//! When each timed action of the supervisor is due: timeout, kill-after, heartbeat and
//! the drain of lingering output. Pure: it is told the time and never reads a clock.

use std::time::{Duration, Instant};

/// Output written by lingering descendants after the job process exited is read for at
/// most this long (docs/decisions.md OP-21).
const DRAIN: Duration = Duration::from_millis(2000);

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
            self.drain_until = None;
            due.push(Due::DrainOver);
        }
        due
    }

    /// Is a SIGKILL scheduled? After a timeout's SIGTERM it goes to the whole process
    /// group even when the group leader has already died of the SIGTERM, since other
    /// members may ignore it (issue 11): the supervisor stays until it is sent.
    pub fn kill_pending(&self) -> bool {
        self.kill_at.is_some()
    }

    /// The supervisor was asked to stop: act as if the timeout fired now. Asked again
    /// while the SIGKILL is pending (after a first stop, or after the timeout fired),
    /// send it now: a second request means the grace is over.
    pub fn stop_now(&mut self, now: Instant) {
        if self.kill_at.is_some() {
            self.kill_at = Some(now);
        } else {
            self.timeout_at = Some(now);
        }
    }

    /// The group the SIGKILL was for is empty: do not send it.
    pub fn cancel_kill(&mut self) {
        self.kill_at = None;
    }

    /// The job process is gone: no more timeout or heartbeats, only the bounded drain and
    /// a SIGKILL already scheduled by the timeout.
    pub fn child_exited(&mut self, now: Instant) {
        self.timeout_at = None;
        self.next_beat = None;
        self.drain_until = Some(now + DRAIN);
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
        assert!(timers.kill_pending(), "the SIGKILL scheduled by the timeout survives the leader's exit");
        assert_eq!(timers.next(), Some(t0 + ms(260)));
        assert_eq!(timers.due(t0 + ms(260)), [Due::Kill]);
        assert_eq!(timers.next(), Some(t0 + ms(2255)));
        assert_eq!(timers.due(t0 + ms(2255)), [Due::DrainOver]);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn no_timers_means_no_deadline() {
        assert_eq!(Timers::new(Instant::now(), 0, 500, 0).next(), None);
    }

    #[test]
    fn a_stop_acts_as_the_timeout_and_a_second_one_kills() {
        let t0 = Instant::now();
        let mut timers = Timers::new(t0, 0, 500, 0);
        assert_eq!(timers.next(), None);
        timers.stop_now(t0 + Duration::from_millis(10));
        assert_eq!(timers.due(t0 + Duration::from_millis(10)), [Due::Term]);
        assert_eq!(timers.due(t0 + Duration::from_millis(300)), []);
        // A second stop sends the scheduled SIGKILL at once.
        timers.stop_now(t0 + Duration::from_millis(300));
        assert_eq!(timers.due(t0 + Duration::from_millis(300)), [Due::Kill]);
        assert_eq!(timers.next(), None);
    }
}
