//! The wire under MCP's stdio transport: newline-delimited JSON-RPC 2.0.
//!
//! `Lines` reads stdin one message at a time with a hard size bound: a line longer than
//! `MAX_MESSAGE` is skipped as it streams past, never held in memory whole. `Out` is the
//! single writer of stdout: every message is one `write_all` of a full line under a
//! mutex, so messages from the reader and the workers never interleave. `classify` turns
//! a line into a request, a notification, or the error reply it deserves.

use std::io::{self, BufRead, Write};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::output;

/// Requests above 1 MiB are refused: every legitimate call is a few hundred bytes.
pub const MAX_MESSAGE: usize = 1 << 20;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC's implementation-defined server error: too many tool calls in flight.
pub const SERVER_BUSY: i64 = -32000;

/// A JSON-RPC error object: code and message (we attach no `data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
}

impl ErrorObject {
    pub fn invalid_params(message: impl Into<String>) -> ErrorObject {
        ErrorObject { code: INVALID_PARAMS, message: format!("invalid params: {}", message.into()) }
    }
}

/// One line read from stdin.
pub enum Line {
    Message(Vec<u8>),
    /// A line over `MAX_MESSAGE`, already discarded.
    TooLarge,
    Eof,
}

pub struct Lines<R> {
    input: R,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Lines<R> {
        Lines { input }
    }

    /// The next non-empty line, without its terminator (`\n` or `\r\n`).
    pub fn next_line(&mut self) -> io::Result<Line> {
        let mut line = Vec::new();
        let mut oversized = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                // EOF: a last line without its newline still counts.
                return Ok(match (oversized, line.is_empty()) {
                    (true, _) => Line::TooLarge,
                    (false, true) => Line::Eof,
                    (false, false) => Line::Message(line),
                });
            }
            let (part, used, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (&chunk[..at], at + 1, true),
                None => (chunk, chunk.len(), false),
            };
            if !oversized && line.len() + part.len() <= MAX_MESSAGE {
                line.extend_from_slice(part);
            } else {
                oversized = true;
                line = Vec::new();
            }
            self.input.consume(used);
            if ended {
                if oversized {
                    return Ok(Line::TooLarge);
                }
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    line.clear();
                    continue;
                }
                return Ok(Line::Message(line));
            }
        }
    }
}

/// A message from the client, classified.
#[derive(Debug)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A response to a request of ours; we send none, so it is dropped.
    Response,
    /// Not a valid message: the error to answer with, and the id if one could be read.
    Invalid {
        id: Value,
        error: ErrorObject,
    },
}

pub fn classify(line: &[u8]) -> Incoming {
    let invalid = |id: Value, code, message: &str| Incoming::Invalid {
        id,
        error: ErrorObject { code, message: message.to_string() },
    };
    let value = match crate::wire::parse_unique(line) {
        Ok(value) => value,
        // Well-formed JSON that names a key twice is an invalid request, not a parse
        // error (serde_json classes our refusal as a data error).
        Err(e) if e.is_data() => return invalid(Value::Null, INVALID_REQUEST, &format!("invalid request: {e}")),
        Err(e) => return invalid(Value::Null, PARSE_ERROR, &format!("parse error: {e}")),
    };
    let Value::Object(mut object) = value else {
        return invalid(
            Value::Null,
            INVALID_REQUEST,
            "invalid request: expected one JSON-RPC object (batches are not supported)",
        );
    };
    let id = object.remove("id");
    // A number must be an integer we can echo exactly: 1e29 or 0.5 come back from
    // serde_json as floats, spelt differently, and a client matching ids by their
    // value would never see its answer.
    let id_ok = match &id {
        Some(Value::String(_)) => true,
        Some(Value::Number(number)) => number.is_i64() || number.is_u64(),
        _ => false,
    };
    let echo = if id_ok { id.clone().unwrap_or(Value::Null) } else { Value::Null };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(echo, INVALID_REQUEST, "invalid request: jsonrpc must be \"2.0\"");
    }
    let params = object.remove("params").unwrap_or(Value::Null);
    if !matches!(params, Value::Null | Value::Object(_) | Value::Array(_)) {
        return invalid(echo, INVALID_REQUEST, "invalid request: params must be an object");
    }
    match (object.remove("method"), id) {
        (Some(Value::String(method)), None) => Incoming::Notification { method, params },
        (Some(Value::String(method)), Some(id)) if id_ok => Incoming::Request { id, method, params },
        (Some(Value::String(_)), Some(_)) => {
            invalid(Value::Null, INVALID_REQUEST, "invalid request: id must be a string or an integer")
        }
        (Some(_), _) => invalid(echo, INVALID_REQUEST, "invalid request: method must be a string"),
        (None, _) if object.contains_key("result") || object.contains_key("error") => Incoming::Response,
        (None, _) => invalid(echo, INVALID_REQUEST, "invalid request: no method"),
    }
}

/// The one writer of stdout.
pub struct Out {
    stdout: Mutex<output::Std>,
}

impl Out {
    pub fn new() -> Out {
        Out { stdout: Mutex::new(output::Std::stdout()) }
    }

    pub fn result(&self, id: &Value, result: Value) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    pub fn error(&self, id: &Value, error: &ErrorObject) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "error": {"code": error.code, "message": error.message}}))
    }

    pub fn notify(&self, method: &str, params: Value) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    fn send(&self, message: &Value) -> io::Result<()> {
        let mut line = message.to_string();
        line.push('\n');
        // A worker that panicked while holding the lock wrote nothing partial (one
        // `write_all` per message), so the stream is still usable.
        let mut stdout = self.stdout.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        stdout.write_all(line.as_bytes())
    }

    /// Holds the writer for good, so that nothing is written after the caller exits;
    /// `None` if a writer still holds it after `patience`: it is stuck in a write to a
    /// client that stopped reading, and waiting for it would keep us from ever exiting.
    pub fn close(&self, patience: std::time::Duration) -> Option<std::sync::MutexGuard<'_, output::Std>> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match self.stdout.try_lock() {
                Ok(guard) => return Some(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut reader = Lines::new(io::BufReader::with_capacity(16, input));
        let mut out = Vec::new();
        loop {
            match reader.next_line().expect("read") {
                Line::Message(line) => out.push(String::from_utf8(line).expect("utf8")),
                Line::TooLarge => out.push("<too large>".to_string()),
                Line::Eof => return out,
            }
        }
    }

    #[test]
    fn splits_lines_skips_blank_ones_and_keeps_a_last_unterminated_one() {
        assert_eq!(lines(b"a\r\n\n  \nbb\nlast"), ["a", "bb", "last"]);
    }

    #[test]
    fn an_oversized_line_is_reported_once_and_the_next_line_survives() {
        let mut input = vec![b'x'; MAX_MESSAGE + 10];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(lines(&input), ["<too large>", "ok"]);
        let exact = vec![b'y'; MAX_MESSAGE];
        assert_eq!(lines(&exact)[0].len(), MAX_MESSAGE);
    }

    #[test]
    fn classifies_messages() {
        let code = |line: &str| match classify(line.as_bytes()) {
            Incoming::Invalid { error, .. } => error.code,
            Incoming::Request { .. } => 1,
            Incoming::Notification { .. } => 2,
            Incoming::Response => 3,
        };
        assert_eq!(code("{nope"), PARSE_ERROR);
        assert_eq!(code("[]"), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#), 1);
        assert_eq!(code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), 2);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#), 3);
    }
}
