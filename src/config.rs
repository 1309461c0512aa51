//! `config.toml`: the shell wrapper (docs/compatibility.md §6.2: `--shell-wrapper`, else the file,
//! else `sh -lc`) and the default log cap (`[logs] max_bytes`, overridden by
//! `--max-log-bytes`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::wire::default_wrapper;

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    shell: Shell,
    #[serde(default)]
    logs: Logs,
}

#[derive(Deserialize, Default)]
struct Logs {
    max_bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Shell {
    unix: Option<Vec<String>>,
}

pub fn default_config_path() -> Option<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => Some(dir.join("agent-exec/config.toml")),
        _ => crate::jobstore::home_dir().map(|home| home.join(".config/agent-exec/config.toml")),
    }
}

pub fn resolve_wrapper(flag: Option<&str>, config: Option<&str>) -> Result<Vec<String>> {
    if let Some(flag) = flag {
        let words: Vec<String> = flag.split_ascii_whitespace().map(str::to_string).collect();
        if words.is_empty() {
            return Err(Error::internal("--shell-wrapper must not be empty"));
        }
        return Ok(words);
    }
    let Some((path, parsed)) = read(config)? else { return Ok(default_wrapper()) };
    match parsed.shell.unix {
        Some(words) if words.is_empty() => {
            Err(Error::internal(format!("config file shell wrapper must not be empty (from {})", path.display())))
        }
        Some(words) => Ok(words),
        None => Ok(default_wrapper()),
    }
}

/// The log cap: `--max-log-bytes` (already checked as a number), else `[logs]
/// max_bytes`, else none. 0 means no cap.
pub fn max_log_bytes(flag: Option<&str>, config: Option<&str>) -> Result<Option<u64>> {
    let bytes = match flag {
        Some(flag) => flag.parse::<u64>().ok(),
        None => read(config)?.and_then(|(_, parsed)| parsed.logs.max_bytes),
    };
    Ok(bytes.filter(|&n| n > 0))
}

/// Reads the config file, if there is one.
fn read(config: Option<&str>) -> Result<Option<(PathBuf, ConfigFile)>> {
    // An explicit --config that does not exist falls through to the built-in default,
    // not to the default config file.
    let Some(path) = config.map(PathBuf::from).or_else(default_config_path) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read config file {}", path.display()), e)),
    };
    let parsed: ConfigFile = toml::from_str(&text)
        .map_err(|e| Error::internal(format!("parse config file {}: {}", path.display(), e.to_string().trim_end())))?;
    Ok(Some((path, parsed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_config(text: &str) -> Result<Vec<String>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write");
        resolve_wrapper(None, path.to_str())
    }

    #[test]
    fn flag_wins_and_is_split_on_whitespace() {
        assert_eq!(resolve_wrapper(Some(" bash  -c "), None).ok(), Some(vec!["bash".into(), "-c".into()]));
        assert!(resolve_wrapper(Some("  "), None).is_err());
    }

    #[test]
    fn config_file_rules() {
        assert_eq!(with_config("[shell]\nunix = [\"bash\", \"-lc\"]\n").ok(), Some(vec!["bash".into(), "-lc".into()]));
        assert_eq!(with_config("[other]\nx = 1\n").ok(), Some(default_wrapper()));
        assert!(with_config("[shell]\nunix = []\n").is_err());
        assert!(with_config("not = [toml").is_err());
        assert_eq!(resolve_wrapper(None, Some("/nonexistent/agent-exec.toml")).ok(), Some(default_wrapper()));
    }

    #[test]
    fn log_cap_from_flag_or_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[logs]\nmax_bytes = 1000\n").expect("write");
        assert_eq!(max_log_bytes(None, path.to_str()).ok(), Some(Some(1000)));
        assert_eq!(max_log_bytes(Some("20"), path.to_str()).ok(), Some(Some(20)));
        assert_eq!(max_log_bytes(Some("0"), path.to_str()).ok(), Some(None));
        assert_eq!(max_log_bytes(None, Some("/nonexistent/agent-exec.toml")).ok(), Some(None));
    }
}
