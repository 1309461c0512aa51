//! The one place user regexes are compiled (`--output-pattern`, `--for-output`, `notify
//! set`, the REST API and MCP), with a bound on their cost (docs/decisions.md OP-10).
//!
//! regex-lite matches with a PikeVM: a search costs up to the compiled program's size
//! times the line's length. A line is matched on at most 64 KiB (`capture::LINE_CAP`,
//! `ready::LINE_MAX`), so bounding the program bounds the cost of one line. With
//! `SIZE_LIMIT` the most costly patterns still accepted (such as `[a-z]{400}Z` or
//! `(a*){100}Z`) take about 0.1 to 0.4 s on a 64 KiB line on a busy 2-core machine;
//! `([a-z]{100}){40}Z` (3.4 s per such line) and the like are refused. Ordinary patterns
//! are far below the limit: `(?i)(error|warning|fatal|panic)` or a timestamp prefix
//! compile to a few KiB at most.

use std::fmt;

/// The largest compiled program accepted, in regex-lite's (approximate) bytes.
pub const SIZE_LIMIT: usize = 16 * 1024;

/// Why a user regex was refused.
#[derive(Debug)]
pub enum PatternError {
    Invalid(regex_lite::Error),
    /// Valid, but its program exceeds `SIZE_LIMIT`.
    TooCostly,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Invalid(e) => e.fmt(f),
            PatternError::TooCostly => write!(
                f,
                "too costly to match: its compiled program exceeds the limit of {SIZE_LIMIT} bytes (use a smaller \
                 repetition count or a simpler pattern)"
            ),
        }
    }
}

/// Compiles a user regex, refusing one whose program exceeds `SIZE_LIMIT`.
pub fn compile(pattern: &str) -> Result<regex_lite::Regex, PatternError> {
    regex_lite::RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).build().map_err(|limited| {
        // Only a valid pattern compiles without the limit: then the limit was the reason.
        match regex_lite::Regex::new(pattern) {
            Ok(_) => PatternError::TooCostly,
            Err(_) => PatternError::Invalid(limited),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_patterns_compile_and_costly_ones_are_refused() {
        for ok in
            ["^ready$", "(?i)(error|warning|fatal|panic|exception)", r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", "[a-z]{300}Z"]
        {
            assert!(compile(ok).is_ok(), "{ok}");
        }
        assert!(matches!(compile("([a-z]{100}){40}Z"), Err(PatternError::TooCostly)));
        assert!(compile("([a-z]{100}){40}Z").is_err_and(|e| e.to_string().contains("too costly")));
        assert!(matches!(compile("("), Err(PatternError::Invalid(_))));
    }
}
