//! `config.toml`: the shell wrapper (docs/compatibility.md §6.2: `--shell-wrapper`, else the file,
//! else `sh -lc`) and the default log cap (`[logs] max_bytes`, overridden by
//! `--max-log-bytes`).

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::wire::default_wrapper;

/// A config file is a few lines; anything this big is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

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
    let Some(text) = read_text(&path)? else { return Ok(None) };
    let parsed: ConfigFile = toml::from_str(&text)
        .map_err(|e| Error::internal(format!("parse config file {}: {}", path.display(), e.to_string().trim_end())))?;
    Ok(Some((path, parsed)))
}

/// Reads the config file's text; `None` when it does not exist. A user's config may be a
/// symlink (to a dotfiles checkout, say), so the name is followed, but only a regular
/// file is read and at most `MAX_CONFIG_BYTES`: the open does not block and the check is
/// on the file opened, so a FIFO cannot hang `run`, `/exec` or MCP and `/dev/zero`
/// cannot fill memory.
fn read_text(path: &Path) -> Result<Option<String>> {
    let fail = |e: std::io::Error| Error::io(format!("read config file {}", path.display()), e);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    if !file.metadata().map_err(fail)?.is_file() {
        return Err(Error::internal(format!("read config file {}: not a regular file", path.display())));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(fail)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::internal(format!(
            "read config file {}: larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        )));
    }
    Ok(Some(text))
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
