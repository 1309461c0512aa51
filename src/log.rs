//! Diagnostics on stderr. Verbosity comes from `-v` (warn, info, debug, trace) unless
//! `RUST_LOG` names a level, which wins. Lines are for humans, never for parsing.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

pub fn init(verbose: u8) {
    let from_env = std::env::var("RUST_LOG").ok().and_then(|v| parse_filter(&v));
    LEVEL.store(from_env.unwrap_or(1 + verbose.min(3)), Ordering::Relaxed);
}

/// Levels are numbers here (0 error .. 4 trace) because `-vvv` and `RUST_LOG=trace`
/// must be accepted even though we only write warn, info and debug lines.
/// Understands `level` and `agent_exec=level` (the last directive that applies wins);
/// anything else is ignored, as the contract asks of an invalid filter.
fn parse_filter(filter: &str) -> Option<u8> {
    let mut level = None;
    for directive in filter.split(',').map(str::trim) {
        let value = match directive.split_once('=') {
            Some((target, value)) if target == "agent_exec" || target == "agent-exec" => value,
            Some(_) => continue,
            None => directive,
        };
        level = match value.to_ascii_lowercase().as_str() {
            "off" | "error" => Some(0),
            "warn" => Some(1),
            "info" => Some(2),
            "debug" => Some(3),
            "trace" => Some(4),
            _ => return None,
        };
    }
    level
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

pub fn write(level: Level, message: std::fmt::Arguments) {
    if enabled(level) {
        to_stderr(format_args!("{} {:5} agent_exec: {message}\n", crate::time::now(), level.name()));
    }
}

/// Writes to stderr, ignoring failure. `eprintln!` panics when stderr is gone (a closed
/// pipe: `serve -v 2>&1 | head`), and a panic is an abort in our builds: a log line
/// must never end `serve`, and a lost answer must still exit 1, not 134.
pub fn to_stderr(message: std::fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stderr().write_fmt(message);
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn filters() {
        assert_eq!(parse_filter("debug"), Some(3));
        assert_eq!(parse_filter("agent_exec=trace"), Some(4));
        assert_eq!(parse_filter("other=trace"), None);
        assert_eq!(parse_filter("nonsense"), None);
    }
}
