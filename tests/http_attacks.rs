//! Hostile HTTP against a real `agent-exec serve` child (issue 7): random bytes, cut
//! requests, huge heads, absurd `Content-Length`s, chunked bodies, slow clients,
//! traversal in every `{id}` endpoint, odd methods and versions, pipelining.
//!
//! After each attack the server must still be alive and answer `GET /health` with 200
//! promptly, must not answer an id problem with 500, and must not have created anything
//! outside its jobs root. Resource bounds over many jobs are in `serve_limits.rs`.

mod common;
mod serve_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Env;
use serve_support::{Server, request};

/// How long a healthy server may take to answer `/health` on a loaded machine.
const PROMPT: Duration = Duration::from_secs(5);
/// How long the server may take to hang up once the client has sent EOF.
const HANG_UP: Duration = Duration::from_secs(10);

/// A server plus the state needed to judge it after an attack.
struct Target {
    env: Env,
    server: Server,
    /// Everything in the temp dir outside the jobs root, before any attack.
    outside: BTreeSet<PathBuf>,
}

impl Target {
    fn start(extra: &[&str]) -> Target {
        let env = Env::new();
        let server = Server::start(&env, extra);
        // The server creates the root lazily; make it exist so the snapshot is stable.
        std::fs::create_dir_all(&env.root).expect("create root");
        let outside = tree_outside(env.dir.path(), &env.root);
        Target { env, server, outside }
    }

    fn port(&self) -> u16 {
        self.server.port
    }

    /// The server is alive, answers `/health` with 200 (the exchange gives up after
    /// `PROMPT`), and nothing appeared outside the root; every root entry is a job
    /// directory. How fast it answers is `make bench`'s business, not an assertion.
    fn assert_healthy(&mut self, after: &str) {
        assert!(matches!(self.server.child.try_wait(), Ok(None)), "server died after {after}");
        let reply = health(self.port());
        assert_eq!(reply.as_ref().map(|(status, _)| *status).ok(), Some(200), "after {after}: {reply:?}");
        assert_eq!(tree_outside(self.env.dir.path(), &self.env.root), self.outside, "files appeared after {after}");
        for entry in std::fs::read_dir(&self.env.root).expect("read root").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_job = name.len() == 26 && name.bytes().all(|b| b.is_ascii_alphanumeric());
            assert!(is_job && entry.path().join("meta.json").is_file(), "stray root entry {name} after {after}");
        }
    }
}

/// `GET /health` on a fresh connection with a bounded read.
fn health(port: u16) -> std::io::Result<(u16, String)> {
    let replies = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", PROMPT)?;
    replies.into_iter().next().ok_or_else(|| std::io::Error::other("no answer"))
}

/// Every path below `dir`, except the jobs root and what is inside it.
fn tree_outside(dir: &Path, root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path == root {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
            }
            found.insert(path);
        }
    }
    found
}

/// Writes `raw`, half-closes, and reads until the server hangs up (at most `limit`).
/// Returns the responses found, in order; an empty list if the server closed without
/// answering. Write errors are ignored: the server may hang up before reading it all.
fn exchange(port: u16, raw: &[u8], limit: Duration) -> std::io::Result<Vec<(u16, String)>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let reader = stream.try_clone()?;
    let owned = raw.to_vec();
    // A separate writer, so that a server answering early never deadlocks us.
    let writer = std::thread::spawn(move || {
        let _ = stream.write_all(&owned);
        let _ = stream.shutdown(Shutdown::Write);
    });
    let bytes = read_until_close(reader, limit)?;
    let _ = writer.join();
    Ok(parse_responses(&bytes))
}

fn read_until_close(mut stream: TcpStream, limit: Duration) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero());
        let Some(left) = left else {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "server did not hang up"));
        };
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // A reset after the answer (unread request bytes) is a hang-up too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(bytes),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "server did not hang up"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Splits a byte stream into responses (status, body) using `Content-Length`; a
/// response without one ends the stream.
fn parse_responses(mut bytes: &[u8]) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let Some(status) = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()) else {
            break;
        };
        let length = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok());
        let rest = &bytes[end + 4..];
        let length = length.unwrap_or(rest.len()).min(rest.len());
        out.push((status, String::from_utf8_lossy(&rest[..length]).into_owned()));
        bytes = &rest[length..];
        if status == 100 {
            continue;
        }
    }
    out
}

/// A tiny deterministic PRNG (xorshift64*), so failures replay from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    std::env::var("AGENT_EXEC_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_1234_ABCD_0001)
}

fn soak() -> bool {
    std::env::var_os("AGENT_EXEC_SOAK").is_some()
}

const VALID_EXEC: &[u8] =
    b"POST /exec HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{\"command\":[\"true\"]}\n";

/// Requests the fuzzer starts from; none can start a long job or a long wait.
const SEEDS: &[&[u8]] = &[
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /status/01ZZZZZZ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /wait/01ZZZZZZ?until=0 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /kill/01ZZZZZZ?signal=TERM HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    b"POST /exec HTTP/1.1\r\nContent-Length: 14\r\n\r\n{\"command\":[]}",
    b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n1\r\n}\r\n0\r\n\r\n",
];

#[test]
fn random_and_mutated_bytes() {
    let mut target = Target::start(&[]);
    let seed = seed();
    let mut rng = Rng(seed);
    let cases = if soak() { 3000 } else { 300 };
    for case in 0..cases {
        let raw: Vec<u8> = match rng.below(3) {
            // Pure noise, sometimes behind a plausible request line.
            0 => {
                let mut raw = if rng.below(2) == 0 { b"GET /".to_vec() } else { Vec::new() };
                raw.extend((0..rng.below(600)).map(|_| rng.next() as u8));
                raw
            }
            // A known request with a few bytes flipped, dropped or inserted.
            _ => {
                let mut raw = SEEDS[rng.below(SEEDS.len())].to_vec();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(raw.len());
                    match rng.below(3) {
                        0 => raw[at] = rng.next() as u8,
                        1 => {
                            raw.remove(at);
                        }
                        _ => raw.insert(at, b"\r\n%/:\x00 0123456789"[rng.below(15)]),
                    }
                }
                raw
            }
        };
        let replies = exchange(target.port(), &raw, HANG_UP)
            .unwrap_or_else(|e| panic!("seed {seed} case {case}: {e}; request {:?}", String::from_utf8_lossy(&raw)));
        for (status, body) in &replies {
            assert!(
                *status != 500 || raw.starts_with(b"POST /exec"),
                "seed {seed} case {case}: 500 {body} for {:?}",
                String::from_utf8_lossy(&raw)
            );
        }
        if case % 50 == 49 {
            target.assert_healthy(&format!("random case {case} (seed {seed})"));
        }
    }
    target.assert_healthy("random bytes");
}

#[test]
fn truncated_requests() {
    let mut target = Target::start(&[]);
    // Every cut of the head and the body: the server sees EOF mid-request and hangs up.
    for cut in 0..VALID_EXEC.len() {
        let replies =
            exchange(target.port(), &VALID_EXEC[..cut], HANG_UP).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        // A head that happens to end at a line break may be answered (400 for the
        // request line, or 400 for a missing body); never anything else.
        for (status, body) in replies {
            assert!(status == 400, "cut at {cut}: {status} {body}");
        }
    }
    // The whole request still works, and a cut one never left a job behind.
    assert_eq!(std::fs::read_dir(&target.env.root).expect("root").count(), 0, "a cut request started a job");
    let replies = exchange(target.port(), VALID_EXEC, HANG_UP).expect("full request");
    assert_eq!(replies.first().map(|r| r.0), Some(200), "{replies:?}");
    target.assert_healthy("truncated requests");
}

#[test]
fn huge_heads() {
    let mut target = Target::start(&[]);
    let long_value = "a".repeat(1024 * 1024);
    let raw = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Long: {long_value}\r\nConnection: close\r\n\r\n");
    let replies = exchange(target.port(), raw.as_bytes(), HANG_UP).expect("1 MiB header");
    // Refused at 8 KiB; the client may see a reset instead of the answer, as the server
    // closes with most of the megabyte unread (`serve_bounds.rs` checks the answers).
    assert!(replies.iter().all(|r| r.0 == 431), "{replies:?}");
    target.assert_healthy("a 1 MiB header line");

    let mut raw = String::from("GET /status/01ZZZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..10_000 {
        raw.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    raw.push_str("\r\n");
    let replies = exchange(target.port(), raw.as_bytes(), HANG_UP).expect("10,000 headers");
    assert!(replies.iter().all(|r| r.0 == 431), "{replies:?}");
    target.assert_healthy("10,000 headers");

    let raw = format!("GET /status/{} HTTP/1.1\r\nConnection: close\r\n\r\n", "A".repeat(1024 * 1024));
    let replies = exchange(target.port(), raw.as_bytes(), HANG_UP).expect("1 MiB path");
    assert!(replies.iter().all(|r| r.0 == 431), "{replies:?}");
    target.assert_healthy("a 1 MiB request target");
}

#[test]
fn absurd_content_lengths() {
    let mut target = Target::start(&[]);
    // Declared far beyond memory (and beyond isize::MAX): never allocated, answered 413
    // and closed (`serve_bounds.rs` checks the answers); these connections stay open on
    // our side while the server keeps serving.
    let mut parked = Vec::new();
    for length in ["100000000000000", "9223372036854775808", "18446744073709551615"] {
        for path in ["/exec", "/health"] {
            let mut stream = TcpStream::connect(("127.0.0.1", target.port())).expect("connect");
            let raw = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{\"command\":[\"true\"]}}"
            );
            stream.write_all(raw.as_bytes()).expect("write");
            parked.push(stream);
            target.assert_healthy(&format!("Content-Length {length} on {path}"));
        }
    }
    // Unparseable lengths mean "no body": the request is answered, the leftover bytes
    // are a bad next request. Duplicates: the first one counts.
    let unparseable = ["18446744073709551616", "-1", "1e3", " 12 ", "0x10", "99999999999999999999999999999999999999"];
    for length in unparseable {
        let raw =
            format!("POST /exec HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{\"command\":[\"true\"]}}");
        let replies = exchange(target.port(), raw.as_bytes(), HANG_UP).unwrap_or_else(|e| panic!("{length}: {e}"));
        assert!(!replies.is_empty() && replies.iter().all(|r| r.0 == 400), "{length}: {replies:?}");
        target.assert_healthy(&format!("Content-Length {length:?}"));
    }
    let raw = b"POST /exec HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 100000000000000\r\n\r\n{}";
    let replies = exchange(target.port(), raw, HANG_UP).expect("duplicate");
    assert_eq!(replies.first().map(|r| r.0), Some(400), "{replies:?}");
    target.assert_healthy("duplicate Content-Length");

    // Above the body limit, with the client hanging up early: refused before reading.
    let raw = b"POST /exec HTTP/1.1\r\nContent-Length: 60000000\r\n\r\n{\"command\":";
    let replies = exchange(target.port(), raw, HANG_UP).expect("60 MB declared");
    assert_eq!(replies.first().map(|r| r.0), Some(413), "{replies:?}");
    target.assert_healthy("60 MB declared, 11 bytes sent");

    // Chunked: over 1 MiB in total, a chunk size beyond usize, a malformed size, and
    // `Transfer-Encoding` beside an absurd `Content-Length` (which must then be ignored).
    let mut big = b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..40 {
        big.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        big.extend(std::iter::repeat_n(b' ', 64 * 1024));
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b"0\r\n\r\n");
    let replies = exchange(target.port(), &big, HANG_UP).expect("chunked 2.5 MiB");
    assert!(replies.first().is_some_and(|r| r.0 == 413 && r.1.contains("over 1 MiB")), "{replies:?}");
    target.assert_healthy("a 2.5 MiB chunked body");
    for raw in [
        &b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n{}"[..],
        b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7FFFFFFFFFFFFFFF\r\n{}",
        b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 100000000000000\r\n\r\n0\r\n\r\n",
    ] {
        let replies = exchange(target.port(), raw, HANG_UP).unwrap_or_else(|e| panic!("{e}"));
        assert!(replies.iter().all(|r| r.0 == 400), "{}: {replies:?}", String::from_utf8_lossy(raw));
        target.assert_healthy(&format!("chunked {:?}", String::from_utf8_lossy(raw)));
    }
    assert!(matches!(target.server.child.try_wait(), Ok(None)), "server died");
    drop(parked);
    target.assert_healthy("closing the parked connections");
}

#[test]
fn slow_clients_do_not_block_real_requests() {
    let mut target = Target::start(&["--max-connections", "4"]);
    let port = target.port();
    // More slow heads than request slots, trickled a byte every 100 ms: they cost
    // tiny_http pool threads, not slots. Plus two slow bodies (declared bigger than the
    // 1 KiB tiny_http buffers itself), which are read by our request threads and hold a
    // slot each while they trickle; fewer of them than slots.
    let slow: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                // (sent at once, trickled, sent at once after the trickle)
                let (fast, slow, rest) = if i < 8 {
                    (Vec::new(), b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), Vec::new())
                } else {
                    let body = format!(r#"{{"command":["true"]{}}}"#, " ".repeat(1100));
                    let head = format!("POST /exec HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
                    (head.into_bytes(), body.as_bytes()[..30].to_vec(), body.as_bytes()[30..].to_vec())
                };
                let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect slow");
                stream.write_all(&fast).expect("head");
                for byte in &slow {
                    stream.write_all(std::slice::from_ref(byte)).expect("slow byte");
                    // Pacing the attacker, not synchronisation.
                    std::thread::sleep(Duration::from_millis(100));
                }
                stream.write_all(&rest).expect("rest");
                read_until_close(stream, Duration::from_secs(30)).map(|b| parse_responses(&b))
            })
        })
        .collect();
    let t0 = Instant::now();
    let mut checks = 0;
    while !slow.iter().all(|t| t.is_finished()) && t0.elapsed() < Duration::from_secs(30) {
        assert_eq!(health(port).map(|r| r.0).ok(), Some(200), "health during slow clients");
        let id = target.server.exec(r#"{"command":["true"]}"#);
        assert_eq!(target.server.get(&format!("/status/{id}")).status, 200);
        checks += 1;
    }
    assert!(checks > 0);
    for (i, handle) in slow.into_iter().enumerate() {
        let replies = handle.join().expect("join slow client").expect("slow client answered");
        assert_eq!(replies.first().map(|r| r.0), Some(200), "slow client {i}: {replies:?}");
    }
    target.assert_healthy("slow clients");
}

#[test]
fn traversal_in_every_id_endpoint() {
    let mut target = Target::start(&[]);
    let id = target.server.exec(r#"{"command":["true"]}"#);
    // Job-like directories beside and above the root: nothing may reach them.
    let outside_job = target.env.dir.path().join("evil");
    common::write_file(&outside_job.join("meta.json"), "{}");
    common::write_file(&outside_job.join("state.json"), r#"{"state":"running","pid":1}"#);
    target.outside = tree_outside(target.env.dir.path(), &target.env.root);
    let ids: Vec<String> = [
        "..",
        ".",
        "%2e%2e",
        "%2E%2E",
        "%2e%2e%2fevil",
        "..%2Fevil",
        "..%2fevil",
        "../evil",
        "..%5Cevil",
        "%252e%252e%252fevil",
        "%252F",
        "%2F",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "%00",
        "a%00b",
        "%2500",
        "%",
        "%2",
        "%zz",
        "%ff%fe",
        "%C0%AE%C0%AE",
        "%E2%80%AE",
        "%C3%A9",
        "%F0%9F%92%A3",
        "%20",
        "+",
        "*",
        "01J9ZK3M8E5PQRSTVWYZ12ABCDE",
        &"A".repeat(27),
        &"A".repeat(5000),
        &format!("{id}/"),
        &format!("{id}%2F..%2F..%2Fevil"),
        &format!("{id}/..%2F..%2Fevil"),
        &format!("{id}%00"),
        &format!("{}%2e", &id[..10]),
        "~",
        "~root",
        "$HOME",
        "evil",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let endpoints = [("GET", "status", ""), ("GET", "tail", ""), ("GET", "wait", "?until=0"), ("POST", "kill", "")];
    for raw_id in &ids {
        for (method, endpoint, query) in endpoints {
            let path = format!("/{endpoint}/{raw_id}{query}");
            let reply = request(target.port(), method, &path, &[], b"");
            // "evil" is a valid id that matches no job (the directory is not in the root).
            reply.assert_error(404, "job_not_found");
        }
    }
    target.assert_healthy("traversal ids");
    // The v1 routes, which also take @NAME: a raw slash ends the id (what follows is an
    // unknown sub-resource), anything else that is not an id or a name is no job.
    let v1 = [
        ("GET", ""),
        ("DELETE", ""),
        ("GET", "/tail"),
        ("POST", "/kill"),
        ("POST", "/start"),
        ("PUT", "/tags"),
        ("PATCH", "/notify"),
    ];
    let names = ["@..", "@..%2Fevil", "@../evil", "%40..%2F..%2Fevil", "@%2Fetc%2Fpasswd", "@evil", "@"];
    for raw_id in ids.iter().map(String::as_str).chain(names) {
        for (method, action) in v1 {
            let path = format!("/v1/jobs/{raw_id}{action}");
            let body: &[u8] = if method == "PUT" { br#"{"tags":[]}"# } else { b"" };
            let reply = request(target.port(), method, &path, &[], body);
            assert_eq!(reply.status, 404, "{method} {path}: {reply:?}");
        }
    }
    target.assert_healthy("v1 traversal ids");
    let state = std::fs::read_to_string(outside_job.join("state.json")).expect("read");
    assert_eq!(state, r#"{"state":"running","pid":1}"#, "a kill reached a directory outside the root");

    // Non-UTF-8 and control bytes in the request target: tiny_http refuses a head that
    // is not ASCII; whatever answer comes, it is never a 500 and never a job lookup.
    for bad in [&b"\xff\xfe"[..], b"\xc0\xae\xc0\xae", b"..\x00", b"\x7f", b"a\tb"] {
        for endpoint in ["status", "tail", "wait", "kill"] {
            let mut raw = format!("GET /{endpoint}/").into_bytes();
            raw.extend_from_slice(bad);
            raw.extend_from_slice(b" HTTP/1.1\r\nConnection: close\r\n\r\n");
            let replies = exchange(target.port(), &raw, HANG_UP).expect("non-UTF-8 path");
            assert!(replies.iter().all(|r| r.0 == 400 || r.0 == 404 || r.0 == 405), "{bad:?}: {replies:?}");
        }
    }
    target.assert_healthy("non-UTF-8 paths");
    // The real job is still there and reachable.
    assert_eq!(target.server.get(&format!("/status/{id}")).status, 200);
}

#[test]
fn methods_versions_and_pipelining() {
    let mut target = Target::start(&[]);
    let cases: &[(&[u8], &[u16])] = &[
        (b"FOO /health HTTP/1.1\r\n\r\n", &[405]),
        (b"get /health HTTP/1.1\r\n\r\n", &[405]),
        (b"G\x01T /health HTTP/1.1\r\n\r\n", &[400, 405]),
        (b"HEAD /health HTTP/1.1\r\n\r\n", &[405]),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", &[404]),
        (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n", &[404]),
        (b" /health HTTP/1.1\r\n\r\n", &[400, 404, 405]),
        (b"GET  /health HTTP/1.1\r\n\r\n", &[400]),
        (b"GET /health HTTP/1.1 extra\r\n\r\n", &[200, 400]),
        (b"GET /health\r\n\r\n", &[400]),
        (b"GET /health\n\n", &[]),
        (b"GET\r\n\r\n", &[400]),
        (b"\r\n\r\n", &[400]),
        (b"GET /health HTTP/1.0\r\n\r\n", &[200]),
        (b"GET /health HTTP/0.9\r\n\r\n", &[505]),
        (b"GET /health HTTP/9.9\r\n\r\n", &[505]),
        (b"GET /health HTTP/2.0\r\n\r\n", &[505]),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &[505]),
        (b"GET / HTTP/3.0\r\n\r\n", &[505]),
        (b"GET /health HTTP/1.2\r\n\r\n", &[505]),
        (b"GET /health HTTP/11\r\n\r\n", &[400]),
        (b"GET /health HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", &[200]),
        (b"POST /exec HTTP/1.1\r\nExpect: nonsense\r\nContent-Length: 2\r\n\r\n{}", &[417]),
        (b"GET /health HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", &[200]),
        (b"GET /health HTTP/1.1\r\nNoColonHere\r\n\r\n", &[400]),
        (b"GET http://127.0.0.1/health HTTP/1.1\r\n\r\n", &[404]),
    ];
    for (raw, allowed) in cases {
        let replies =
            exchange(target.port(), raw, HANG_UP).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(raw)));
        let statuses: Vec<u16> = replies.iter().map(|r| r.0).filter(|s| *s != 100).collect();
        assert!(
            statuses.iter().all(|s| allowed.contains(s)) && (allowed.is_empty() || !statuses.is_empty()),
            "{:?}: {statuses:?} (allowed {allowed:?})",
            String::from_utf8_lossy(raw)
        );
        target.assert_healthy(&format!("{:?}", String::from_utf8_lossy(raw)));
    }

    // Pipelined on one connection: answered in order.
    let mut raw = Vec::new();
    raw.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.extend_from_slice(b"GET /status/..%2F HTTP/1.1\r\nHost: x\r\n\r\n");
    raw.extend_from_slice(b"POST /exec HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"command\":[\"true\"]}");
    raw.extend_from_slice(b"GET /nope HTTP/1.1\r\n\r\n");
    raw.extend_from_slice(b"POST /exec HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    raw.extend_from_slice(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
    raw.extend_from_slice(b"GET /health HTTP/1.1\r\n\r\n");
    let replies = exchange(target.port(), &raw, HANG_UP).expect("pipelined");
    let statuses: Vec<u16> = replies.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 404, 200, 404, 400, 200], "{replies:?}");
    assert!(replies[2].1.contains("\"type\":\"run\""), "{replies:?}");

    // Many pipelined at once, more than the request cap.
    let raw: Vec<u8> =
        (0..200).flat_map(|i| format!("GET /status/{i:05} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()).collect();
    let replies = exchange(target.port(), &raw, HANG_UP).expect("200 pipelined");
    assert_eq!(replies.len(), 200);
    assert!(replies.iter().all(|r| r.0 == 404));
    target.assert_healthy("pipelining");
}
