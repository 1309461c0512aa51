//! Request bodies of the front doors that take JSON: HTTP `POST /exec` and the MCP tool
//! inputs. **API boundary**: field names and the unknown-field rules are the contract
//! of those doors (every body refuses unknown keys, so a misspelt argument is an error
//! naming it rather than a silent default).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The `POST /exec` body (docs/compatibility.md §11.2). `null` counts as absent. Unknown keys
/// are refused (issue 16: 0.1.18 ignored them, so `"tags"` silently made an untagged
/// job). `until_ms` is our addition: the bound for `wait: true` (default 30000, at most
/// `serve --max-wait-ms`, like `/wait`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub command: Option<Vec<String>>,
    pub cwd: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
    pub wait: Option<bool>,
    pub until_ms: Option<u64>,
}

/// A job's command: an argv array (exec'd as given) or one shell string (run by the
/// shell wrapper), exactly as the CLI treats one word or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "an array of strings (argv) or a string (shell command)")]
pub enum CommandLine {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    pub command: CommandLine,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub mask: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub kill_after_ms: Option<u64>,
    pub snapshot_after_ms: Option<u64>,
    pub tail_lines: Option<u64>,
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub wait: bool,
    pub until_ms: Option<u64>,
}

/// How the MCP `run` and `start` watch the job before answering (serde cannot flatten a
/// struct into one that denies unknown fields, so both inputs carry these fields
/// themselves and this gathers them).
#[derive(Debug, Clone, Copy)]
pub struct McpObserve {
    pub snapshot_after_ms: Option<u64>,
    pub tail_lines: Option<u64>,
    pub max_bytes: Option<u64>,
    pub wait: bool,
    pub until_ms: Option<u64>,
}

impl RunInput {
    pub fn observe(&self) -> McpObserve {
        McpObserve {
            snapshot_after_ms: self.snapshot_after_ms,
            tail_lines: self.tail_lines,
            max_bytes: self.max_bytes,
            wait: self.wait,
            until_ms: self.until_ms,
        }
    }
}

impl StartInput {
    pub fn observe(&self) -> McpObserve {
        McpObserve {
            snapshot_after_ms: self.snapshot_after_ms,
            tail_lines: self.tail_lines,
            max_bytes: self.max_bytes,
            wait: self.wait,
            until_ms: self.until_ms,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    pub command: CommandLine,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub mask: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub kill_after_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    pub job_id: String,
    pub snapshot_after_ms: Option<u64>,
    pub tail_lines: Option<u64>,
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub wait: bool,
    pub until_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    pub job_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailInput {
    pub job_id: String,
    pub lines: Option<u64>,
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitInput {
    pub job_id: String,
    pub until_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillInput {
    pub job_id: String,
    pub signal: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    pub state: Option<String>,
    pub cwd: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagSetInput {
    pub job_id: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteInput {
    pub job_id: Option<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// Writes every whole number spelled as a float (`222.0`, `1e3`) as the integer it is.
/// JSON has one number type and JSON Schema counts `2.0` as an integer, so a client (or
/// its JSON library) may send either spelling; serde's integer types take only the
/// second. A float beyond the integers it can name exactly is left as it is, and so is
/// refused where an integer is expected.
pub fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            let Some(float) = number.as_f64().filter(|f| number.is_f64() && f.fract() == 0.0) else { return };
            // 2^64 and -2^63 are exact as floats; the casts below are exact inside them.
            if (0.0..18_446_744_073_709_551_616.0).contains(&float) {
                *value = Value::from(float as u64);
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&float) {
                *value = Value::from(float as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// A serde error on a JSON object: the message, and the top-level field it concerns
/// when serde's message does not name one itself.
#[derive(Debug)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

/// Deserializes a JSON object into its typed input, naming the field a failure is about:
/// pretty printing puts every top-level field on lines of its own, so the error's line
/// tells which field was wrong even when serde's message does not (a wrong type).
pub fn typed_object<T: DeserializeOwned>(object: &Value) -> Result<T, FieldError> {
    let mut object = object.clone();
    whole_numbers(&mut object);
    let text = serde_json::to_string_pretty(&object).unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        // These messages name their field themselves (in backquotes).
        let named = ["unknown field", "missing field", "duplicate field"].iter().any(|m| message.starts_with(m));
        let field = if named { None } else { field_at(&text, e.line()) };
        FieldError { field, message }
    })
}

/// The top-level key whose value spans `line` (1-based) of a pretty-printed object.
fn field_at(text: &str, line: usize) -> Option<String> {
    text.lines().take(line).collect::<Vec<_>>().into_iter().rev().find_map(|l| {
        let rest = l.strip_prefix("  \"")?;
        (!rest.starts_with(' ')).then(|| rest.split('"').next().unwrap_or_default().to_string())
    })
}
