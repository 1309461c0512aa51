//! The config file (`--config PATH`, `$XDG_CONFIG_HOME/agent-exec/config.toml`) as a FIFO
//! or `/dev/zero`: read with `read_to_string`, the FIFO hung `run`, serve's `/exec` and
//! MCP `run` forever and `/dev/zero` grew memory without bound. Only a regular file of
//! at most 1 MiB is read now (through a symlink too); anything else is an error naming
//! the file, at once.

mod common;
mod serve_support;

use std::path::Path;

use common::{Env, bounded, describe, mkfifo, single_json};
use serve_support::Server;

/// `run` answers a config error naming `file`, exit 1, and starts no job.
fn assert_config_error(env: &Env, args: &[&str], file: &Path) {
    let out = bounded(env.command(args), args);
    let value = single_json(args, &out);
    assert_eq!(out.status.code(), Some(1), "{}", describe(args, &out));
    assert_eq!(value["error"]["code"], "internal_error", "{}", describe(args, &out));
    let named = value["error"]["message"].as_str().is_some_and(|m| m.contains(&*file.to_string_lossy()));
    assert!(named, "{}", describe(args, &out));
    assert!(
        !env.root.exists()
            || std::fs::read_dir(&env.root)
                .expect("root")
                .all(|e| { e.expect("entry").file_name().to_string_lossy().starts_with('.') })
    );
}

fn default_config(env: &Env) -> std::path::PathBuf {
    let dir = env.home.join(".config/agent-exec");
    std::fs::create_dir_all(&dir).expect("config dir");
    dir.join("config.toml")
}

#[test]
fn a_fifo_or_dev_zero_config_is_an_error_not_a_hang() {
    let env = Env::new();
    let fifo = env.dir.path().join("fifo.toml");
    mkfifo(&fifo);
    let fifo_text = fifo.to_str().expect("utf-8");
    assert_config_error(&env, &["run", "--config", fifo_text, "--", "true"], &fifo);
    assert_config_error(&env, &["run", "--config", "/dev/zero", "--", "true"], Path::new("/dev/zero"));
    // The default config file, as a symlink to /dev/zero and then as a FIFO.
    let config = default_config(&env);
    std::os::unix::fs::symlink("/dev/zero", &config).expect("symlink");
    assert_config_error(&env, &["run", "--", "true"], &config);
    std::fs::remove_file(&config).expect("rm");
    mkfifo(&config);
    assert_config_error(&env, &["create", "--", "true"], &config);
}

#[test]
fn a_huge_config_is_refused_and_a_symlinked_one_is_read() {
    let env = Env::new();
    let config = default_config(&env);
    std::fs::write(&config, format!("# {}\n", "x".repeat(2 << 20))).expect("write");
    assert_config_error(&env, &["run", "--", "true"], &config);
    // A user's config may be a symlink to a regular file: it is followed.
    let real = env.dir.path().join("real.toml");
    std::fs::write(&real, "[shell]\nunix = [\"env\", \"FROM_CONFIG=yes\", \"sh\", \"-c\"]\n").expect("write");
    std::fs::remove_file(&config).expect("rm");
    std::os::unix::fs::symlink(&real, &config).expect("symlink");
    let answer = env.ok(&["run", "--snapshot-after", "5000", "--", "echo $FROM_CONFIG"]);
    assert_eq!(answer["snapshot"]["stdout_tail"], "yes", "{answer}");
}

#[test]
fn serve_exec_with_a_fifo_config_answers_an_error() {
    let env = Env::new();
    let config = default_config(&env);
    mkfifo(&config);
    let server = Server::start(&env, &[]);
    for _ in 0..3 {
        let reply = server.post("/exec", r#"{"command":["true"]}"#);
        reply.assert_error(500, "internal_error");
        assert!(reply.body.contains("config.toml"), "{}", reply.body);
    }
}
