//! Shared by tests/serve.rs and tests/serve_limits.rs: a running `agent-exec serve` child
//! process on a free loopback port (killed on drop), and raw HTTP/1.1 over `TcpStream`,
//! so that malformed and hostile requests can be written byte for byte.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Env, eventually};

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `serve` with extra flags on a port picked by binding port 0; another
    /// process may grab the port in between, so a server that exits early is retried.
    pub fn start(env: &Env, extra: &[&str]) -> Server {
        Self::start_with(env, extra, Stdio::null)
    }

    pub fn start_with(env: &Env, extra: &[&str], stderr: impl Fn() -> Stdio) -> Server {
        for _ in 0..5 {
            let port = fresh_port();
            let port_text = port.to_string();
            let mut args = vec!["serve", "--port", &port_text];
            args.extend_from_slice(extra);
            let child = env.command(&args).stdout(Stdio::piped()).stderr(stderr()).spawn().expect("spawn serve");
            let mut server = Server { child, port };
            let up = eventually(Duration::from_secs(10), || {
                matches!(server.child.try_wait(), Ok(Some(_))) || listening_by(server.child.id(), port)
            });
            if up && matches!(server.child.try_wait(), Ok(None)) {
                return server;
            }
        }
        panic!("could not start agent-exec serve");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str) -> Reply {
        request(self.port, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &str) -> Reply {
        request(self.port, "POST", path, &[], body.as_bytes())
    }

    /// `POST /exec` that must succeed; returns the job id.
    pub fn exec(&self, body: &str) -> String {
        let reply = self.post("/exec", body);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["job_id"].as_str().expect("job_id").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts an error envelope with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let value = self.json();
        assert_eq!(value["ok"], false, "{self:?}");
        assert_eq!(value["type"], "error");
        assert_eq!(value["schema_version"], "0.1");
        assert_eq!(value["error"]["code"], code, "{self:?}");
        assert_eq!(value["error"]["retryable"], false);
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// One request on a fresh connection (`Connection: close`), with a 30 s bound.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw_request(port, &raw).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Sends bytes as they are and parses the answer.
pub fn raw_request(port: u16, raw: &[u8]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(raw)?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    parse(&bytes).ok_or_else(|| std::io::Error::other(format!("bad response: {:?}", String::from_utf8_lossy(&bytes))))
}

/// Like `raw_request`, but says it has nothing more to send (a half close) once `raw` is
/// written, so that a server refusing the request need not wait for more.
pub fn raw_request_then_eof(port: u16, raw: &[u8]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(raw)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    parse(&bytes).ok_or_else(|| std::io::Error::other(format!("bad response: {:?}", String::from_utf8_lossy(&bytes))))
}

fn parse(bytes: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Reply { status, headers, body: body.to_string() })
}

/// A free port never handed out before in this test process. Tests run in parallel
/// threads, and the kernel may give two probes the same free port: a second server
/// would then fail to bind while its test talks to the first one.
/// Whether something listens on the loopback `port`. A connection whose own port is
/// `port` is the kernel connecting the socket to itself (TCP simultaneous open, when the
/// ephemeral port it picked is the one we probe and nothing listens yet): that is "no",
/// and the socket is closed at once, since it holds the port the server is about to bind.
pub fn listening(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    if stream.local_addr().is_ok_and(|a| a.port() != port) {
        return true;
    }
    // Closed with a reset, so that no TIME_WAIT keeps the server from binding the port.
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on our socket with a value of the size given.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    false
}

/// Whether process `pid` itself holds a listening TCP socket on `port`. A connect probe
/// alone is not enough: the port, released by `fresh_port`, can be bound meanwhile by
/// another test's listener, and a server that failed to bind it would look up until
/// that listener goes (seen once in CI: "Connection refused" on the first request).
pub fn listening_by(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT, state 0A is LISTEN, field 9 the inode.
            let local_port =
                fields.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && fields.get(3) == Some(&"0A") {
                inodes.extend(fields.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

pub fn fresh_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind probe").local_addr().expect("addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The resident set of a process, in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// How many threads (`task`) or descriptors (`fd`) process `pid` has.
pub fn count(pid: u32, what: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{what}")).map_or(0, |d| d.count())
}

/// The server's thread and descriptor counts once they hold still for 200 ms (within
/// 30 s): the baseline that leak checks compare with.
pub fn steady_counts(pid: u32) -> (usize, usize) {
    let steady = || {
        let before = (count(pid, "task"), count(pid, "fd"));
        // A measurement interval, not a synchronisation: the counts must hold still.
        std::thread::sleep(Duration::from_millis(200));
        (before == (count(pid, "task"), count(pid, "fd"))).then_some(before)
    };
    let mut baseline = None;
    assert!(eventually(Duration::from_secs(30), || {
        baseline = steady();
        baseline.is_some()
    }));
    baseline.unwrap_or_default()
}
