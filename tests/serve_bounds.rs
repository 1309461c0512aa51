//! `serve` as a container entrypoint under attack (issue 12): oversized request heads,
//! oversized and trickled bodies, unsupported versions, floods of long-polls and slow
//! bodies, keep-alive load, and the token in the environment.
//!
//! Every bound is answered (431, 413, 505, 408) and the connection closed; 1,000 of each
//! leave the server's threads and descriptors where they were; a huge request line is
//! never buffered; `/health` answers while hundreds of long-polls and slow bodies are
//! connected; no job sees the token. Timing goals (how fast `/health` answers) are
//! measured by `make bench` (bench/serve_attack.py), not asserted here.

mod common;
mod serve_support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{Env, eventually};
use serve_support::{Server, count, request, rss_kib, steady_counts};

/// Writes `raw`, half-closes, reads until the server closes; returns the status of the
/// first answer (None: closed without one).
fn status_of(port: u16, raw: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    // The server may refuse before reading everything: a failed write is not an error.
    let _ = stream.write_all(raw);
    let _ = stream.shutdown(Shutdown::Write);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    text.split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// The attacks of item 2, each a request that must be refused with its status.
fn attacks() -> Vec<(&'static str, Vec<u8>, u16)> {
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(8 * 1024 + 1));
    let long_header = format!("GET /health HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(8 * 1024));
    let mut big_head = String::from("GET /health HTTP/1.1\r\n");
    for i in 0..3 {
        big_head.push_str(&format!("X-{i}: {}\r\n", "b".repeat(6000)));
    }
    big_head.push_str("\r\n");
    let mut many_headers = String::from("GET /health HTTP/1.1\r\n");
    for i in 0..101 {
        many_headers.push_str(&format!("X-{i}: {i}\r\n"));
    }
    many_headers.push_str("\r\n");
    vec![
        ("request line over 8 KiB", long_line.into_bytes(), 431),
        ("header line over 8 KiB", long_header.into_bytes(), 431),
        ("head over 16 KiB", big_head.into_bytes(), 431),
        ("101 headers", many_headers.into_bytes(), 431),
        ("Content-Length over 1 MiB", b"POST /exec HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n{}".to_vec(), 413),
        ("HTTP/2.0", b"GET /health HTTP/2.0\r\n\r\n".to_vec(), 505),
        ("HTTP/0.9", b"GET /health HTTP/0.9\r\n\r\n".to_vec(), 505),
    ]
}

#[test]
fn oversized_heads_are_refused_before_auth_without_leaks() {
    let env = Env::new().with_env("AGENT_EXEC_SERVE_TOKEN", "sekrit");
    let mut server = Server::start(&env, &[]);
    let (pid, port) = (server.pid(), server.port);
    // Just inside every bound: served (401 without the token, which is checked after).
    let mut fits = String::from("GET /status/01ZZZZ HTTP/1.1\r\n");
    for i in 0..99 {
        fits.push_str(&format!("X-{i}: {}\r\n", "c".repeat(150)));
    }
    fits.push_str("\r\n");
    assert_eq!(status_of(port, fits.as_bytes()), Some(401));
    // Warm up tiny_http's connection pool and our request threads, then take the baseline
    // once it is steady.
    for (_, raw, _) in attacks() {
        status_of(port, &raw);
    }
    let (threads, fds) = steady_counts(pid);
    let per_attack = if std::env::var_os("AGENT_EXEC_SOAK").is_some() { 3000 } else { 1000 };
    for (name, raw, expected) in attacks() {
        // Four clients at once, like the issue's floods.
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let raw = raw.clone();
                std::thread::spawn(move || (0..per_attack / 4).map(|_| status_of(port, &raw)).collect::<Vec<_>>())
            })
            .collect();
        for worker in workers {
            for status in worker.join().expect("attack thread") {
                assert_eq!(status, Some(expected), "{name}");
            }
        }
        assert!(matches!(server.child.try_wait(), Ok(None)), "server died after {name}");
    }
    assert_eq!(request(port, "GET", "/health", &[], b"").status, 200);
    // Connection threads linger a few seconds after their last connection; allow a
    // little slack for the /health just served.
    let settled =
        eventually(Duration::from_secs(60), || count(pid, "task") <= threads + 2 && count(pid, "fd") <= fds + 2);
    assert!(
        settled,
        "threads {threads} -> {}, descriptors {fds} -> {} after {per_attack} of each attack",
        count(pid, "task"),
        count(pid, "fd")
    );
}

#[test]
fn a_huge_request_line_is_never_buffered() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let (pid, port) = (server.pid(), server.port);
    let before = rss_kib(pid);
    // Four clients each send up to 64 MiB of one request line without a newline.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                let _ = stream.write_all(b"GET /");
                let chunk = vec![b'a'; 1024 * 1024];
                let mut sent = 0;
                // The server refuses at 8 KiB and closes: the writes then fail.
                while sent < 64 && stream.write_all(&chunk).is_ok() {
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let sent: Vec<usize> = clients.into_iter().map(|c| c.join().expect("client")).collect();
    assert!(sent.iter().all(|&mib| mib < 64), "the server read whole 64 MiB lines: {sent:?}");
    let growth = rss_kib(pid).saturating_sub(before);
    assert!(growth < 16 * 1024, "RSS grew by {growth} KiB");
    assert_eq!(request(port, "GET", "/health", &[], b"").status, 200);
}

/// Sends `start`, then `byte` every 200 ms (each would reset an idle timer, forever)
/// until the server answers; the answer must be 408 with our error envelope.
fn trickle_until_refused(start: &[u8], byte: &[u8]) {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream.write_all(start).expect("start of request");
    let reader = stream.try_clone().expect("clone");
    let answer = std::thread::spawn(move || {
        let mut reader = reader;
        reader.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let t0 = Instant::now();
    while !answer.is_finished() && t0.elapsed() < Duration::from_secs(40) {
        if stream.write_all(byte).is_err() {
            break;
        }
        // Pacing the attacker, not synchronisation.
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = answer.join().expect("reader");
    assert!(text.starts_with("HTTP/1.1 408 "), "{text:?}");
    assert!(text.contains("\"code\":\"invalid_request\""), "{text:?}");
    assert_eq!(request(server.port, "GET", "/health", &[], b"").status, 200);
}

#[test]
fn a_trickled_body_meets_its_deadline() {
    // The whole body's deadline (10 s after the head) ends it.
    trickle_until_refused(b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n", b" ");
}

#[test]
fn a_trickled_head_meets_its_deadline() {
    // A header value far inside the idle timeout and the line bound for minutes: the
    // head's own deadline (10 s from its first byte) ends it.
    trickle_until_refused(b"GET /health HTTP/1.1\r\nX-Slow: ", b"x");
}

#[test]
fn a_connection_flood_is_refused_beyond_the_open_cap() {
    let env = Env::new();
    // One slot of each class: at most 4 × (1 + 1) = 8 connections open at once.
    let server = Server::start(&env, &["--max-connections", "1", "--max-waiters", "1"]);
    let pid = server.pid();
    assert!(eventually(Duration::from_secs(10), || count(pid, "task") > 0));
    let threads_before = count(pid, "task");
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let mut head = [0u8; 12];
        // An open connection stays silent; one over the cap is answered 503 at once.
        match stream.read(&mut head) {
            Ok(n) if n > 0 => {
                assert!(head.starts_with(b"HTTP/1.1 503"), "{:?}", String::from_utf8_lossy(&head[..n]));
                refused += 1;
            }
            _ => idle.push(stream),
        }
    }
    assert!(idle.len() <= 8, "{} connections held open", idle.len());
    assert!(refused >= 52, "only {refused} refused");
    assert!(count(pid, "task") <= threads_before + 8 + 2, "threads: {} from {threads_before}", count(pid, "task"));
    drop(idle);
    assert!(
        eventually(Duration::from_secs(20), || request(server.port, "GET", "/health", &[], b"").status == 200),
        "serve does not recover once the flood closes"
    );
}

#[test]
fn health_answers_beside_long_polls_and_slow_bodies() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let (pid, port) = (server.pid(), server.port);
    let id = server.exec(r#"{"command":["sleep","120"]}"#);
    // 300 long-polls (more than the default 256 waiters) and 70 slow chunked bodies
    // (more than the default 64 short requests).
    let wait = format!("GET /wait/{id}?until=60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut polls = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect poll");
        stream.write_all(wait.as_bytes()).expect("poll");
        polls.push(stream);
    }
    let mut bodies = Vec::new();
    for _ in 0..70 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect body");
        stream.write_all(b"POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{").expect("body");
        bodies.push(stream);
    }
    // Every connection accepted (tiny_http holds two descriptors per connection).
    assert!(
        eventually(Duration::from_secs(30), || count(pid, "fd") >= 2 * 370),
        "only {} descriptors: not every client is connected",
        count(pid, "fd")
    );
    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        for stream in &mut bodies {
            let _ = stream.write_all(b" ");
        }
        let asked = Instant::now();
        let mut answered = None;
        // Generous: the bound is a liveness check, the 100 ms goal is in `make bench`.
        let ok = eventually(Duration::from_secs(10), || {
            answered = serve_support::raw_request(port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n").ok();
            answered.is_some()
        });
        assert!(ok && answered.map(|r| r.status) == Some(200), "round {round}: no /health beside long-polls");
        slowest = slowest.max(asked.elapsed());
        let status = request(port, "GET", &format!("/status/{id}"), &[], b"");
        assert_eq!(status.status, 200, "round {round}");
    }
    // Reported, not asserted (the goal, 100 ms, is checked by `make bench`).
    eprintln!("/health beside 300 long-polls and 70 slow bodies: slowest of 5 in {slowest:?}");
    drop(polls);
    drop(bodies);
    env.ok(&["kill", "--signal", "KILL", &id]);
}

#[test]
fn waiters_beyond_their_cap_wait_their_turn() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-waiters", "1", "--max-connections", "1"]);
    let port = server.port;
    let done = server.exec(r#"{"command":["true"]}"#);
    assert_eq!(server.get(&format!("/wait/{done}?until=30000")).json()["state"], "exited");
    // A long-poll that holds the only waiter slot: `/exec` with `wait`, whose job marks
    // in a file that it runs (so the request is past its start, waiting for the job).
    let marker = env.path("started");
    let body = format!(r#"{{"command":["sh","-c","touch {marker}; exec sleep 30"],"wait":true,"until_ms":60000}}"#);
    let first = std::thread::spawn(move || {
        let reply = request(port, "POST", "/exec", &[], body.as_bytes());
        reply.json()["job_id"].as_str().unwrap_or_default().to_string()
    });
    assert!(eventually(Duration::from_secs(10), || std::path::Path::new(&marker).exists()));
    // The only short slot is free: /health does not queue behind the long-poll.
    assert_eq!(server.get("/health").status, 200);
    // A second long-poll, on a finished job, waits for the first one's slot.
    let path = format!("/wait/{done}?until=0");
    let second = std::thread::spawn(move || request(port, "GET", &path, &[], b"").status);
    // Give a broken cap the chance to answer the second poll now (a deadline, no sleep).
    assert!(!eventually(Duration::from_secs(1), || second.is_finished()), "the second long-poll did not wait");
    let running = env.ok(&["list", "--all", "--state", "running"]);
    let id = running["jobs"][0]["job_id"].as_str().expect("the long-poll's job").to_string();
    env.ok(&["kill", "--signal", "KILL", &id]);
    assert_eq!(first.join().expect("join first"), id);
    assert_eq!(second.join().expect("join second"), 200);
}

#[test]
fn keep_alive_connections_never_strand_a_new_one() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let port = server.port;
    // Many keep-alive connections opened in bursts, each asking once and staying open:
    // with the pool race a new connection could wait for an open one to close.
    let mut open = Vec::new();
    for burst in 0..20 {
        let mut batch: Vec<TcpStream> =
            (0..8).map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect();
        for stream in &mut batch {
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        }
        for stream in &mut batch {
            stream.set_read_timeout(Some(Duration::from_secs(8))).expect("timeout");
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).unwrap_or(0);
            assert!(
                String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
                "burst {burst}: a keep-alive connection got no answer (stranded)"
            );
        }
        open.extend(batch);
    }
}

/// Runs `cat /proc/self/environ` as a `/exec` job, and returns what it printed and the
/// environment of a running job's supervisor (which its sinks inherit).
fn job_environments(env: &Env, server: &Server, auth: &[(&str, &str)]) -> (String, String) {
    let body = br#"{"command":["sh","-c","cat /proc/self/environ | tr '\\0' '\\n'"],"wait":true}"#;
    let reply = request(server.port, "POST", "/exec", auth, body);
    assert_eq!(reply.status, 200, "{reply:?}");
    let value = reply.json();
    assert_eq!(value["state"], "exited", "{value}");
    let id = value["job_id"].as_str().expect("id");
    let job = std::fs::read_to_string(env.job_dir(id).join("stdout.log")).expect("read log");
    let reply = request(server.port, "POST", "/exec", auth, br#"{"command":["sleep","30"]}"#);
    let id = reply.json()["job_id"].as_str().expect("id").to_string();
    let supervisor = env.read_json(&id, "state.json")["supervisor_pid"].as_u64().expect("supervisor pid");
    // `/exec` answers before its launcher execs the supervisor (docs/decisions.md OP-2), and an
    // exec in progress shows an empty environment: read it from the supervisor itself.
    let exec = || common::cmdline(supervisor as i32).contains("__supervise");
    assert!(eventually(Duration::from_secs(10), exec), "the supervisor never exec'd");
    let supervisor = std::fs::read(format!("/proc/{supervisor}/environ")).expect("supervisor environ");
    env.ok(&["kill", "--signal", "KILL", &id]);
    (job, String::from_utf8_lossy(&supervisor).replace('\0', "\n"))
}

/// `serve`'s own `/proc/PID/environ`, one variable per line.
fn serve_environ(server: &Server) -> String {
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).expect("serve environ");
    String::from_utf8_lossy(&environ).replace('\0', "\n")
}

#[test]
fn the_token_never_reaches_a_job() {
    let env = Env::new().with_env("AGENT_EXEC_SERVE_TOKEN", "sekrit").with_env("KEEP", "kept");
    let server = Server::start(&env, &[]);
    let (job, supervisor) = job_environments(&env, &server, &[("Authorization", "Bearer sekrit")]);
    // Jobs run as our user and can read `/proc/<serve>/environ`, the block `serve` was
    // started with: the old code removed the variable from what it passes on only.
    let own = serve_environ(&server);
    assert!(own.lines().any(|l| l == "KEEP=kept"), "serve's environment was lost: {own}");
    assert!(!own.contains("sekrit"), "the token is readable in /proc/PID/environ:\n{own}");
    for environment in [&job, &supervisor] {
        assert!(environment.lines().any(|l| l == "KEEP=kept"), "the environment was lost: {environment}");
        assert!(!environment.contains("AGENT_EXEC_SERVE_TOKEN"), "the token variable leaked:\n{environment}");
        assert!(!environment.contains("sekrit"), "the token leaked:\n{environment}");
    }
}

#[test]
fn scrub_env_removes_more_names() {
    let env = Env::new().with_env("CLOUD_KEY", "k3y").with_env("OTHER", "x").with_env("KEEP", "kept");
    let server = Server::start(&env, &["--scrub-env", "CLOUD_KEY", "--scrub-env", "OTHER"]);
    let (job, supervisor) = job_environments(&env, &server, &[]);
    let own = serve_environ(&server);
    assert!(!own.contains("k3y"), "a scrubbed value is readable in /proc/PID/environ:\n{own}");
    for environment in [&job, &supervisor] {
        assert!(environment.lines().any(|l| l == "KEEP=kept"), "the environment was lost: {environment}");
        for secret in ["CLOUD_KEY", "k3y", "OTHER="] {
            assert!(!environment.contains(secret), "{secret} reached a job:\n{environment}");
        }
    }
    for bad in ["A=B", ""] {
        let out = env.run(&["serve", "--scrub-env", bad]);
        assert_eq!(out.status.code(), Some(2), "--scrub-env {bad:?} must be a usage error");
    }
}
