//! The caller's `PATH` survives the default login wrapper (issue 14 item 6).
//!
//! `sh -lc` reads the login profile, and Debian's `/etc/profile` (like many a
//! `~/.profile`) assigns `PATH` outright, so virtualenvs, `node_modules/.bin` and
//! project-local tools vanished from jobs. The profile must still run (it is why the
//! wrapper is a login shell), so the merge happens after it, in the shell: the `PATH`
//! the job was given comes first, then each entry the profile added that is not already
//! there. The given value travels in a variable the prelude removes again, so the
//! workload's environment holds only what it asked for.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// Carries the `PATH` the job was given past the profile; unset before the command runs.
const CARRIER: &str = "AGENT_EXEC_GIVEN_PATH";

/// Runs after the profile, before the command: no globbing, no `IFS` splitting, no
/// subshell, so it neither depends on nor changes the shell's options.
const PRELUDE: &str = r#"__agent_exec_rest=$PATH
PATH=$AGENT_EXEC_GIVEN_PATH
unset AGENT_EXEC_GIVEN_PATH
while [ -n "$__agent_exec_rest" ]; do
  __agent_exec_dir=${__agent_exec_rest%%:*}
  case $__agent_exec_rest in *:*) __agent_exec_rest=${__agent_exec_rest#*:} ;; *) __agent_exec_rest= ;; esac
  case ":$PATH:" in *":$__agent_exec_dir:"*) ;; *) [ -z "$__agent_exec_dir" ] || PATH=$PATH:$__agent_exec_dir ;; esac
done
unset __agent_exec_rest __agent_exec_dir
export PATH
"#;

/// Rewrites the job's argv and environment so that, under the default `sh -lc`
/// wrapper, the job's `PATH` starts with the one in `env`. A job given no `PATH`
/// (`--no-inherit-env` without `--env PATH=...`) keeps the profile's, and any other
/// wrapper is left alone: we know what `sh -lc` does with its script, not other shells.
pub fn keep_given_path(
    mut argv: Vec<String>,
    wrapper: &[String],
    env: &mut BTreeMap<OsString, OsString>,
) -> Vec<String> {
    let Some(given) = env.get(&OsString::from("PATH")).cloned() else { return argv };
    if wrapper != crate::wire::default_wrapper().as_slice() {
        return argv;
    }
    let Some(script) = argv.get_mut(wrapper.len()) else { return argv };
    *script = format!("{PRELUDE}{script}");
    env.insert(CARRIER.into(), given);
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(script: &str, path: Option<&str>) -> (Vec<String>, BTreeMap<OsString, OsString>) {
        let mut env = BTreeMap::new();
        if let Some(path) = path {
            env.insert(OsString::from("PATH"), OsString::from(path));
        }
        let argv = vec!["sh".to_string(), "-lc".to_string(), script.to_string()];
        let argv = keep_given_path(argv, &crate::wire::default_wrapper(), &mut env);
        (argv, env)
    }

    #[test]
    fn only_a_job_given_a_path_under_the_default_wrapper_is_changed() {
        let (argv, env) = login("echo hi", None);
        assert_eq!(argv[2], "echo hi");
        assert!(env.is_empty());
        let (argv, env) = login("echo hi", Some("/a:/b"));
        assert!(argv[2].starts_with(PRELUDE) && argv[2].ends_with("\necho hi"));
        assert_eq!(env.get(&OsString::from(CARRIER)), Some(&OsString::from("/a:/b")));
        let mut env = BTreeMap::from([(OsString::from("PATH"), OsString::from("/a"))]);
        let other = vec!["bash".to_string(), "-c".to_string()];
        let argv = keep_given_path(vec!["bash".into(), "-c".into(), "x".into()], &other, &mut env);
        assert_eq!(argv, ["bash", "-c", "x"]);
    }

    /// The prelude under a real `sh`, with a "profile" that resets PATH before it.
    #[test]
    fn the_prelude_merges_given_then_added_entries() {
        let script = format!(
            "PATH=/usr/bin:/bin:/opt/x::/usr/bin\n{PRELUDE}printf %s \"$PATH|${{AGENT_EXEC_GIVEN_PATH-unset}}\""
        );
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .env_clear()
            .env(CARRIER, "/given/bin:/bin:/usr/local/bin")
            .output()
            .expect("run sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/given/bin:/bin:/usr/local/bin:/usr/bin:/opt/x|unset");
    }
}
