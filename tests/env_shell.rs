//! How the job is launched: shell-string vs argv mode, the shell wrapper and config.toml,
//! the working directory, the environment (inherit, env files, --env), and masking.

mod common;

use common::{Env, write_file};

fn stdout_of(env: &Env, args: &[&str]) -> String {
    let value = env.ok(args);
    assert_eq!(value["state"], "exited", "{value}");
    value["final_snapshot"]["stdout_tail"].as_str().expect("stdout").to_string()
}

#[test]
fn one_word_is_a_shell_string_several_words_are_an_argv() {
    let env = Env::new();
    assert_eq!(stdout_of(&env, &["run", "--wait", "--", "echo a && echo b | tr b c"]), "a\nc");
    // In argv mode nothing is interpreted by a shell.
    assert_eq!(stdout_of(&env, &["run", "--wait", "--", "echo", "$HOME", "&&", "*"]), "$HOME && *");
    // An empty word is passed through as an argument.
    assert_eq!(stdout_of(&env, &["run", "--wait", "--", "printf", "[%s]", ""]), "[]");
    // Everything after the first command word belongs to the job, even our own flags.
    assert_eq!(stdout_of(&env, &["run", "--wait", "echo", "--yaml", "-v"]), "--yaml -v");
}

/// An unknown program is the wrapper shell's failure, not ours: the job ran and exited
/// with 127, and the shell's message names `agent-exec` as its `$0` (0.1.18 passed `--`).
#[test]
fn an_unknown_program_exits_127_with_the_shell_message() {
    let env = Env::new();
    let value = env.ok(&["run", "--wait", "--", "no-such-program-agent-exec-test", "arg"]);
    assert_eq!(value["state"], "exited", "{value}");
    assert_eq!(value["exit_code"], 127, "{value}");
    let stderr = value["final_snapshot"]["stderr_tail"].as_str().expect("stderr");
    assert!(stderr.starts_with("agent-exec: "), "{stderr:?}");
    assert!(stderr.contains("no-such-program-agent-exec-test") && stderr.contains("not found"), "{stderr:?}");
    // The arguments are still $1.. exactly: $0 is not one of them.
    assert_eq!(stdout_of(&env, &["run", "--wait", "--", "sh", "-c", "echo \"$0|$*\"", "zero", "one"]), "zero|one");
}

/// A wrapper that cannot be executed is our failure to start the job: `failed`, with the
/// exec error, and no job pid in the record. The wrapper is looked up on the job's PATH.
#[test]
fn a_wrapper_that_cannot_be_executed_fails_the_job() {
    let env = Env::new();
    let value = env.ok(&["run", "--wait", "--shell-wrapper", "no-such-shell-agent-exec -c", "--", "true"]);
    assert_eq!(value["state"], "failed", "{value}");
    assert_eq!(value["error"], "spawn no-such-shell-agent-exec: No such file or directory (os error 2)");
    let id = value["job_id"].as_str().expect("id");
    let state = env.read_json(id, "state.json");
    assert!(state.get("pid").is_none() && state.get("pid_start").is_none(), "{state}");
    let value = env.ok(&["run", "--wait", "--env", "PATH=/nonexistent", "--", "true"]);
    assert_eq!(value["error"], "spawn sh: No such file or directory (os error 2)", "{value}");
}

#[test]
fn argv_mode_execs_the_workload_as_the_job_process() {
    let env = Env::new();
    let id = env.start_job(&["sleep", "30"]);
    let pid = env.read_json(&id, "state.json")["pid"].as_u64().expect("pid");
    // The recorded pid is the wrapper until it execs the workload in its place.
    let execd = || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\x0030"));
    assert!(common::eventually(std::time::Duration::from_secs(5), execd), "pid {pid} never became the workload");
    env.ok(&["kill", "--signal", "KILL", &id]);
}

#[test]
fn shell_wrapper_flag_and_config_file() {
    let env = Env::new();
    let value = env.ok(&["run", "--wait", "--shell-wrapper", "bash -c", "--", "echo $BASH_VERSION"]);
    assert_ne!(value["final_snapshot"]["stdout_tail"], "");
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(env.read_json(id, "meta.json")["shell_wrapper"], serde_json::json!(["bash", "-c"]));

    write_file(&env.home.join(".config/agent-exec/config.toml"), "[shell]\nunix = [\"bash\", \"-c\"]\n");
    let value = env.ok(&["run", "--wait", "--", "echo $BASH_VERSION"]);
    assert_ne!(value["final_snapshot"]["stdout_tail"], "");

    let custom = env.dir.path().join("custom.toml");
    write_file(&custom, "[shell]\nunix = [\"sh\", \"-c\"]\n");
    let value = env.ok(&["run", "--wait", "--config", custom.to_str().expect("utf8"), "--", "echo x"]);
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(env.read_json(id, "meta.json")["shell_wrapper"], serde_json::json!(["sh", "-c"]));

    write_file(&custom, "[shell]\nunix = []\n");
    let error = env.err(&["run", "--config", custom.to_str().expect("utf8"), "--", "true"], "internal_error");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("must not be empty")));
    write_file(&custom, "[shell\n");
    let error = env.err(&["run", "--config", custom.to_str().expect("utf8"), "true"], "internal_error");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.starts_with("parse config file")));
    let yaml = env.run(&["--yaml", "run", "--config", custom.to_str().expect("utf8"), "true"]);
    assert_eq!(yaml.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&yaml.stdout).contains("code: internal_error"));
    env.err(&["run", "--shell-wrapper", "  ", "true"], "internal_error");
    // Config errors happen before anything is created.
    assert_eq!(env.ok(&["list"])["jobs"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_wrapper_that_does_not_exist_fails_the_job_with_a_reason() {
    let env = Env::new();
    let value = env.ok(&["run", "--shell-wrapper", "/nonexistent/shell -c", "--", "true"]);
    assert_eq!(value["state"], "failed");
    assert!(value["error"].as_str().is_some_and(|e| e.contains("/nonexistent/shell")), "{value}");
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(env.ok(&["wait", id])["state"], "failed");
}

#[test]
fn working_directory() {
    let env = Env::new();
    let sub = env.cwd.join("sub");
    std::fs::create_dir_all(&sub).expect("mkdir");
    assert_eq!(stdout_of(&env, &["run", "--wait", "--cwd", "sub", "--", "pwd"]), sub.to_string_lossy());
    let value = env.ok(&["run", "--wait", "--cwd", "sub/../sub", "--", "true"]);
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(env.read_json(id, "meta.json")["cwd"], sub.to_string_lossy().as_ref());
    let value = env.ok(&["run", "--cwd", "/nonexistent/dir", "--", "true"]);
    assert_eq!(value["state"], "failed");
    assert!(value["error"].as_str().is_some_and(|e| e.contains("/nonexistent/dir")));
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(env.read_json(id, "meta.json")["cwd"], "/nonexistent/dir");
}

#[test]
fn environment_layers_and_env_files() {
    let env = Env::new().with_env("FROM_CALLER", "caller");
    let file = env.dir.path().join("vars.env");
    write_file(&file, "# comment\n\n  A=from-file\n  B = 2 \nQ=\"quoted\"\nexport D=4\nNOEQ\n");
    let value = env.ok(&[
        "run",
        "--wait",
        "--env-file",
        file.to_str().expect("utf8"),
        "--env",
        "A=from-flag",
        "--env",
        "K=a=b",
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s|%s|%s' \"$FROM_CALLER\" \"$A\" \"$Q\" \"$K\" \"${NOEQ-unset}\"",
    ]);
    assert_eq!(value["final_snapshot"]["stdout_tail"], "caller|from-flag|\"quoted\"|a=b|");
    assert_eq!(value["env_vars"], serde_json::json!(["A=from-flag", "K=a=b"]));
    let id = value["job_id"].as_str().expect("id");
    assert_eq!(env.read_json(id, "meta.json")["env_keys"], serde_json::json!(["A", "K"]));

    let value = env.ok(&[
        "run",
        "--wait",
        "--no-inherit-env",
        "--env",
        "ONLY=1",
        "--",
        "sh",
        "-c",
        "echo ${FROM_CALLER-none}:$ONLY",
    ]);
    assert_eq!(value["final_snapshot"]["stdout_tail"], "none:1");
    assert_eq!(env.read_json(value["job_id"].as_str().expect("id"), "meta.json")["inherit_env"], false);

    // Keys a shell would drop (`B `, `export D`) reach a job that is not a shell.
    let value =
        env.ok(&["run", "--wait", "--shell-wrapper", "env", "--env-file", file.to_str().expect("utf8"), "--", "env"]);
    let printed = value["final_snapshot"]["stdout_tail"].as_str().expect("stdout").to_string();
    assert!(printed.lines().any(|l| l == "B = 2") && printed.lines().any(|l| l == "export D=4"), "{printed}");

    let value = env.ok(&["run", "--env-file", "/nonexistent/vars.env", "--", "true"]);
    assert_eq!(value["state"], "failed");
    assert!(value["error"].as_str().is_some_and(|e| e.contains("/nonexistent/vars.env")));
}

/// Command lines of agent-exec processes that show `secret`.
fn cmdlines_with(secret: &str) -> Vec<String> {
    common::all_pids()
        .into_iter()
        .map(common::cmdline)
        .filter(|argv| argv.contains("agent-exec") && argv.contains(secret))
        .collect()
}

#[test]
fn masked_values_never_reach_any_output() {
    let env = Env::new();
    let secret = "s3cr3t-value-4711";
    let entry = format!("TOKEN={secret}");
    let script = "sleep 1; case $TOKEN in s3cr3t-*) test ${#TOKEN} -eq 17;; *) exit 1;; esac";
    let caller = env
        .command(&["run", "--wait", "--env", &entry, "--mask", "TOKEN", "--", "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // From the moment the job exists until it ends, sample the argv of every agent-exec
    // process (the caller included) for the secret.
    let mut leaks = Vec::new();
    let mut samples = 0;
    let root = env.root.clone();
    let job_exists = || {
        std::fs::read_dir(&root).is_ok_and(|d| d.flatten().any(|e| !e.file_name().to_string_lossy().starts_with('.')))
    };
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        if job_exists() {
            samples += 1;
            leaks.extend(cmdlines_with(secret));
        }
        if std::fs::read_dir(&root).is_ok_and(|d| {
            d.flatten()
                .any(|e| std::fs::read_to_string(e.path().join("state.json")).is_ok_and(|s| s.contains("finished_at")))
        }) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(samples > 10, "too few samples ({samples}) to say anything");
    assert!(leaks.is_empty(), "secret visible on a command line: {leaks:?}");
    let run = caller.wait_with_output().expect("wait");
    let value = common::single_json(&["run"], &run);
    assert_eq!(value["env_vars"], serde_json::json!(["TOKEN=***"]));
    assert_eq!(value["exit_code"], 0, "the job did not receive the real value");
    let id = value["job_id"].as_str().expect("id").to_string();
    let mut outputs = vec![run.stdout.clone()];
    for args in [&["status", &id][..], &["tail", &id], &["list"], &["wait", &id], &["--yaml", "status", &id]] {
        outputs.push(env.run(args).stdout);
    }
    for entry in std::fs::read_dir(env.job_dir(&id)).expect("read dir").flatten() {
        outputs.push(std::fs::read(entry.path()).unwrap_or_default());
    }
    for output in outputs {
        assert!(
            !String::from_utf8_lossy(&output).contains(secret),
            "secret leaked: {}",
            String::from_utf8_lossy(&output)
        );
    }
    let meta = env.read_json(&id, "meta.json");
    assert_eq!(meta["env_vars"], serde_json::json!(["TOKEN=***"]));
    assert_eq!(meta["mask"], serde_json::json!(["TOKEN"]));
}
