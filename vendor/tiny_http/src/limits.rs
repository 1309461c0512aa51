//! Bounds on what one client may make the server hold (agent-exec patch, see
//! PATCHES.md). Upstream reads request lines and headers without limit and leaves
//! bodies to the application; here every head and body is bounded before it is queued.

use std::time::Duration;

/// The bounds the connection threads enforce, and the body of the answers they send
/// on their own when a bound is crossed.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line or header line, CRLF excluded: beyond it, 431.
    pub max_line: usize,
    /// Longest head (request line and headers together): beyond it, 431.
    pub max_head: usize,
    /// Most header lines: beyond it, 431.
    pub max_headers: usize,
    /// Largest body, declared or chunked: beyond it, 413. Bodies up to this size are
    /// read whole by the connection thread before the request is handed out, so the
    /// application never reads from a socket.
    pub max_body: usize,
    /// The whole body must arrive within this time after its head: otherwise, 408.
    pub body_deadline: Duration,
    /// The whole head must arrive within this time from its first byte: otherwise, 408.
    /// The idle timeout alone lets a client trickle a head a byte at a time forever.
    pub head_deadline: Duration,
    /// Most connections open at once; one more is answered 503 and closed on the accept
    /// thread, so a flood of connections cannot make a thread each.
    pub max_open: usize,
    /// Read and write timeout of every accepted socket (`None`: block forever).
    pub idle_timeout: Option<Duration>,
    /// The body (and its content type) of the answers the server sends by itself
    /// (400, 408, 413, 417, 431, 503, 505), given the status code.
    pub error_body: fn(u16) -> (String, &'static str),
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: 8 * 1024,
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 1024 * 1024,
            body_deadline: Duration::from_secs(10),
            head_deadline: Duration::from_secs(10),
            max_open: 1024,
            idle_timeout: Some(Duration::from_secs(10)),
            error_body: |_| (String::new(), "text/plain"),
        }
    }
}
