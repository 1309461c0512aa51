//! The test harness: every test gets a sealed environment (its own jobs root, HOME,
//! config directory and working directory inside a temp dir, a fixed PATH, nothing
//! inherited) and runs the real binary. Verbs assert one thing each and print the whole
//! invocation when they fail. Nothing here sleeps to synchronise: `eventually` polls a
//! condition against a deadline.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-exec");

pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub cwd: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("create temp dir");
        let root = dir.path().join("jobs");
        let home = dir.path().join("home");
        let cwd = dir.path().join("work");
        std::fs::create_dir_all(&home).expect("create home");
        std::fs::create_dir_all(&cwd).expect("create work dir");
        // Canonical, so that it compares equal to the cwd recorded in meta.json.
        let cwd = std::fs::canonicalize(cwd).expect("canonicalize");
        Env { dir, root, home, cwd, extra_env: Vec::new() }
    }

    /// Adds an environment variable to every later invocation.
    pub fn with_env(mut self, key: &str, value: &str) -> Env {
        self.extra_env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.program(BIN, args)
    }

    /// Another program (`make`, `sh`) in the same sealed environment.
    pub fn program(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("AGENT_EXEC_ROOT", &self.root)
            .current_dir(&self.cwd)
            .stdin(Stdio::null());
        for (key, value) in &self.extra_env {
            command.env(key, value);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("spawn agent-exec")
    }

    /// Exit 0 and exactly one JSON object with `ok: true` on stdout, nothing on stderr.
    pub fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        let value = single_json(args, &out);
        assert!(out.status.success() && value["ok"] == true, "{}", describe(args, &out));
        assert!(out.stderr.is_empty(), "stderr not empty\n{}", describe(args, &out));
        value
    }

    /// One JSON object with `ok: true`, whatever the exit status (`--exit-code` makes
    /// it the job's): the answer and the status.
    pub fn answer(&self, args: &[&str]) -> (Value, i32) {
        let out = self.run(args);
        let value = single_json(args, &out);
        assert_eq!(value["ok"], true, "{}", describe(args, &out));
        (value, out.status.code().expect("exit status"))
    }

    /// Exit 1 and one error object with the given code.
    pub fn err(&self, args: &[&str], code: &str) -> Value {
        let out = self.run(args);
        let value = single_json(args, &out);
        assert_eq!(out.status.code(), Some(1), "{}", describe(args, &out));
        assert_eq!(value["ok"], false, "{}", describe(args, &out));
        assert_eq!(value["type"], "error");
        assert_eq!(value["error"]["code"], code, "{}", describe(args, &out));
        assert_eq!(value["error"]["retryable"], false);
        value
    }

    /// Exit 2, empty stdout, a message on stderr; returns the message.
    pub fn usage(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(2), "{}", describe(args, &out));
        assert!(out.stdout.is_empty(), "stdout not empty\n{}", describe(args, &out));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.trim().is_empty(), "no usage message\n{}", describe(args, &out));
        stderr
    }

    /// Starts a job without waiting (`--snapshot-after 0`) and returns its id.
    pub fn start_job(&self, command: &[&str]) -> String {
        let mut args = vec!["run", "--snapshot-after", "0", "--"];
        args.extend_from_slice(command);
        self.ok(&args)["job_id"].as_str().expect("job_id").to_string()
    }

    /// Waits (bounded) for a job to end and returns the `wait` response.
    pub fn wait_job(&self, id: &str) -> Value {
        let value = self.ok(&["wait", "--until", "30000", id]);
        assert_ne!(value["state"], "running", "job {id} did not end within 30 s");
        value
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn read_json(&self, id: &str, file: &str) -> Value {
        let path = self.job_dir(id).join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}\n{text}", path.display()))
    }
}

pub fn single_json(args: &[&str], out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with('\n') && stdout.matches('\n').count() == 1, "not one line\n{}", describe(args, out));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", describe(args, out)))
}

pub fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "command: agent-exec {}\nstatus: {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls `condition` every few milliseconds until it holds or `limit` passes.
/// Runs `command` (stdout piped) for at most `limit`: its output if it ended by then,
/// else `None` (it is killed).
pub fn output_within(command: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn");
    let ended = eventually(limit, || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("wait");
    ended.then_some(out)
}

pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Is a process with this pid alive (and not a zombie)?
pub fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

pub fn write_file(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent");
    }
    std::fs::write(path, text).expect("write file");
}

impl Env {
    /// Waits until the job's supervisor has exited, i.e. after its notifications were
    /// delivered. `wait` returns at the terminal record, which comes earlier.
    pub fn supervisor_gone(&self, id: &str) {
        let state = self.read_json(id, "state.json");
        if let Some(pid) = state["supervisor_pid"].as_u64() {
            assert!(eventually(Duration::from_secs(20), || !alive(pid)), "supervisor {pid} of {id} still alive");
        }
    }

    /// Rewrites one JSON file of a job through `edit` (tests forge ages and states).
    pub fn edit_json(&self, id: &str, file: &str, edit: impl FnOnce(&mut Value)) {
        let mut value = self.read_json(id, file);
        edit(&mut value);
        let text = serde_json::to_string_pretty(&value).expect("serialize");
        std::fs::write(self.job_dir(id).join(file), text).expect("write json");
    }

    /// A path inside the test's temp dir, as a string for command lines.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}

/// A test leaves no process behind, whatever it asserted: every process it started
/// (front-ends, servers, supervisors, jobs, sinks) has the test's temp dir in its
/// environment (`HOME`, `AGENT_EXEC_ROOT`), its argv or its working directory. They are
/// all killed before the directory is removed, so no supervisor writes into it
/// afterwards.
impl Drop for Env {
    fn drop(&mut self) {
        let dir = self.dir.path().as_os_str().as_encoded_bytes().to_vec();
        let ours = |pid: i32| {
            let mentions = |file: &str| std::fs::read(format!("/proc/{pid}/{file}")).is_ok_and(|b| contains(&b, &dir));
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(self.dir.path()));
            cwd || mentions("environ") || mentions("cmdline")
        };
        let me = std::process::id() as i32;
        let gone = eventually(Duration::from_secs(10), || {
            let left: Vec<i32> = all_pids()
                .into_iter()
                .filter(|&pid| pid != me && stat_fields(pid).first().is_some_and(|s| s != "Z") && ours(pid))
                .collect();
            for &pid in &left {
                // SAFETY: SIGKILL to a process this test started (it names the test's
                // private temp dir).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            left.is_empty()
        });
        if !gone && !std::thread::panicking() {
            panic!("processes of {} survived SIGKILL", self.dir.path().display());
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every pid in /proc, for tests that look for processes by their argv or state.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|entries| entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect())
        .unwrap_or_default()
}

/// The argv of a process, NULs shown as spaces ("" if it is gone).
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// The fields of `/proc/PID/stat` after the command name (state first, then ppid...).
fn stat_fields(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect()))
        .unwrap_or_default()
}

/// Zombie children of `parent`: processes it never reaped.
pub fn zombie_children(parent: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            let fields = stat_fields(pid);
            fields.first().map(String::as_str) == Some("Z")
                && fields.get(1).and_then(|p| p.parse().ok()) == Some(parent)
        })
        .filter_map(|pid| u32::try_from(pid).ok())
        .collect()
}

/// Whether a test that needs `what` (a tool, root) may run. Missing outside CI: the
/// test says so and passes. Missing under `CI` (where `.ci/deps` installs every tool and
/// tests run as root): the test fails, so a skip can never hide a regression there.
pub fn available(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{what} is required under CI (see .ci/deps)");
        eprintln!("skipped: {what} is not available");
    }
    ok
}

/// Is `tool` on the fixed PATH of the tests?
pub fn has_tool(tool: &str) -> bool {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].iter().any(|dir| Path::new(dir).join(tool).exists())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Live (not zombie) members of process group `pgid`.
pub fn group_members(pgid: u64) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            let fields = stat_fields(pid);
            fields.first().is_some_and(|s| s != "Z") && fields.get(2).and_then(|g| g.parse::<u64>().ok()) == Some(pgid)
        })
        .collect()
}

/// Address-space limit of `bounded` commands: reading `/dev/zero` to its end would need
/// far more, so an unbounded read aborts instead of passing.
pub const MEMORY_LIMIT: u64 = 1 << 30;

/// Runs a command under `MEMORY_LIMIT`; one that has not ended after 20 s is killed and
/// fails the test (a FIFO read blocks forever).
pub fn bounded(mut command: Command, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit between fork and exec only affects the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: MEMORY_LIMIT, rlim_max: MEMORY_LIMIT };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let ended = eventually(Duration::from_secs(20), || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        panic!("agent-exec {} hung", args.join(" "));
    }
    child.wait_with_output().expect("collect output")
}

/// Makes a FIFO at `path` (replacing a file there).
pub fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}
