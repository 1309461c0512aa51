//! `completions <shell>`: each script loads in its shell, names every flag of every
//! subcommand, and completes job ids filtered by state in a scripted session (bash and
//! fish drive their real completion machinery; zsh, which needs a terminal for that,
//! runs the script's job-id function).

mod common;

use std::process::{Command, Output};

use common::{Env, describe};

fn script(env: &Env, shell: &str) -> String {
    let out = env.run(&["completions", shell]);
    assert!(out.status.success() && out.stderr.is_empty(), "{}", describe(&["completions", shell], &out));
    String::from_utf8(out.stdout).expect("utf-8 script")
}

fn have(shell: &str) -> bool {
    let found = Command::new(shell).arg("-c").arg("exit 0").output().is_ok_and(|o| o.status.success());
    common::available(found, &format!("{shell} (.ci/deps installs it)"))
}

fn shell_output(env: &Env, shell: &str, args: &[&str]) -> Output {
    Command::new(shell)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &env.home)
        .env("AGENT_EXEC_ROOT", &env.root)
        .current_dir(&env.cwd)
        .output()
        .expect("run shell")
}

/// A created job and a running one; the running one ends when the test's Env drops
/// (its sleep is bounded anyway).
fn two_jobs(env: &Env) -> (String, String) {
    let created = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    let running = env.start_job(&["sleep", "30"]);
    (created, running)
}

#[test]
fn every_flag_and_subcommand_is_in_every_script() {
    let env = Env::new();
    let help = String::from_utf8(env.run(&["--help"]).stdout).expect("utf-8");
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let text = script(&env, shell);
        for command in &commands {
            assert!(text.contains(command), "{shell} script lacks the subcommand {command}");
            let out = env.run(&["help", command]);
            let help = String::from_utf8(out.stdout).expect("utf-8");
            // The flag each option line of the help text starts with (aliases are
            // accepted but not offered, so they are not checked).
            let flags = help
                .lines()
                .filter(|l| l.trim_start().starts_with('-'))
                .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")));
            for flag in flags {
                let name = flag.trim_start_matches('-');
                let found = if shell == "fish" { text.contains(&format!("-l {name} ")) } else { text.contains(flag) };
                assert!(found, "{shell} script lacks {flag} of {command}");
            }
        }
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    Env::new().usage(&["completions", "tcsh"]);
}

#[test]
fn bash_completes_job_ids_by_state() {
    if !have("bash") {
        return;
    }
    let env = Env::new();
    let path = env.dir.path().join("agent-exec.bash");
    std::fs::write(&path, script(&env, "bash")).expect("write script");
    let check = shell_output(&env, "bash", &["-n", path.to_str().expect("utf-8 path")]);
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    let (created, running) = two_jobs(&env);
    let session = format!(
        "source {script}\n\
         complete_words() {{ COMP_WORDS=(\"$@\"); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _agent_exec; echo \"${{COMPREPLY[*]}}\"; }}\n\
         complete_words {bin} start ''\n\
         complete_words {bin} kill ''\n\
         complete_words {bin} status ''\n\
         complete_words {bin} kill --signal K\n\
         complete_words {bin} list --state r\n\
         complete_words {bin} sta\n",
        script = path.display(),
        bin = common::BIN
    );
    let out = shell_output(&env, "bash", &["--norc", "--noprofile", "-c", &session]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "bash session failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines[0], created, "start offers created jobs only");
    assert_eq!(lines[1], running, "kill offers running jobs only");
    let mut all: Vec<&str> = lines[2].split(' ').collect();
    all.sort_unstable();
    let mut expected = vec![created.as_str(), running.as_str()];
    expected.sort_unstable();
    assert_eq!(all, expected, "status offers every job");
    assert_eq!(lines[3], "KILL");
    assert_eq!(lines[4], "running");
    assert_eq!(lines[5], "start status");
    env.ok(&["kill", &running]);
}

#[test]
fn fish_completes_job_ids_by_state() {
    if !have("fish") {
        return;
    }
    let env = Env::new();
    let path = env.dir.path().join("agent-exec.fish");
    std::fs::write(&path, script(&env, "fish")).expect("write script");
    let (created, running) = two_jobs(&env);
    let session = format!(
        "source {script}; complete -C'{bin} start '; echo ==; complete -C'{bin} kill '; echo ==; complete -C'{bin} list --state cr'",
        script = path.display(),
        bin = common::BIN
    );
    let out = shell_output(&env, "fish", &["--no-config", "-c", &session]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parts: Vec<&str> = stdout.split("==\n").collect();
    assert_eq!(parts.len(), 3, "fish session failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(parts[0], format!("{created}\tcreated\n"));
    assert_eq!(parts[1], format!("{running}\trunning\n"));
    assert!(parts[2].starts_with("created\t"), "{}", parts[2]);
    env.ok(&["kill", &running]);
}

#[test]
fn zsh_script_loads_and_lists_job_ids_by_state() {
    if !have("zsh") {
        return;
    }
    let env = Env::new();
    let path = env.dir.path().join("_agent-exec");
    std::fs::write(&path, script(&env, "zsh")).expect("write script");
    let check = shell_output(&env, "zsh", &["-n", path.to_str().expect("utf-8 path")]);
    assert!(check.status.success(), "zsh -n: {}", String::from_utf8_lossy(&check.stderr));
    let (created, running) = two_jobs(&env);
    let session = format!(
        "autoload -Uz compinit && compinit -u -D && source {script} && print -r -- ${{_comps[agent-exec]}} && \
         _agent_exec_job_ids {bin} '' created && _agent_exec_job_ids {bin} '' running",
        script = path.display(),
        bin = common::BIN
    );
    let out = shell_output(&env, "zsh", &["-f", "-c", &session]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        format!("_agent_exec\n{created}\n{running}\n"),
        "zsh session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["kill", &running]);
}
