//! The `COMPLETE=<shell>` protocol as 0.1.18 users register it: the registration script
//! is sourced by a real bash and a real fish, and their own completion machinery calls the
//! binary back. Job ids are filtered by the state each subcommand accepts, and a `--root`
//! among the typed words wins over `AGENT_EXEC_ROOT`.

mod common;

use std::process::{Command, Output};

use common::{BIN, Env, describe};

fn shell(env: &Env, program: &str, script: &str) -> Output {
    let out = Command::new(program)
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &env.home)
        .env("AGENT_EXEC_ROOT", &env.root)
        .env("BIN", BIN)
        .current_dir(&env.cwd)
        .output()
        .unwrap_or_else(|e| panic!("{program} is not installed ({e}); .ci/deps installs it"));
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// What bash offers for `line` (the cursor at its end), through the function the
/// registration script bound to `agent-exec`.
fn bash_complete(env: &Env, line: &str) -> Vec<String> {
    let script = format!(
        r#"source <(COMPLETE=bash "$BIN") || exit 9
        spec=$(complete -p agent-exec) || exit 8
        fn=${{spec##*-F }}; fn=${{fn%% *}}
        COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}
        read -ra COMP_WORDS <<< "$COMP_LINE"
        [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        "$fn" agent-exec "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\n' "${{COMPREPLY[@]}}""#
    );
    lines(shell(env, "bash", &script))
}

/// What fish offers for `line`: its own `complete -C`, values only.
fn fish_complete(env: &Env, line: &str) -> Vec<String> {
    let script = format!("env COMPLETE=fish $BIN | source; or exit 9\ncomplete -C '{line}'");
    lines(shell(env, "fish", &script))
        .into_iter()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

fn lines(out: Output) -> Vec<String> {
    String::from_utf8(out.stdout).expect("utf-8").lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

struct Jobs {
    created: String,
    running: String,
    exited: String,
}

fn jobs(env: &Env) -> Jobs {
    let created = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    let running = env.start_job(&["sleep", "30"]);
    let exited = env.ok(&["run", "--wait", "--", "true"])["job_id"].as_str().expect("job_id").to_string();
    Jobs { created, running, exited }
}

#[test]
fn bash_offers_subcommands_flags_values_and_ids_by_state() {
    let env = Env::new();
    let j = jobs(&env);
    assert_eq!(bash_complete(&env, "agent-exec sta"), ["start", "status"]);
    assert_eq!(bash_complete(&env, "agent-exec kill --sig"), ["--signal"]);
    assert!(bash_complete(&env, "agent-exec kill --signal ").contains(&"KILL".to_string()));
    assert_eq!(bash_complete(&env, "agent-exec start "), [j.created.as_str()]);
    assert_eq!(bash_complete(&env, "agent-exec kill "), [j.running.as_str()]);
    let mut waitable = vec![j.created.clone(), j.running.clone()];
    waitable.sort();
    assert_eq!(bash_complete(&env, "agent-exec wait "), waitable);
    assert_eq!(bash_complete(&env, "agent-exec delete "), [j.exited.as_str()]);
    assert_eq!(bash_complete(&env, "agent-exec status ").len(), 3);
    env.ok(&["kill", "--signal", "KILL", &j.running]);
}

#[test]
fn fish_offers_the_same() {
    let env = Env::new();
    let j = jobs(&env);
    assert_eq!(fish_complete(&env, "agent-exec sta"), ["start", "status"]);
    assert_eq!(fish_complete(&env, "agent-exec start "), [j.created.as_str()]);
    assert_eq!(fish_complete(&env, "agent-exec delete "), [j.exited.as_str()]);
    assert!(fish_complete(&env, "agent-exec list --state=").contains(&"--state=exited".to_string()));
    env.ok(&["kill", "--signal", "KILL", &j.running]);
}

#[test]
fn root_among_the_words_wins() {
    let env = Env::new();
    let other = env.dir.path().join("other-root");
    let out = env.command(&["--root", other.to_str().expect("utf-8"), "create", "--", "true"]).output().expect("run");
    let id = common::single_json(&["create"], &out)["job_id"].as_str().expect("job_id").to_string();
    assert!(bash_complete(&env, "agent-exec start ").is_empty());
    let line = format!("agent-exec --root {} start ", other.display());
    assert_eq!(bash_complete(&env, &line), [id.as_str()]);
    let line = format!("agent-exec start --root {} ", other.display());
    assert_eq!(fish_complete(&env, &line), [id.as_str()]);
}

#[test]
fn candidates_are_one_per_line_and_nothing_runs() {
    let env = Env::new();
    let out = env
        .command(&["--", "agent-exec", "run", "touch", "made"])
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "2")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", describe(&["--"], &out));
    assert!(!env.cwd.join("made").exists());
    assert!(!env.root.exists(), "completion created the root");
    let out = env.command(&["--", "agent-exec", "li"]).env("COMPLETE", "zsh").output().expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "list:List jobs, newest first\n");
}

#[test]
fn zsh_script_parses_and_unknown_shell_is_refused() {
    let env = Env::new();
    shell(&env, "zsh", r#"COMPLETE=zsh "$BIN" > reg.zsh && zsh -n reg.zsh"#);
    let out = env.command(&[]).env("COMPLETE", "elvish").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported shell"));
}
