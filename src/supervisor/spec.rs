//! What the front-end hands the supervisor through a pipe at launch. It is private to the
//! binary (not part of the contract) and never touches argv or the disk, because it
//! carries the unmasked `--env` values.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `$0` of the wrapper shell in argv mode.
const WRAPPER_ARG0: &str = "agent-exec";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub command: Vec<String>,
    pub wrapper: Vec<String>,
    /// `--env` entries with their real values, in order.
    pub env: Vec<String>,
    pub env_files: Vec<String>,
    pub inherit_env: bool,
    /// Where the job runs; relative paths resolve against the front-end's directory,
    /// which the supervisor inherits.
    pub cwd: Option<String>,
    pub full_log: PathBuf,
    pub timeout_ms: u64,
    pub kill_after_ms: u64,
    pub progress_every_ms: u64,
    /// `--max-log-bytes` (or `[logs] max_bytes`): each log rotates past this size.
    #[serde(default)]
    pub max_log_bytes: Option<u64>,
    /// `--no-full-log`: no `full.log` records at all.
    #[serde(default)]
    pub no_full_log: bool,
    /// Sent before the job directory exists (`Launching::stage`): the supervisor reports
    /// pids and waits for `go` before it touches the directory.
    #[serde(default)]
    pub staged: bool,
}

impl LaunchSpec {
    /// The job process's argv (docs/compatibility.md §6.3): one word is a shell string for the
    /// wrapper; several words are exec'd by it as `"$@"`, so the job's pid is the
    /// workload's. The wrapper's `$0` is `agent-exec` (0.1.18 passed `--`), because the
    /// shell prefixes its own messages with it: `agent-exec: 1: exec: nope: not found`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = self.wrapper.clone();
        match self.command.as_slice() {
            [single] => argv.push(single.clone()),
            words => {
                argv.push("exec \"$@\"".to_string());
                argv.push(WRAPPER_ARG0.to_string());
                argv.extend(words.iter().cloned());
            }
        }
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &[&str]) -> LaunchSpec {
        LaunchSpec {
            command: command.iter().map(|s| s.to_string()).collect(),
            wrapper: vec!["sh".into(), "-lc".into()],
            env: vec![],
            env_files: vec![],
            inherit_env: true,
            cwd: None,
            full_log: PathBuf::from("/dev/null"),
            timeout_ms: 0,
            kill_after_ms: 0,
            progress_every_ms: 0,
            max_log_bytes: None,
            no_full_log: false,
            staged: false,
        }
    }

    #[test]
    fn launch_modes() {
        assert_eq!(spec(&["echo hi && ls"]).argv(), ["sh", "-lc", "echo hi && ls"]);
        assert_eq!(spec(&["echo", "hi"]).argv(), ["sh", "-lc", "exec \"$@\"", "agent-exec", "echo", "hi"]);
    }
}
