//! `agent-exec serve` resource bounds over real HTTP: idle and refused clients (the lanes and caps are in
//! `serve_bounds.rs`), bounded `/wait`, graceful shutdown, and no zombies, leaked descriptors or growing
//! memory after many `/exec` calls (`AGENT_EXEC_SOAK` runs 1,000 jobs).

mod common;
mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Env, alive, eventually};
use serve_support::{Server, request, rss_kib};

#[test]
fn idle_connections_do_not_starve_real_requests() {
    let env = Env::new();
    let server = Server::start(&env, &["--max-connections", "2"]);
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect idle");
        // Some send nothing, some a partial request head.
        if i % 2 == 0 {
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").expect("partial head");
        }
        idle.push(stream);
    }
    assert_eq!(server.get("/health").status, 200);
    let id = server.exec(r#"{"command":["true"]}"#);
    assert_eq!(server.get(&format!("/status/{id}")).status, 200);
}

#[test]
fn silent_connections_are_closed() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut buf = [0u8; 64];
    // EOF or a reset: either way the server hung up on us; our own 30 s read timeout
    // means it did not.
    match stream.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "not closed by the server: {e}"),
    }
    assert_eq!(server.get("/health").status, 200, "still serving after its idle timeout");
}

/// After a refusal the server reads what the client still sends for at most 2 s, then
/// closes (tiny_http patches 7 and 13). A client that sends nothing more and keeps its end
/// open must see the close well before the socket's 10 s idle timeout, which used to bound
/// each read of that linger instead.
#[test]
fn refused_connections_close_after_the_linger_not_the_idle_timeout() {
    // Between the 2 s linger and the 10 s idle timeout, with room for a loaded machine.
    const BOUND: Duration = Duration::from_secs(6);
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let port = server.port;
    let refusals = [
        (431, format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000))),
        (505, "GET /health HTTP/2.0\r\n\r\n".to_string()),
        (413, "POST /exec HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n".to_string()),
    ];
    let clients: Vec<_> = refusals
        .into_iter()
        .map(|(status, raw)| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream.write_all(raw.as_bytes()).expect("send the request");
                let sent = Instant::now();
                let mut answer = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let left = BOUND.saturating_sub(sent.elapsed());
                    assert!(!left.is_zero(), "{status}: connection still open {BOUND:?} after the refusal");
                    stream.set_read_timeout(Some(left)).expect("timeout");
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                            panic!("{status}: connection still open {BOUND:?} after the refusal")
                        }
                        Err(e) => panic!("{status}: not a clean close: {e}"),
                    }
                }
                let text = String::from_utf8_lossy(&answer);
                assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "expected {status}: {text}");
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
}

#[test]
fn wait_is_bounded_server_side() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["sleep","30"]}"#);
    let t0 = Instant::now();
    let value = server.get(&format!("/wait/{id}?until=250")).json();
    assert_eq!(value["state"], "running");
    assert!(t0.elapsed() >= Duration::from_millis(240));
    server.get(&format!("/wait/{id}?until=soon")).assert_error(400, "invalid_request");
    let value = server.post("/exec", r#"{"command":["sleep","30"],"wait":true,"until_ms":200}"#).json();
    assert_eq!(value["state"], "running");
    assert!(value.get("final_snapshot").is_none());
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let env = Env::new();
    let mut server = Server::start(&env, &[]);
    let id = server.exec(r#"{"command":["sleep","30"]}"#);
    let port = server.port;
    let path = format!("/wait/{id}?until=1000");
    let in_flight = std::thread::spawn(move || request(port, "GET", &path, &[], b""));
    // The wait must be in progress before the signal.
    assert!(eventually(Duration::from_secs(20), || waits_in_flight(server.pid()) > 0));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let reply = in_flight.join().expect("join");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["state"], "running");
    let mut status = None;
    assert!(eventually(Duration::from_secs(10), || {
        status = server.child.try_wait().expect("try_wait");
        status.is_some()
    }));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let mut stdout = String::new();
    server.child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read");
    assert_eq!(stdout, "", "serve prints nothing on stdout");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "no longer accepting");
    // The job has its own supervisor and keeps running.
    let state = env.read_json(&id, "state.json");
    assert_eq!(env.ok(&["status", &id])["state"], "running", "{state}");
    let pid = state["pid"].as_u64().expect("pid");
    assert!(alive(pid));
    env.ok(&["kill", "--signal", "KILL", &id]);
}

#[test]
fn many_execs_leave_no_zombies() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    for _ in 0..500 {
        server.exec(r#"{"command":["true"]}"#);
    }
    let zombies = common::zombie_children(server.pid());
    assert!(zombies.is_empty(), "zombie children of the server: {zombies:?}");
    assert!(eventually(Duration::from_secs(5), || thread_count(server.pid()) < 64), "threads leaked");
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Threads of the server that are handling a request (they are named "request").
/// Requests blocked in `/wait`: each holds an inotify descriptor on its job directory
/// while it waits, so counting those tells how many waits the server is serving now.
fn waits_in_flight(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy().contains("inotify")))
        .count()
}

/// `AGENT_EXEC_SOAK` runs 1,000 jobs; the normal suite 200.
#[test]
fn many_jobs_leave_no_zombies_fds_or_memory() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let pid = server.pid();
    let total = if std::env::var_os("AGENT_EXEC_SOAK").is_some() { 1000 } else { 200 };
    let checkpoint = total / 5;
    // Warm up: the first requests create the request threads and tiny_http's pool.
    for _ in 0..10 {
        run_batch(&server, 1);
    }
    let fds_before = fd_count(pid);
    let mut rss_at_checkpoint = None;
    let t0 = Instant::now();
    let mut done = 0;
    while done < total {
        let batch = 20.min(total - done);
        run_batch(&server, batch);
        done += batch;
        if done == checkpoint {
            rss_at_checkpoint = Some(rss_kib(pid));
        }
    }
    let elapsed = t0.elapsed();
    let zombies = common::zombie_children(pid);
    assert!(zombies.is_empty(), "zombie children of the server: {zombies:?}");
    // The keep-alive self-connection and tiny_http's closing sockets come and go.
    assert!(
        eventually(Duration::from_secs(15), || fd_count(pid) <= fds_before + 4),
        "descriptors: {fds_before} before, {} after {total} jobs: {:?}",
        fd_count(pid),
        fd_targets(pid)
    );
    let growth = rss_kib(pid).saturating_sub(rss_at_checkpoint.unwrap_or(0));
    assert!(growth < 20 * 1024, "RSS grew by {growth} KiB between job {checkpoint} and job {total}");
    assert!(std::fs::read_dir(&env.root).expect("root").count() == total + 10);
    eprintln!("{total} jobs in {elapsed:?}, RSS growth {growth} KiB");
}

/// Starts `n` jobs over HTTP without waiting, then waits for all of them with `/wait`.
fn run_batch(server: &Server, n: usize) {
    let ids: Vec<String> = (0..n).map(|_| server.exec(r#"{"command":["true"]}"#)).collect();
    for id in ids {
        let reply = server.get(&format!("/wait/{id}?until=30000"));
        assert_eq!(reply.json()["state"], "exited", "{reply:?}");
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn fd_targets(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.flatten().filter_map(|fd| std::fs::read_link(fd.path()).ok()).map(|t| t.display().to_string()).collect()
}

/// `serve -v 2>&1 | head -1`: once `head` has gone, every access-log line meets a closed
/// stderr. Logging must not end the server (it aborted on the first line after that).
#[test]
fn a_closed_stderr_does_not_stop_a_verbose_server() {
    let env = Env::new();
    let server = Server::start_with(&env, &["-v"], || {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        writer.into()
    });
    for _ in 0..5 {
        assert_eq!(server.get("/health").status, 200);
    }
    let id = server.exec(r#"{"command":["true"]}"#);
    assert_eq!(server.get(&format!("/status/{id}")).status, 200);
}
