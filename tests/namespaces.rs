//! A job started inside another PID namespace, with the jobs root shared (issue 11,
//! item 3): from the host its pids name other processes, so the host must never
//! declare it dead, repair its record or signal it; it reports `state.json` with
//! `liveness_unchecked`. Inside the namespace everything works as usual.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{BIN, Env, available, eventually, has_tool, is_root};

/// A PID namespace whose init is `sleep`, holding one job started inside it; killed
/// (with everything in it) on drop.
struct Namespace {
    unshare: Child,
    job_id: String,
}

impl Namespace {
    fn start(env: &Env) -> Namespace {
        let script = format!("'{BIN}' run --snapshot-after 0 -- sleep 300 && exec sleep 300");
        let mut unshare = sealed(env, "unshare", &["--pid", "--fork", "--mount-proc", "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn unshare");
        let mut line = String::new();
        BufReader::new(unshare.stdout.take().expect("stdout")).read_line(&mut line).expect("read run answer");
        let answer: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let job_id = answer["job_id"].as_str().unwrap_or_else(|| panic!("no job: {line}")).to_string();
        Namespace { unshare, job_id }
    }

    /// The namespace's init, as seen from the host.
    fn init_pid(&self) -> u32 {
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.unshare.id()))
            .expect("children of unshare");
        children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("namespace init")
    }

    /// Runs agent-exec inside the namespace.
    fn inside(&self, env: &Env, args: &[&str]) -> serde_json::Value {
        let target = self.init_pid().to_string();
        let mut nsenter = vec!["-t", target.as_str(), "-p", "-m", "--", BIN];
        nsenter.extend_from_slice(args);
        let out = sealed(env, "nsenter", &nsenter).output().expect("spawn nsenter");
        common::single_json(args, &out)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // SIGKILL to the namespace's init ends every process in the namespace.
        // SAFETY: signalling a process this test started.
        unsafe { libc::kill(self.init_pid() as libc::pid_t, libc::SIGKILL) };
        let _ = self.unshare.wait();
    }
}

/// Another program with the sealed environment and working directory of `env`.
fn sealed(env: &Env, program: &str, args: &[&str]) -> std::process::Command {
    let from = env.command(&[]);
    let mut command = std::process::Command::new(program);
    command.args(args).env_clear().stdin(Stdio::null());
    for (key, value) in from.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    if let Some(dir) = from.get_current_dir() {
        command.current_dir(dir);
    }
    command
}

#[test]
fn a_job_of_another_pid_namespace_is_never_judged_from_here() {
    if !available(is_root() && has_tool("unshare") && has_tool("nsenter"), "root with unshare and nsenter") {
        return;
    }
    let env = Env::new();
    let namespace = Namespace::start(&env);
    let id = namespace.job_id.clone();
    let recorded = || env.read_json(&id, "state.json");

    let status = env.ok(&["status", &id]);
    assert_eq!(status["state"], "running", "{status}");
    assert!(recorded()["pid_ns"].as_u64().is_some(), "{}", recorded());
    assert_eq!(status["liveness_unchecked"], true, "{status}");
    let list = env.ok(&["list", "--all"]);
    assert_eq!(list["jobs"][0]["state"], "running", "{list}");
    assert_eq!(list["jobs"][0]["liveness_unchecked"], true, "{list}");
    let waited = env.ok(&["wait", "--until", "50", &id]);
    assert_eq!((waited["state"].as_str(), waited["liveness_unchecked"].as_bool()), (Some("running"), Some(true)));
    env.err(&["kill", &id], "invalid_state");
    env.err(&["delete", &id], "invalid_state");
    assert_eq!(recorded()["job"]["status"], "running", "the host repaired a live job: {}", recorded());

    let inside = namespace.inside(&env, &["status", &id]);
    assert_eq!(inside["state"], "running", "{inside}");
    assert!(inside.get("liveness_unchecked").is_none(), "{inside}");
    let killed = namespace.inside(&env, &["kill", &id]);
    assert_eq!(killed["delivered"], true, "{killed}");
    assert!(eventually(Duration::from_secs(20), || recorded()["job"]["status"] == "killed"));
}
