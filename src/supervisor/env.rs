//! The job's environment (docs/compatibility.md §6.4): our environment (unless `--no-inherit-env`),
//! then each env file, then each `--env` entry; later wins.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// Can `key` name a variable of the job? `execve` splits each entry at its first `=`, so
/// a key holding one would set another variable (`HOME=/evil` with value `x` sets
/// `HOME`), a NUL would cut the entry short, and an empty key names nothing. Shared by
/// every env input: `--env`, `--secret-env`, `--mask`, env files and HTTP `/exec`.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        Err("empty environment variable name".to_string())
    } else if key.contains('=') || key.contains('\0') {
        Err(format!("invalid environment variable name '{}': '=' and NUL are not allowed", key.escape_debug()))
    } else {
        Ok(())
    }
}

/// A key and its value; a value may hold `=` but not NUL.
pub fn check_pair(key: &str, value: &str) -> Result<(), String> {
    check_key(key)?;
    if value.contains('\0') {
        return Err(format!("invalid value of environment variable '{key}': NUL is not allowed"));
    }
    Ok(())
}

/// A `KEY=VALUE` entry as `--env` takes it.
pub fn check_entry(entry: &str) -> Result<(), String> {
    let (key, value) = split_entry(entry);
    check_pair(key, value)
}

/// Splits an entry at its first `=`; an entry without one is a key with an empty value.
pub fn split_entry(entry: &str) -> (&str, &str) {
    entry.split_once('=').unwrap_or((entry, ""))
}

/// Parses an env file: lines are trimmed, blank and `#` lines skipped, the rest split like
/// `--env`. No quotes, no `export`, no expansion: the value is the text as written.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = split_entry(line);
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The largest env file read. An exec cannot take an environment anywhere near this
/// big anyway (the kernel caps argv plus environment at a quarter of the stack limit),
/// and a bound keeps a huge file (a log passed by mistake) out of the supervisor's memory.
const MAX_ENV_FILE: u64 = 4 << 20;

/// Reads an env file; only regular files are read, so a FIFO cannot hang the launch (the
/// open does not block, and the check is on the file opened, not on the name). A line
/// whose key `check_key` refuses (such as `=x`) fails the launch.
pub fn read_env_file(path: &str) -> Result<Vec<(String, String)>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("env file {path}: {e}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(fail)?;
    let metadata = file.metadata().map_err(fail)?;
    if !metadata.is_file() {
        return Err(format!("env file {path}: not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_ENV_FILE + 1).read_to_string(&mut text).map_err(fail)?;
    if text.len() as u64 > MAX_ENV_FILE {
        return Err(format!("env file {path}: larger than {MAX_ENV_FILE} bytes"));
    }
    // A refused line is named by its number only: the reason is recorded in
    // `state.json` and shown by `status`, and an env file holds secrets (a line without
    // `=`, say `TOKEN s3cr3t`, is all key).
    let lines = text.lines().enumerate().map(|(at, line)| (at + 1, line.trim()));
    for (number, line) in lines.filter(|(_, line)| !line.is_empty() && !line.starts_with('#')) {
        let (key, value) = split_entry(line);
        let problem = if key.is_empty() {
            "an empty variable name"
        } else if key.contains('\0') {
            "a NUL in the variable name"
        } else if value.contains('\0') {
            "a NUL in the value"
        } else {
            continue;
        };
        return Err(format!("env file {path}: line {number} has {problem}"));
    }
    Ok(parse_env_file(&text))
}

pub fn build(inherit: bool, env_files: &[String], entries: &[String]) -> Result<BTreeMap<OsString, OsString>, String> {
    let mut env: BTreeMap<OsString, OsString> = if inherit { std::env::vars_os().collect() } else { BTreeMap::new() };
    for path in env_files {
        for (key, value) in read_env_file(path)? {
            env.insert(key.into(), value.into());
        }
    }
    for entry in entries {
        let (key, value) = split_entry(entry);
        env.insert(key.into(), value.into());
    }
    Ok(env)
}

/// The display copy of `--env` entries: masked keys become `KEY=***`.
pub fn masked(entries: &[String], mask: &[String]) -> Vec<String> {
    entries
        .iter()
        .map(|entry| {
            let (key, _) = split_entry(entry);
            if mask.iter().any(|m| m == key) { format!("{key}=***") } else { entry.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_at_the_first_equals_sign() {
        assert_eq!(split_entry("K=a=b"), ("K", "a=b"));
        assert_eq!(split_entry("BARE"), ("BARE", ""));
        assert_eq!(split_entry("=x"), ("", "x"));
    }

    #[test]
    fn keys_with_equals_nul_or_nothing_are_refused() {
        for bad in ["", "A=B", "A\0B"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_entry("=x").is_err());
        assert!(check_entry("K=a=b").is_ok());
        assert!(check_entry("BARE").is_ok());
        assert!(check_pair("K", "a\0b").is_err());
        assert!(check_pair("B ", " 2").is_ok());
    }

    #[test]
    fn env_file_follows_the_contract_literally() {
        let text = "# comment\n\n  A=1\n  B = 2 \nE=\"x\"\nexport D=4\nNOEQ\n\t#x=y\n";
        let parsed = parse_env_file(text);
        let expect = [("A", "1"), ("B ", " 2"), ("E", "\"x\""), ("export D", "4"), ("NOEQ", "")];
        assert_eq!(parsed, expect.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn later_sources_win() {
        let env = build(false, &[], &["A=1".into(), "A=2".into(), "B".into()]).unwrap_or_default();
        assert_eq!(env.get(&OsString::from("A")), Some(&OsString::from("2")));
        assert_eq!(env.get(&OsString::from("B")), Some(&OsString::new()));
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn masking_replaces_values_of_masked_keys_only() {
        let entries = vec!["TOKEN=s3cr3t".to_string(), "A=1".to_string(), "TOKEN".to_string()];
        assert_eq!(masked(&entries, &["TOKEN".to_string()]), ["TOKEN=***", "A=1", "TOKEN=***"]);
    }
}
