//! Signal names for `kill --signal` and for recording how a job died (docs/decisions.md OP-3,
//! OP-8): names are upper case without the `SIG` prefix everywhere we write them. And
//! `Held`, signals blocked on a thread for a section that must not be cut short.

const NAMED: &[(&str, i32)] = &[
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("KILL", libc::SIGKILL),
    ("HUP", libc::SIGHUP),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("STOP", libc::SIGSTOP),
    ("CONT", libc::SIGCONT),
];

/// Names used when recording a death by a signal we do not accept for `kill`.
const OTHER_NAMES: &[(&str, i32)] = &[
    ("ABRT", libc::SIGABRT),
    ("ALRM", libc::SIGALRM),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("ILL", libc::SIGILL),
    ("PIPE", libc::SIGPIPE),
    ("SEGV", libc::SIGSEGV),
    ("SYS", libc::SIGSYS),
    ("TRAP", libc::SIGTRAP),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("TSTP", libc::SIGTSTP),
];

/// A parsed `--signal` value: the number to send and the text to echo back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub number: i32,
    pub echo: String,
}

pub fn parse(text: &str) -> Result<Requested, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i32>() {
            Ok(n @ 1..=64) => Ok(Requested { number: n, echo: text.to_string() }),
            _ => Err(format!("invalid signal '{text}': numbers must be 1-64")),
        };
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMED
        .iter()
        .find(|(name, _)| *name == bare)
        .map(|(name, number)| Requested { number: *number, echo: (*name).to_string() })
        .ok_or_else(|| {
            format!(
                "invalid signal '{text}' (expected one of TERM INT KILL HUP QUIT USR1 USR2 STOP CONT, or a number 1-64)"
            )
        })
}

/// The names `parse` accepts (besides numbers), as it writes them.
pub fn kill_names() -> impl Iterator<Item = &'static str> {
    NAMED.iter().map(|(name, _)| *name)
}

pub fn check(text: &str) -> Result<(), String> {
    parse(text).map(|_| ())
}

/// The name we record for a signal number: a known name, else the number as text.
pub fn name(number: i32) -> String {
    NAMED
        .iter()
        .chain(OTHER_NAMES)
        .find(|(_, n)| *n == number)
        .map_or_else(|| number.to_string(), |(name, _)| (*name).to_string())
}

/// The number of a signal as `name` records it (a name, or the number as text).
pub fn number(recorded: &str) -> Option<i32> {
    NAMED
        .iter()
        .chain(OTHER_NAMES)
        .find(|(name, _)| *name == recorded)
        .map(|(_, n)| *n)
        .or_else(|| recorded.parse().ok())
}

/// Signals blocked on the calling thread until this drops, which restores its mask as it
/// was; one that arrived meanwhile is delivered then. The set stays readable for a child
/// forked meanwhile, which inherits the mask but must not run the restoring drop.
pub struct Held {
    set: libc::sigset_t,
    before: libc::sigset_t,
}

impl Held {
    pub fn new(signals: &[libc::c_int]) -> Held {
        // SAFETY: initialising and applying signal sets we own, to this thread only.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut before: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut before);
            Held { set, before }
        }
    }

    /// Exactly the held signals.
    pub fn set(&self) -> &libc::sigset_t {
        &self.set
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: restoring this thread's mask as it was.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.before, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_with_or_without_prefix_in_any_case() {
        assert_eq!(parse("term"), Ok(Requested { number: libc::SIGTERM, echo: "TERM".into() }));
        assert_eq!(parse("SIGkill").map(|r| r.number), Ok(libc::SIGKILL));
        assert_eq!(parse("Usr1").map(|r| r.echo), Ok("USR1".into()));
        assert_eq!(parse("9"), Ok(Requested { number: 9, echo: "9".into() }));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", "0", "65", "SIG", "BOGUS", "-9", "TERM ", "SIGSIGTERM"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_numbers() {
        assert_eq!(name(libc::SIGTERM), "TERM");
        assert_eq!(name(libc::SIGSEGV), "SEGV");
        assert_eq!(name(40), "40");
    }
}
