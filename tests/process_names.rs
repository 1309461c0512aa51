//! Supervisors are named `agent-exec` (issue 11, item 5): `ps -C agent-exec`, `pgrep`
//! and `pidof` find them, as they find the front-end.

mod common;

use common::{Env, available, has_tool};

#[test]
fn supervisors_show_as_agent_exec() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "30"]);
    let supervisor = env.read_json(&id, "state.json")["supervisor_pid"].as_u64().expect("supervisor_pid");
    let comm = std::fs::read_to_string(format!("/proc/{supervisor}/comm")).expect("comm");
    assert_eq!(comm.trim_end(), "agent-exec");
    if available(has_tool("ps") && has_tool("pgrep"), "ps and pgrep (procps)") {
        for (tool, args) in [("ps", &["-C", "agent-exec", "-o", "pid="][..]), ("pgrep", &["-x", "agent-exec"][..])] {
            let out = std::process::Command::new(tool).args(args).output().expect("spawn");
            let pids: Vec<u64> =
                String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect();
            assert!(pids.contains(&supervisor), "{tool} does not find supervisor {supervisor}: {pids:?}");
        }
    }
    env.ok(&["kill", "--signal", "KILL", &id]);
    env.wait_job(&id);
}
