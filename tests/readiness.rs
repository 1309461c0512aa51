//! Readiness waits (issue 14 item 3): `--for-output` and `--for-port` on wait, run and
//! start; output written before the wait counts; a job that ends first is not ready.

mod common;

use std::os::unix::process::CommandExt;

use common::{Env, available, has_tool, is_root, single_json};

fn stop(env: &Env, id: &str) {
    env.ok(&["kill", "--signal", "KILL", id]);
    env.wait_job(id);
}

#[test]
fn output_written_before_the_wait_counts() {
    let env = Env::new();
    let run = env.ok(&["run", "--wait", "--for-output", "ready", "--", "printf 'boot\\nserver ready\\n'; sleep 30"]);
    assert_eq!(run["ready"], true, "{run}");
    let id = run["job_id"].as_str().unwrap().to_string();
    // Long after the line was written, a new wait still finds it, with its offset.
    let (value, code) = env.answer(&["wait", "--exit-code", "--for-output", "ready", &id]);
    assert_eq!(value["ready"], true);
    assert_eq!(value["matched_line"], "server ready");
    assert_eq!(value["stream"], "stdout");
    assert_eq!(value["offset"], 5);
    assert_eq!(value["state"], "running");
    assert_eq!(code, 0);
    stop(&env, &id);
}

#[test]
fn regex_and_stream_choice() {
    let env = Env::new();
    let id = env.start_job(&["sh", "-c", "echo 'port=8080' >&2; sleep 30"]);
    let args = ["wait", "--for-output", "^port=[0-9]+$", "--output-match-type", "regex", &id];
    let (value, _) = env.answer(&args);
    assert_eq!((value["ready"].as_bool(), value["stream"].as_str()), (Some(true), Some("stderr")));
    // Only stdout is looked at: the deadline passes, not ready, 124.
    let (value, code) = env.answer(&[
        "wait",
        "--for-output",
        "port=",
        "--output-stream",
        "stdout",
        "--until",
        "200",
        "--exit-code",
        &id,
    ]);
    assert_eq!((value["ready"].as_bool(), value["state"].as_str(), code), (Some(false), Some("running"), 124));
    stop(&env, &id);
}

#[test]
fn a_job_that_ends_first_is_not_ready() {
    let env = Env::new();
    let (value, code) =
        env.answer(&["run", "--for-output", "never", "--exit-code", "--", "sh", "-c", "echo x; exit 3"]);
    assert_eq!((value["ready"].as_bool(), value["state"].as_str(), code), (Some(false), Some("exited"), 3));
    let id = env.start_job(&["echo", "done"]);
    env.wait_job(&id);
    let (value, code) = env.answer(&["wait", "--for-output", "never", "--exit-code", &id]);
    assert_eq!((value["ready"].as_bool(), value["exit_code"].as_i64(), code), (Some(false), Some(0), 125));
    // Its last line, even without a newline, is matched once it has ended.
    let id = env.start_job(&["printf", "up"]);
    env.wait_job(&id);
    assert_eq!(env.ok(&["wait", "--for-output", "up", &id])["ready"], true);
}

#[test]
fn a_port_that_accepts_is_ready() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let id = env.start_job(&["sleep", "30"]);
    let (value, code) = env.answer(&["wait", "--for-port", &port, "--for-host", "127.0.0.1", "--exit-code", &id]);
    assert_eq!((value["ready"].as_bool(), code), (Some(true), 0));
    stop(&env, &id);
    drop(listener);
    // Nothing listens any more, and the job ends: not ready.
    let (value, code) = env.answer(&["run", "--for-port", &port, "--exit-code", "--", "sh", "-c", "exit 4"]);
    assert_eq!((value["ready"].as_bool(), value["state"].as_str(), code), (Some(false), Some("exited"), 4));
}

/// Where nothing listens, the kernel may connect the probe's socket to itself: TCP
/// simultaneous open, when the ephemeral port it picks for the probe is the port probed.
/// That is not a server. A network namespace whose only ephemeral port is the probed one
/// makes it happen at every probe (old code: ready at once, and the probe's socket held
/// the very port the job's server would bind).
#[test]
fn a_probe_connected_to_itself_is_not_ready() {
    if !available(is_root() && has_tool("unshare") && has_tool("ip"), "root, unshare and ip") {
        return;
    }
    let env = Env::new();
    let script = "PATH=$PATH:/usr/sbin:/sbin; ip link set lo up && echo '40000 40000' > /proc/sys/net/ipv4/ip_local_port_range && exec \"$@\"";
    let args = [
        "run",
        "--for-port",
        "40000",
        "--for-host",
        "127.0.0.1",
        "--until",
        "1500",
        "--exit-code",
        "--",
        "sleep",
        "30",
    ];
    let mut argv = vec!["-n", "sh", "-c", script, "sh", common::BIN];
    argv.extend_from_slice(&args);
    let out = env.program("unshare", &argv).output().expect("spawn unshare");
    let value = single_json(&args, &out);
    let id = value["job_id"].as_str().unwrap_or_else(|| panic!("no job: {value}")).to_string();
    stop(&env, &id);
    assert_eq!((value["ready"].as_bool(), value["state"].as_str()), (Some(false), Some("running")), "{value}");
    assert_eq!(out.status.code(), Some(124), "{value}");
}

/// The same trap from the other side: a self-connected probe that is closed normally
/// leaves a TIME_WAIT on exactly the address the job's server is about to bind, which
/// then fails (EADDRINUSE, with or without SO_REUSEADDR) for a minute. Here the server
/// binds after a second, retrying for four, while the probes run; it must come up and
/// be found ready. Two ephemeral ports: the kernel tries the even one, the probed one,
/// first, and the odd one once a server holds it.
#[test]
fn a_self_connected_probe_leaves_the_port_free_for_the_server() {
    if !available(
        is_root() && has_tool("unshare") && has_tool("ip") && has_tool("python3"),
        "root, unshare, ip, python3",
    ) {
        return;
    }
    let env = Env::new();
    let setup = "PATH=$PATH:/usr/sbin:/sbin; ip link set lo up && echo '40000 40001' > /proc/sys/net/ipv4/ip_local_port_range && exec \"$@\"";
    let server = "import socket, sys, time\ntime.sleep(1)\nfor _ in range(40):\n    s = socket.socket()\n    try:\n        s.bind(('127.0.0.1', 40000))\n    except OSError as e:\n        print(e, flush=True); s.close(); time.sleep(0.1); continue\n    s.listen(); print('listening', flush=True); time.sleep(30); sys.exit(0)\nsys.exit(3)\n";
    let args =
        ["run", "--for-port", "40000", "--for-host", "127.0.0.1", "--until", "20000", "--", "python3", "-c", server];
    let mut argv = vec!["-n", "sh", "-c", setup, "sh", common::BIN];
    argv.extend_from_slice(&args);
    let out = env.program("unshare", &argv).output().expect("spawn unshare");
    let value = single_json(&args, &out);
    let id = value["job_id"].as_str().unwrap_or_else(|| panic!("no job: {value}")).to_string();
    let log = std::fs::read_to_string(env.root.join(&id).join("stdout.log")).unwrap_or_default();
    stop(&env, &id);
    assert_eq!((value["ready"].as_bool(), value["state"].as_str()), (Some(true), Some("running")), "{value}\n{log}");
}

#[test]
fn start_takes_the_readiness_flags() {
    let env = Env::new();
    let created = env.ok(&["create", "--", "sh", "-c", "echo started; sleep 30"]);
    let id = created["job_id"].as_str().unwrap().to_string();
    let value = env.ok(&["start", "--for-output", "started", "--until", "20000", &id]);
    assert_eq!(value["ready"], true, "{value}");
    stop(&env, &id);
}

#[test]
fn bad_input() {
    let env = Env::new();
    env.usage(&["wait", "--for-port", "0", "X"]);
    env.usage(&["wait", "--for-port", "70000", "X"]);
    env.usage(&["run", "--for-port", "0", "--", "true"]);
    env.usage(&["wait", "--for-output", "(", "--output-match-type", "regex", "X"]);
    env.usage(&["run", "--for-output", "(", "--output-match-type", "regex", "--", "true"]);
    env.usage(&["wait", "--for-output", "x", "A", "B"]);
    env.usage(&["wait", "--for-output", "x", "--for-port", "80", "A"]);
    env.usage(&["wait", "--for-host", "h", "A"]);
}

/// The scan used to keep a line until its newline: a job printing one 100 MB line made
/// `wait --for-output` hold all of it (300 MB took 575 MB of RSS). Under a 64 MiB
/// address-space limit that aborts; a bounded scan matches the line after it.
#[test]
fn a_huge_line_is_scanned_in_bounded_memory() {
    let env = Env::new();
    let script = "head -c 100000000 /dev/zero | tr '\\0' a; printf '\\nready\\n'; sleep 30";
    let id = env.ok(&["run", "--snapshot-after", "0", "--no-full-log", "--", script])["job_id"]
        .as_str()
        .expect("job_id")
        .to_string();
    let args = ["wait", "--for-output", "ready", "--until", "60000", &id];
    let mut command = env.command(&args);
    // SAFETY: setrlimit between fork and exec only affects the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 64 << 20, rlim_max: 64 << 20 };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let out = command.output().expect("run wait");
    let value = single_json(&args, &out);
    assert_eq!((value["ready"].as_bool(), value["offset"].as_u64()), (Some(true), Some(100_000_001)), "{value}");
    stop(&env, &id);
}
