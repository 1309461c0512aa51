//! `GET /v1/jobs/{id}/output` on the wire (issue 16): a job's raw log bytes from a byte
//! offset, the one answer that is not a JSON object and the one written here rather than
//! by `mod.rs`'s `respond`.
//!
//! Without `follow` the answer is the bytes from the offset to the log's current end,
//! with their `Content-Length`, copied from the file a piece at a time by tiny_http.
//! With `follow` it is a chunked body (HTTP/1.0: raw bytes, then the connection is
//! closed) that sends each piece as the log grows, flushed at once, and ends when the
//! job has ended and its log is drained, at the deadline, at shutdown, or when the
//! client is gone. tiny_http's own chunked writer would not do: it buffers 8 KiB before
//! sending a chunk, and nothing flushes its connection buffer between pieces. So the
//! request is turned into its raw writer and the head and chunks are written here.
//!
//! A follower with nothing to write would notice a vanished client only at its next
//! write; it looks at the socket (a duplicate of the connection's, vendor/tiny_http
//! patch 11) at every wake-up instead, so a client that hangs up frees its long-poll
//! slot within `jobs::follow::POLL`. A client that stops reading is cut off by the
//! socket's write timeout (`limits::IDLE_TIMEOUT`).

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Response, StatusCode};

use super::handlers::Context;
use super::routes::Query;
use crate::error::{Code, Error, Result};
use crate::jobs::{self, Output};
use crate::wire::Stream;

/// The response headers naming what was sent: a client resumes at the start offset plus
/// the bytes it received. The OpenAPI document (`openapi`) names them too.
pub(super) const JOB_ID_HEADER: &str = "X-Agent-Exec-Job-Id";
pub(super) const OFFSET_HEADER: &str = "X-Agent-Exec-Offset";
/// The bound a follow stream was given after clamping to `--max-wait-ms`.
pub(super) const UNTIL_HEADER: &str = "X-Agent-Exec-Until-Ms";

/// What the query asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OutputQuery {
    stream: Stream,
    offset: u64,
    follow: bool,
    /// `None`: the server's maximum.
    until_ms: Option<u64>,
}

impl OutputQuery {
    fn read(query: &Query) -> Result<OutputQuery> {
        let stream = match query.text("stream") {
            None | Some("stdout") => Stream::Stdout,
            Some("stderr") => Stream::Stderr,
            Some(other) => {
                let message = format!("invalid query parameter 'stream': '{other}' is not one of stdout, stderr");
                return Err(Error::new(Code::InvalidRequest, message));
            }
        };
        let follow = query.bool("follow")?.unwrap_or(false);
        let until_ms = query.u64("until_ms")?;
        if until_ms.is_some() && !follow {
            return Err(Error::new(Code::InvalidRequest, "query parameter 'until_ms' needs follow=true"));
        }
        Ok(OutputQuery { stream, offset: query.u64("offset")?.unwrap_or(0), follow, until_ms })
    }
}

/// A checked request for a job's output whose log is open: what `send` answers.
pub struct Opened {
    output: Output,
    query: OutputQuery,
}

/// Checks the query and opens the job's log; an error is answered as JSON like any other.
pub fn open(ctx: &Context, id: &str, query: &Query) -> Result<Opened> {
    let query = OutputQuery::read(query)?;
    Ok(Opened { output: jobs::output(ctx.root, id, query.stream)?, query })
}

/// Sends the log's bytes; returns the status sent, for the access log.
pub fn send(request: Request, opened: Opened, max_wait_ms: u64, stop: &AtomicBool) -> u16 {
    let Opened { output, query } = opened;
    let (job_id, offset) = (output.job_id().to_string(), query.offset);
    if !query.follow {
        let (body, count) = output.range(offset);
        let headers = vec![
            header("Content-Type", "application/octet-stream"),
            header(JOB_ID_HEADER, &job_id),
            header(OFFSET_HEADER, &offset.to_string()),
        ];
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        // Never chunked (tiny_http would chunk from 32 KiB on): the length is known, and
        // a client reading a log it knows the size of should be told that size.
        let response =
            Response::new(StatusCode(200), headers, body, Some(count), None).with_chunked_threshold(usize::MAX);
        // A client that went away is nobody's problem.
        let _ = request.respond(response);
        return 200;
    }
    let until_ms = query.until_ms.map_or(max_wait_ms, |ms| ms.min(max_wait_ms));
    let until = Instant::now() + Duration::from_millis(until_ms);
    let chunked = *request.http_version() > (1, 0);
    // SAFETY: tiny_http keeps the connection's socket open while its request lives; the
    // duplicate taken here is ours and outlives the request.
    let peer = request.socket_fd().and_then(|fd| unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().ok());
    let mut writer = request.into_writer();
    let head = format!(
        "HTTP/1.{} 200 OK\r\nContent-Type: application/octet-stream\r\n{}\r\n{JOB_ID_HEADER}: {job_id}\r\n\
         {OFFSET_HEADER}: {offset}\r\n{UNTIL_HEADER}: {until_ms}\r\n\r\n",
        u8::from(chunked),
        if chunked { "Transfer-Encoding: chunked" } else { "Connection: close" },
    );
    if writer.write_all(head.as_bytes()).and_then(|()| writer.flush()).is_ok() {
        let mut emit = |bytes: &[u8]| {
            if chunked {
                write!(writer, "{:x}\r\n", bytes.len())?;
                writer.write_all(bytes)?;
                writer.write_all(b"\r\n")?;
            } else {
                writer.write_all(bytes)?;
            }
            writer.flush()
        };
        let mut go_on = || !stop.load(Ordering::Relaxed) && peer.as_ref().is_none_or(still_there);
        output.follow(offset, until, &mut emit, &mut go_on);
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n").and_then(|()| writer.flush());
        }
    }
    drop(writer);
    if !chunked && let Some(peer) = &peer {
        // HTTP/1.0: the end of the body is the end of the connection.
        // SAFETY: shutdown on a descriptor we own.
        unsafe { libc::shutdown(peer.as_raw_fd(), libc::SHUT_RDWR) };
    }
    200
}

fn header(name: &str, value: &str) -> Header {
    // Names and values here are ours: ASCII without line breaks.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| unreachable!("ASCII header"))
}

/// False once the client has hung up (or half-closed: it will never ask for more) or
/// the socket failed; bytes it sent meanwhile (a pipelined request) are left unread.
fn still_there(socket: &OwnedFd) -> bool {
    let mut pollfd = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    ready <= 0 || pollfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_closed_peer_is_noticed_without_writing() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let socket = OwnedFd::from(server);
        assert!(still_there(&socket));
        (&client).write_all(b"GET / HTTP/1.1\r\n").expect("write");
        assert!(still_there(&socket), "unread input is not a hang-up");
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(10);
        while still_there(&socket) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!still_there(&socket), "the hang-up was noticed");
    }
}
