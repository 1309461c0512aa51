//! The caller's PATH survives the default `sh -lc` wrapper (issue 14 item 6), tested with
//! a login profile that resets PATH the way Debian's `/etc/profile` does.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Env, write_file};

const PROFILE_PATH: &str = "/usr/bin:/bin:/opt/from-profile";

/// An environment whose `~/.profile` resets PATH, with a project-local tool in `tools/`.
fn setup() -> (Env, String) {
    let env = Env::new();
    write_file(&env.home.join(".profile"), &format!("PATH={PROFILE_PATH}\nexport PATH\n"));
    let tools = env.dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools dir");
    let tool = tools.join("project-tool");
    write_file(&tool, "#!/bin/sh\necho tool-ran\n");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tools = tools.to_str().expect("utf8").to_string();
    let caller_path = format!("{tools}:/usr/local/bin:/usr/bin:/bin");
    (env.with_env("PATH", &caller_path), caller_path)
}

fn stdout_of(env: &Env, args: &[&str]) -> String {
    let value = env.ok(args);
    assert_eq!(value["state"], "exited", "{value}");
    value["final_snapshot"]["stdout_tail"].as_str().expect("stdout").to_string()
}

#[test]
fn the_callers_path_comes_first_then_what_the_profile_added() {
    let (env, caller_path) = setup();
    let path = stdout_of(&env, &["run", "--wait", "--", "echo \"$PATH\""]);
    assert_eq!(path, format!("{caller_path}:/opt/from-profile"));
    // Project-local tools are found, in shell-string and in argv mode.
    assert_eq!(stdout_of(&env, &["run", "--wait", "--", "project-tool"]), "tool-ran");
    assert_eq!(stdout_of(&env, &["run", "--wait", "--", "project-tool", "x"]), "tool-ran");
    // The carrier of the given PATH does not reach the workload.
    assert_eq!(stdout_of(&env, &["run", "--wait", "--", "env | grep -c AGENT_EXEC_GIVEN || true"]), "0");
}

#[test]
fn an_explicit_path_and_no_inherit_env_keep_their_meaning() {
    let (env, _) = setup();
    let path = stdout_of(&env, &["run", "--wait", "--env", "PATH=/x/bin:/bin", "--", "echo \"$PATH\""]);
    assert_eq!(path, "/x/bin:/bin:/usr/bin:/opt/from-profile");
    // No PATH given: the profile's, as before.
    let home = format!("HOME={}", env.home.display());
    let path = stdout_of(&env, &["run", "--wait", "--no-inherit-env", "--env", &home, "--", "echo \"$PATH\""]);
    assert_eq!(path, PROFILE_PATH);
}

#[test]
fn another_wrapper_is_left_alone() {
    let (env, caller_path) = setup();
    let path = stdout_of(&env, &["run", "--wait", "--shell-wrapper", "sh -c", "--", "echo \"$PATH\""]);
    assert_eq!(path, caller_path);
}
