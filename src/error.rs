//! The one error type of the crate.
//!
//! Every failure carries the contract's error code (docs/compatibility.md §2.5) so that the printer and
//! the HTTP layer can map it to an exit code or a status without guessing. Usage errors
//! are a code of their own: they never reach the JSON printer and exit 2.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Bad command line: message on stderr, empty stdout, exit 2.
    Usage,
    JobNotFound,
    AmbiguousJobId,
    InvalidState,
    UnknownSourceScheme,
    InvalidRequest,
    Unauthorized,
    /// The jobs root or a job's files belong to another user or are writable by others
    /// (issue 11): nothing in them can be trusted.
    InsecureRoot,
    /// `--name` is held by a live job (issue 14); the error carries the holder's id.
    NameInUse,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Usage => "usage",
            Code::JobNotFound => "job_not_found",
            Code::AmbiguousJobId => "ambiguous_job_id",
            Code::InvalidState => "invalid_state",
            Code::UnknownSourceScheme => "unknown_source_scheme",
            Code::InvalidRequest => "invalid_request",
            Code::Unauthorized => "unauthorized",
            Code::InsecureRoot => "insecure_root",
            Code::NameInUse => "name_in_use",
            Code::Internal => "internal_error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub code: Code,
    pub message: String,
    /// The job the error is about, when the caller needs it (`name_in_use`: the holder).
    pub job_id: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error { code, message: message.into(), job_id: None }
    }

    pub fn with_job_id(mut self, id: &str) -> Error {
        self.job_id = Some(id.to_string());
        self
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(Code::Usage, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(Code::Internal, message)
    }

    pub fn not_found(id: &str) -> Error {
        Error::new(Code::JobNotFound, format!("job not found: {id}"))
    }

    /// An I/O failure with the path it happened on, in the contract's "causes joined by
    /// `: `" message style.
    pub fn io(what: impl fmt::Display, err: std::io::Error) -> Error {
        Error::internal(format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
