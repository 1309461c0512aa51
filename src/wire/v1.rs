//! REST v1 request bodies (issue 16). Every field is named as the CLI flag in
//! snake_case, with `_ms` where the value is in milliseconds and the flag name lacks it
//! (as `/exec` and MCP name them). Unknown fields are refused, so a misspelt option is
//! a 400 naming it rather than a silent default; `null` counts as absent.

use std::collections::BTreeMap;

use super::{CommandLine, MatchType, StreamFilter};
use serde::Deserialize;

/// `POST /v1/jobs`: the options of `run` (and `create`, when `start` is not true).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobBody {
    /// Required; checked by the handler so that its absence is named like any field.
    pub command: Option<CommandLine>,
    pub cwd: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub env_files: Option<Vec<String>>,
    pub inherit_env: Option<bool>,
    pub mask: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub name: Option<String>,
    pub if_running: Option<IfRunningPolicy>,
    pub timeout_ms: Option<u64>,
    pub kill_after_ms: Option<u64>,
    pub progress_every_ms: Option<u64>,
    pub notify_command: Option<String>,
    pub notify_file: Option<String>,
    pub output_pattern: Option<String>,
    pub output_match_type: Option<MatchType>,
    pub output_stream: Option<StreamFilter>,
    pub output_command: Option<String>,
    pub output_file: Option<String>,
    pub max_log_bytes: Option<u64>,
    pub no_full_log: Option<bool>,
    /// The wrapper's argv (the CLI's `--shell-wrapper "PROG FLAGS"`, split).
    pub shell_wrapper: Option<Vec<String>>,
    /// `run --log PATH`.
    pub log: Option<String>,
    /// Run the job now (`run`) instead of only defining it (`create`).
    pub start: Option<bool>,
    pub snapshot_after_ms: Option<u64>,
    pub tail_lines: Option<u64>,
    pub max_bytes: Option<u64>,
    pub wait: Option<bool>,
    pub wait_poll_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub for_output: Option<String>,
    pub for_port: Option<u16>,
    pub for_host: Option<String>,
}

/// `run --if-running`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IfRunningPolicy {
    Reuse,
    Replace,
}

/// `POST /v1/jobs/{id}/start`: how to observe the job, as `start`'s flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    pub snapshot_after_ms: Option<u64>,
    pub tail_lines: Option<u64>,
    pub max_bytes: Option<u64>,
    pub wait: Option<bool>,
    pub wait_poll_ms: Option<u64>,
    pub until_ms: Option<u64>,
    pub for_output: Option<String>,
    pub output_match_type: Option<MatchType>,
    pub output_stream: Option<StreamFilter>,
    pub for_port: Option<u16>,
    pub for_host: Option<String>,
}

/// `POST /v1/jobs/{id}/kill`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillBody {
    pub signal: Option<String>,
}

/// `PUT /v1/jobs/{id}/tags`: the whole new set (`[]` clears it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    pub tags: Option<Vec<String>>,
}

/// `PATCH /v1/jobs/{id}/notify`: `notify set`'s options; absent keeps the current value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyBody {
    /// `--command`, also accepted under `run`'s name for it.
    #[serde(alias = "notify_command")]
    pub command: Option<String>,
    pub notify_file: Option<String>,
    pub output_pattern: Option<String>,
    pub output_match_type: Option<MatchType>,
    pub output_stream: Option<StreamFilter>,
    pub output_command: Option<String>,
    pub output_file: Option<String>,
}

/// `POST /v1/gc`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcBody {
    /// `<n>d`, `<n>h`, `<n>m`, `<n>s` or `<n>` seconds; default 30d.
    pub older_than: Option<String>,
    pub keep: Option<u64>,
    /// Bytes, or the CLI's size text with K, M or G.
    pub max_bytes: Option<Size>,
    pub dry_run: Option<bool>,
}

/// A size: a number of bytes or the CLI's text form (`10M`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a number of bytes or a size such as \"10M\"")]
pub enum Size {
    Bytes(u64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;
    use crate::wire::typed_object;

    fn refused<T: DeserializeOwned + std::fmt::Debug>(body: Value) -> (Option<String>, String) {
        let error = typed_object::<T>(&body).expect_err("must be refused");
        (error.field, error.message)
    }

    #[test]
    fn failures_name_their_field() {
        let (field, message) = refused::<JobBody>(json!({"command": "x", "tags": ["a"], "wait": "yes"}));
        assert_eq!(field.as_deref(), Some("wait"), "{message}");
        let (field, message) = refused::<JobBody>(json!({"command": "x", "tag": ["a"]}));
        assert!(field.is_none() && message.starts_with("unknown field `tag`"), "{message}");
        let (field, _) = refused::<JobBody>(json!({"command": ["x"], "for_port": 70000}));
        assert_eq!(field.as_deref(), Some("for_port"));
        let (field, _) = refused::<JobBody>(json!({"command": ["x"], "timeout_ms": -1}));
        assert_eq!(field.as_deref(), Some("timeout_ms"));
        let (field, _) = refused::<JobBody>(json!({"command": ["x"], "env": {"A": 1}}));
        assert_eq!(field.as_deref(), Some("env"));
        let (field, _) = refused::<JobBody>(json!({"command": ["x"], "output_stream": "both"}));
        assert_eq!(field.as_deref(), Some("output_stream"));
        let (field, _) = refused::<GcBody>(json!({"max_bytes": -3}));
        assert_eq!(field.as_deref(), Some("max_bytes"));
        let (field, message) = refused::<KillBody>(json!({"sig": "INT"}));
        assert!(field.is_none() && message.contains("`sig`"), "{message}");
    }

    #[test]
    fn good_bodies_are_typed() {
        let body: JobBody =
            typed_object(&json!({"command": ["ls", "-l"], "if_running": "reuse", "cwd": null})).expect("valid");
        assert!(matches!(body.command, Some(CommandLine::Argv(ref words)) if words.len() == 2));
        assert_eq!(body.if_running, Some(IfRunningPolicy::Reuse));
        let notify: NotifyBody = typed_object(&json!({"notify_command": "true"})).expect("alias");
        assert_eq!(notify.command.as_deref(), Some("true"));
        let gc: GcBody = typed_object(&json!({"max_bytes": "10M", "keep": 3})).expect("valid");
        // JSON Schema's integers include 3.0 (Schemathesis sends it): the integer 3.
        let whole: GcBody = typed_object(&json!({"max_bytes": 1e3, "keep": 3.0})).expect("whole floats");
        assert!(matches!((whole.keep, whole.max_bytes), (Some(3), Some(Size::Bytes(1000)))));
        let (field, _) = refused::<GcBody>(json!({"keep": 3.5}));
        assert_eq!(field.as_deref(), Some("keep"));
        assert!(matches!(gc.max_bytes, Some(Size::Text(ref t)) if t == "10M"));
    }
}
