use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;
use std::str::FromStr;

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Limits, Request};

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // bounds on heads and bodies (agent-exec patch)
    limits: Arc<Limits>,

    // when the first byte of the head being read arrived (agent-exec patch 9)
    head_started: Option<Instant>,

    // agent-exec patch 11: the socket's descriptor, handed to every request (it stays
    // open as long as this connection, which outlives each of its requests)
    #[cfg(unix)]
    socket: Option<std::os::fd::RawFd>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// A line, the head or the header count crossed its bound (agent-exec patch 1).
    HeadTooLarge,
    /// The head did not arrive whole within `head_deadline` (agent-exec patch 9).
    HeadTooSlow,
    /// A version other than 1.0 and 1.1 (agent-exec patch 2).
    VersionNotSupported,
    /// The body is over `max_body` (413), late (408) or malformed (400) (agent-exec patch 4).
    Body(u16),
}

/// How long a connection that is being closed after an error answer keeps reading what
/// the client still sends, and how much of it, so that the close does not reset the
/// connection before the client has read the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024;

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        limits: Arc<Limits>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();
        #[cfg(unix)]
        let socket = read_socket.raw_fd();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            limits,
            head_started: None,
            #[cfg(unix)]
            socket,
        }
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line. Never holds more than `max_line` bytes, nor
    ///  more than what is left of the head's budget (`head_left`, lowered here).
    fn read_next_line(&mut self, head_left: &mut usize) -> Result<AsciiString, ReadError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;
        let max_line = self.limits.max_line;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b.map_err(ReadError::ReadIoError)?,
                None => {
                    return Err(ReadError::ReadIoError(IoError::new(
                        ErrorKind::ConnectionAborted,
                        "Unexpected EOF",
                    )))
                }
            };

            // agent-exec patch 9: the head's clock starts at its first byte (a
            // keep-alive connection may idle before it) and is checked at every byte.
            let started = *self.head_started.get_or_insert_with(Instant::now);
            if started.elapsed() > self.limits.head_deadline {
                return Err(ReadError::HeadTooSlow);
            }

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                // agent-exec patch 12: a line that is not ASCII is a malformed request,
                // answered 400 (it used to close the connection without an answer).
                return AsciiString::from_ascii(buf).map_err(|_| ReadError::WrongRequestLine);
            }

            prev_byte_was_cr = byte == b'\r';

            // Checked before the byte is kept, so nothing past the bound is ever held.
            // The CR of the line's CRLF does not count against the line.
            let over_line = buf.len() > max_line || (buf.len() == max_line && !prev_byte_was_cr);
            if over_line || *head_left == 0 {
                return Err(ReadError::HeadTooLarge);
            }
            *head_left -= 1;
            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let mut head_left = self.limits.max_head;
        self.head_started = None;
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self.read_next_line(&mut head_left)?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };
            if version != HTTPVersion(1, 0) && version != HTTPVersion(1, 1) {
                return Err(ReadError::VersionNotSupported);
            }

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line(&mut head_left)?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() == self.limits.max_headers {
                        return Err(ReadError::HeadTooLarge);
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };
        let body_deadline = Instant::now() + self.limits.body_deadline;

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            &self.limits,
            body_deadline,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::Body(status) => ReadError::Body(status),
            }
        })?;
        #[cfg(unix)]
        let request = request.with_socket(self.socket);

        // return the request
        Ok(request)
    }

    /// Answers an error the server found by itself with `Connection: close`, then reads
    /// (a bounded amount of) what the client still sends, so that closing the socket
    /// with unread data does not reset the connection before the answer is read.
    fn refuse(&mut self, status: u16, version: HTTPVersion) {
        use crate::{Header, Response, StatusCode};
        let (body, content_type) = (self.limits.error_body)(status);
        let mut response = Response::from_string(body).with_status_code(StatusCode(status));
        if let Ok(header) = Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()) {
            response.add_header(header);
        }
        response.close_connection();
        let mut writer = self.sink.next().unwrap();
        if response.raw_print(&mut writer, version, &[], false, None).is_ok() {
            let _ = writer.flush();
        }
        drop(writer);
        let until = Instant::now() + LINGER_TIME;
        let mut left = LINGER_BYTES;
        let mut scratch = [0u8; 4096];
        while left > 0 {
            // Each read waits at most what is left of the linger (agent-exec patch 13): the
            // socket's own read timeout is the idle timeout (10 s), which held a silent
            // client's connection, thread and descriptors that long. Nothing restores it,
            // since the connection closes after this loop.
            let remaining = until.saturating_duration_since(Instant::now());
            if remaining.is_zero() || self.next_header_source.get_mut().get_ref().set_read_timeout(remaining).is_err()
            {
                break;
            }
            match self.next_header_source.read(&mut scratch[..left.min(4096)]) {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n,
            }
        }
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        let rq = match self.read() {
            // we don't know where the next request would start, so we have to close
            Err(ReadError::WrongRequestLine) => {
                self.refuse(400, HTTPVersion(1, 1));
                return None;
            }
            Err(ReadError::WrongHeader(ver)) => {
                self.refuse(400, ver);
                return None;
            }
            Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                self.refuse(408, HTTPVersion(1, 1));
                return None;
            }
            Err(ReadError::ExpectationFailed(ver)) => {
                self.refuse(417, ver);
                return None;
            }
            Err(ReadError::HeadTooLarge) => {
                self.refuse(431, HTTPVersion(1, 1));
                return None;
            }
            Err(ReadError::HeadTooSlow) => {
                self.refuse(408, HTTPVersion(1, 1));
                return None;
            }
            Err(ReadError::VersionNotSupported) => {
                self.refuse(505, HTTPVersion(1, 1));
                return None;
            }
            Err(ReadError::Body(status)) => {
                self.refuse(status, HTTPVersion(1, 1));
                return None;
            }
            Err(ReadError::ReadIoError(_)) => return None,
            Ok(rq) => rq,
        };

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // returning the request
        Some(rq)
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    // Any `HTTP/<digit>.<digit>` is a version; those other than 1.0 and 1.1 are answered
    // 505 by `read` (agent-exec patch 2).
    match version.as_bytes() {
        [b'H', b'T', b'T', b'P', b'/', major @ b'0'..=b'9', b'.', minor @ b'0'..=b'9'] => {
            Ok(HTTPVersion(major - b'0', minor - b'0'))
        }
        _ => Err(ReadError::WrongRequestLine),
    }
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
