//! REST v1 waits and the output stream (issue 16, item 1's long-poll routes) against a
//! real `serve`: `GET /v1/jobs/{id}/output` from an offset, as it is and followed (live
//! bytes in order, the end with the job, the end at `until_ms`), followers that hang up
//! leave no thread, descriptor or slot behind, `/health` answers while every long-poll
//! slot is held by a follower, and `GET /v1/jobs/{id}/wait` and `GET /v1/wait` answer
//! what CLI `wait` answers for the same options.

mod common;
mod serve_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{Env, eventually};
use serde_json::Value;
use serve_support::{Server, count, rss_kib, steady_counts};

/// A response read incrementally: the head at once, the body as it comes.
struct Streamed {
    status: u16,
    headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
}

impl Streamed {
    fn open(port: u16, path: &str) -> Streamed {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("send");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header");
            let Some((name, value)) = line.trim_end().split_once(':') else { break };
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        Streamed { status, headers, reader }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The next chunk of a chunked body; `None` at its end.
    fn chunk(&mut self) -> Option<Vec<u8>> {
        assert_eq!(self.header("transfer-encoding"), Some("chunked"), "{:?}", self.headers);
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("chunk size");
        let size = usize::from_str_radix(line.trim_end(), 16).unwrap_or_else(|_| panic!("chunk size {line:?}"));
        let mut data = vec![0u8; size + 2];
        self.reader.read_exact(&mut data).expect("chunk");
        assert_eq!(&data[size..], b"\r\n");
        data.truncate(size);
        (size > 0).then_some(data)
    }

    /// Everything up to the end of a chunked body.
    fn rest(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk() {
            all.extend(chunk);
        }
        all
    }

    /// A body with a Content-Length.
    fn body(mut self) -> Vec<u8> {
        let length: usize = self.header("content-length").and_then(|v| v.parse().ok()).expect("content-length");
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).expect("body");
        body
    }
}

fn output_path(id: &str, query: &str) -> String {
    format!("/v1/jobs/{id}/output?{query}")
}

fn log(env: &Env, id: &str, name: &str) -> Vec<u8> {
    std::fs::read(env.job_dir(id).join(name)).expect("read log")
}

#[test]
fn output_of_a_finished_job_from_any_offset() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let id = env.start_job(&["sh", "-c", "seq 1 5000; echo oops >&2"]);
    env.wait_job(&id);
    let stdout = log(&env, &id, "stdout.log");
    assert!(stdout.len() > 20_000, "a log bigger than one read");
    for offset in [0, 1, 7, stdout.len() / 2, stdout.len() - 1, stdout.len()] {
        let reply = Streamed::open(server.port, &output_path(&id, &format!("offset={offset}")));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/octet-stream"));
        assert_eq!(reply.header("x-agent-exec-offset"), Some(offset.to_string().as_str()));
        assert_eq!(reply.header("x-agent-exec-job-id"), Some(id.as_str()));
        assert_eq!(reply.header("transfer-encoding"), None, "a known length is never chunked");
        assert_eq!(reply.body(), &stdout[offset..], "offset {offset}");
    }
    // Past the end: an empty answer, not an error. By prefix, and the other stream.
    let past = Streamed::open(server.port, &output_path(&id, "offset=999999999"));
    assert_eq!((past.status, past.body()), (200, Vec::new()));
    let prefix = &id[..20];
    let stderr = Streamed::open(server.port, &format!("/v1/jobs/{prefix}/output?stream=stderr"));
    assert_eq!(stderr.header("x-agent-exec-job-id"), Some(id.as_str()));
    assert_eq!(stderr.body(), b"oops\n");
    // Bad offsets and streams are 400 naming the parameter; an unknown job is 404.
    for query in ["offset=-1", "offset=abc", "offset=1.5", "offset=", "stream=both", "follow=yes"] {
        let reply = server.get(&output_path(&id, query));
        reply.assert_error(400, "invalid_request");
        let name = query.split('=').next().unwrap_or_default();
        assert!(reply.json()["error"]["message"].as_str().unwrap_or_default().contains(name), "{reply:?}");
    }
    server.get(&output_path("01J9ZK3M8E5PQRSTVWYZ12ABCD", "offset=0")).assert_error(404, "job_not_found");
}

#[test]
fn a_follow_stream_gets_every_byte_live_and_in_order_then_ends_with_the_job() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let go = env.path("go");
    // Prints, waits for the test to have seen the first line through the stream (so the
    // stream is live, not the log sent after the job), then prints a lot more.
    let script = format!("echo first; while [ ! -e {go} ]; do sleep 0.01; done; seq 1 20000; printf tail");
    let id = env.start_job(&["sh", "-c", &script]);
    let mut stream = Streamed::open(server.port, &output_path(&id, "follow=true"));
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("x-agent-exec-offset"), Some("0"));
    assert_eq!(stream.header("x-agent-exec-job-id"), Some(id.as_str()));
    let mut got = Vec::new();
    while got.len() < b"first\n".len() {
        got.extend(stream.chunk().expect("the first line before the job ends"));
    }
    assert_eq!(got, b"first\n");
    common::write_file(Path::new(&go), "");
    got.extend(stream.rest());
    assert_eq!(env.ok(&["status", &id])["state"], "exited", "the stream ended with the job");
    assert_eq!(got, log(&env, &id, "stdout.log"), "every byte, in order");
    assert!(got.ends_with(b"19999\n20000\ntail"));
    // Resuming from a byte offset gets the rest, and a finished job's follow ends at once.
    let mut resumed = Streamed::open(server.port, &output_path(&id, "follow=true&offset=6"));
    assert_eq!(resumed.rest(), &got[6..]);
    // HTTP/1.0 has no chunks: the raw bytes, then the server closes the connection.
    let raw = format!("GET {} HTTP/1.0\r\n\r\n", output_path(&id, "follow=true&offset=6"));
    let old = serve_support::raw_request(server.port, raw.as_bytes()).expect("HTTP/1.0 follow");
    assert_eq!((old.status, old.header("connection")), (200, Some("close")));
    assert_eq!(old.body.as_bytes(), &got[6..]);
}

#[test]
fn a_quiet_stream_outlives_the_idle_timeout() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    // Silent for longer than the 10 s a connection may stay silent before it is closed:
    // that bound is for clients, never for a stream waiting on its job.
    let id = env.start_job(&["sh", "-c", "echo before; sleep 11; echo after"]);
    let mut stream = Streamed::open(server.port, &output_path(&id, "follow=true"));
    assert_eq!(stream.rest(), b"before\nafter\n");
}

#[test]
fn a_follow_goes_on_across_log_rotations() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let go = env.path("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.01; done; i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line-$i; sleep 0.005; done"
    );
    let run = ["run", "--max-log-bytes", "1000", "--snapshot-after", "0", "--", "sh", "-c", &script];
    let id = env.ok(&run)["job_id"].as_str().expect("job_id").to_string();
    let mut stream = Streamed::open(server.port, &output_path(&id, "follow=true"));
    common::write_file(Path::new(&go), "");
    let text = String::from_utf8(stream.rest()).expect("utf-8");
    let numbers: Vec<u32> =
        text.lines().map(|l| l.strip_prefix("line-").and_then(|n| n.parse().ok()).expect("a line")).collect();
    // Several rotations happened; the stream stayed in order and reached the last line.
    assert!(env.job_dir(&id).join("stdout.log.1").exists());
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "out of order: {numbers:?}");
    assert_eq!(numbers.last(), Some(&400), "{text}");
}

#[test]
fn a_follow_of_a_job_that_never_starts_ends_at_until_ms() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-wait-ms", "400"]);
    let id = env.ok(&["create", "--", "echo", "never"])["job_id"].as_str().expect("job_id").to_string();
    let mut stream = Streamed::open(server.port, &output_path(&id, "follow=true&until_ms=250"));
    assert_eq!(stream.header("x-agent-exec-until-ms"), Some("250"));
    assert_eq!(stream.rest(), b"");
    // Above the server's maximum: clamped, and the header says to what.
    let mut stream = Streamed::open(server.port, &output_path(&id, "follow=true&until_ms=999999"));
    assert_eq!(stream.header("x-agent-exec-until-ms"), Some("400"));
    assert_eq!(stream.rest(), b"");
    // No until_ms: the maximum.
    let stream = Streamed::open(server.port, &output_path(&id, "follow=true"));
    assert_eq!(stream.header("x-agent-exec-until-ms"), Some("400"));
}

#[test]
fn memory_stays_bounded_whatever_the_log_size() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let pid = server.pid();
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    // A 4 GiB log that costs no disk: sparse, all zeros.
    let log = std::fs::OpenOptions::new().write(true).open(env.job_dir(&id).join("stdout.log")).expect("open log");
    log.set_len(4 << 30).expect("grow log");
    assert_eq!(server.get("/health").status, 200);
    let before = rss_kib(pid);
    for query in ["offset=0", "offset=1024&follow=true"] {
        let mut reply = Streamed::open(server.port, &output_path(&id, query));
        assert_eq!(reply.status, 200, "{query}");
        if query.contains("follow") {
            assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
        } else {
            assert_eq!(reply.header("content-length"), Some((4u64 << 30).to_string().as_str()));
        }
        // 256 MiB through, then a look at the server's memory, then hang up mid-stream.
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..256 {
            reply.reader.read_exact(&mut buf).expect("read");
        }
        let during = rss_kib(pid);
        eprintln!("{query}: serve's RSS {before} KiB before, {during} KiB 256 MiB into a 4 GiB log");
        assert!(during < before + 64 * 1024, "{query}: RSS {before} KiB -> {during} KiB");
    }
    // Still serving after both clients hung up mid-stream.
    assert_eq!(server.get("/health").status, 200);
}

/// Opens followers of a quiet job and returns them once each has its answer's head.
fn followers(server: &Server, id: &str, n: usize) -> Vec<Streamed> {
    (0..n)
        .map(|_| {
            let stream = Streamed::open(server.port, &output_path(id, "follow=true&until_ms=120000"));
            assert_eq!(stream.status, 200);
            stream
        })
        .collect()
}

#[test]
fn followers_that_hang_up_leave_no_thread_descriptor_or_slot() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-waiters", "4"]);
    let pid = server.pid();
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    assert_eq!(server.get("/health").status, 200);
    let (threads, fds) = steady_counts(pid);
    for round in 0..5 {
        // Every long-poll slot taken by a follower of a job that prints nothing, then
        // dropped: only the socket says the clients are gone.
        let held = followers(&server, &id, 4);
        // Each holds its connection's two descriptors, at least.
        assert!(count(pid, "fd") >= fds + 2 * 4, "round {round}: {} descriptors from {fds}", count(pid, "fd"));
        drop(held);
        // The slots are free again: four more followers get their heads.
        drop(followers(&server, &id, 4));
    }
    let settled =
        eventually(Duration::from_secs(60), || count(pid, "task") <= threads + 2 && count(pid, "fd") <= fds + 2);
    assert!(settled, "threads {threads} -> {}, descriptors {fds} -> {}", count(pid, "task"), count(pid, "fd"));
}

#[test]
fn health_answers_while_every_long_poll_slot_is_a_follower() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-waiters", "3", "--max-connections", "1"]);
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    let held = followers(&server, &id, 3);
    assert_eq!(server.get("/health").status, 200);
    assert_eq!(server.get("/v1/health").status, 200);
    // A plain output read is a short request, not a long-poll.
    let plain = Streamed::open(server.port, &output_path(&id, "offset=0"));
    assert_eq!((plain.status, plain.body()), (200, Vec::new()));
    // A fourth follower waits for a slot: it gets one once a follower hangs up.
    let port = server.port;
    let path = output_path(&id, "follow=true&until_ms=0");
    let fourth = std::thread::spawn(move || Streamed::open(port, &path).status);
    assert!(!eventually(Duration::from_secs(1), || fourth.is_finished()), "the fourth follower did not wait");
    drop(held);
    assert_eq!(fourth.join().expect("fourth"), 200);
}

#[test]
fn waits_and_followers_share_the_long_poll_lane() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-waiters", "1", "--max-connections", "1"]);
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    for path in [format!("/v1/jobs/{id}/wait?until_ms=0"), format!("/v1/wait?job={id}&job={id}&until_ms=0")] {
        let held = followers(&server, &id, 1);
        assert_eq!(server.get("/health").status, 200, "the short lane is free");
        let port = server.port;
        let waiting = path.clone();
        let wait = std::thread::spawn(move || serve_support::request(port, "GET", &waiting, &[], b"").status);
        assert!(!eventually(Duration::from_secs(1), || wait.is_finished()), "{path} did not wait for the slot");
        drop(held);
        assert_eq!(wait.join().expect("wait"), 200, "{path}");
    }
}

#[test]
fn a_follow_ends_cleanly_at_shutdown_and_needs_the_token() {
    let env = Env::new().with_env("AGENT_EXEC_SERVE_TOKEN", "sekrit");
    let mut server = Server::start(&env, &[]);
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    server.get(&output_path(&id, "follow=true")).assert_error(401, "unauthorized");
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let path = output_path(&id, "follow=true&until_ms=600000");
    write!(stream, "GET {path} HTTP/1.1\r\nAuthorization: Bearer sekrit\r\nConnection: close\r\n\r\n").expect("send");
    let mut reply = BufReader::new(stream);
    let mut line = String::new();
    reply.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    // SIGTERM: the stream ends with its last chunk, and the server exits 0 in its grace.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    reply.read_to_string(&mut rest).expect("the rest");
    assert!(rest.ends_with("\r\n\r\n0\r\n\r\n"), "{rest:?}");
    assert!(server.child.wait().expect("wait").success());
}

/// The CLI's answer and the server's, each as JSON.
fn cli_and_http(env: &Env, server: &Server, cli: &[&str], path: &str) -> (Value, Value) {
    let (cli, _) = env.answer(cli);
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "{reply:?}");
    (cli, reply.json())
}

#[test]
fn many_job_waits_answer_as_the_cli() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let ok = env.ok(&["run", "--tag", "batch", "--snapshot-after", "0", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = env.ok(&["run", "--tag", "batch", "--snapshot-after", "0", "--", "sh", "-c", "exit 3"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let long = env.ok(&["run", "--tag", "slow", "--snapshot-after", "0", "--", "sleep", "60"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_job(&ok);
    env.wait_job(&bad);
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["wait", "--tag", "batch", "--all"], "/v1/wait?tag=batch&all=true".into()),
        (vec!["wait", &ok, &bad], format!("/v1/wait?job={ok}&job={bad}")),
        (vec!["wait", "--any", &long, &bad], format!("/v1/wait?job={long}&job={bad}&any=true")),
        (vec!["wait", "--until", "100", &long, &ok], format!("/v1/wait?job={long}&job={ok}&until_ms=100")),
        (vec!["wait", &ok], format!("/v1/wait?job={ok}")),
        (vec!["wait", &bad], format!("/v1/jobs/{bad}/wait")),
        (vec!["wait", "--until", "50", &long], format!("/v1/jobs/{long}/wait?until_ms=50")),
    ];
    for (cli, path) in cases {
        let (cli, http) = cli_and_http(&env, &server, &cli, &path);
        assert_eq!(cli, http, "{path}");
    }
    let running = server.get(&format!("/v1/wait?job={long}&until_ms=0")).json();
    assert_eq!(running["state"], "running");
    // No target, scopes without a tag, bad patterns: 400 like the CLI's usage errors.
    for path in ["/v1/wait", "/v1/wait?all=true&job=x", "/v1/wait?tag=*", "/v1/wait?tag=a&all=true&cwd=/"] {
        server.get(path).assert_error(400, "invalid_request");
    }
    server.get("/v1/wait?job=01J9ZK3M8E5PQRSTVWYZ12ABCD").assert_error(404, "job_not_found");
    env.ok(&["kill", "--signal", "KILL", &long]);
    env.wait_job(&long);
}

#[test]
fn readiness_waits_answer_as_the_cli() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-wait-ms", "5000"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let id = env.start_job(&["sh", "-c", "echo booting; echo 'port=8080' >&2; exec sleep 60"]);
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["wait", "--for-output", "port=", &id], format!("/v1/jobs/{id}/wait?for_output=port%3D")),
        (
            vec!["wait", "--for-output", "^port=[0-9]+$", "--output-match-type", "regex", &id],
            format!("/v1/jobs/{id}/wait?for_output=%5Eport%3D%5B0-9%5D%2B%24&output_match_type=regex"),
        ),
        (
            vec!["wait", "--for-output", "port=", "--output-stream", "stdout", "--until", "100", &id],
            format!("/v1/jobs/{id}/wait?for_output=port%3D&output_stream=stdout&until_ms=100"),
        ),
        (vec!["wait", "--for-port", &port, &id], format!("/v1/jobs/{id}/wait?for_port={port}")),
        (
            vec!["wait", "--for-port", &port, "--for-host", "localhost", &id],
            format!("/v1/jobs/{id}/wait?for_port={port}&for_host=localhost"),
        ),
    ];
    for (cli, path) in cases {
        let (cli, http) = cli_and_http(&env, &server, &cli, &path);
        assert_eq!(cli, http, "{path}");
    }
    // Above --max-wait-ms: lowered, and said so.
    let clamped = server.get(&format!("/v1/jobs/{id}/wait?for_output=booting&until_ms=999999")).json();
    assert_eq!((clamped["ready"].as_bool(), clamped["clamped"]["until_ms"].as_u64()), (Some(true), Some(5000)));
    for query in ["for_port=0", "for_port=70000", "for_output=x&for_port=1", "for_host=x", "output_match_type=glob"] {
        server.get(&format!("/v1/jobs/{id}/wait?{query}")).assert_error(400, "invalid_request");
    }
    server
        .get(&format!("/v1/jobs/{id}/wait?for_output=(&output_match_type=regex"))
        .assert_error(400, "invalid_request");
    // `([a-z]{100}){40}Z`: valid, but too costly to match.
    server
        .get(&format!("/v1/jobs/{id}/wait?for_output=%28%5Ba-z%5D%7B100%7D%29%7B40%7DZ&output_match_type=regex"))
        .assert_error(400, "invalid_request");
    env.ok(&["kill", "--signal", "KILL", &id]);
    env.wait_job(&id);
    drop(listener);
}
