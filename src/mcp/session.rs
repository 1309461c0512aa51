//! The `initialize` handshake: protocol revision, server identity, capabilities and the
//! instructions an agent reads once.

use serde_json::{Value, json};

use super::framing::ErrorObject;

/// Revisions we speak, newest first. 2025-11-25 is what the official Python SDK
/// (`mcp` 2.x, `mcp_types.version.LATEST_HANDSHAKE_VERSION`) asks for in `initialize`;
/// 2025-06-18 is the first revision with `structuredContent` and `outputSchema`. Our
/// messages are the same in both.
pub const SUPPORTED: [&str; 2] = ["2025-11-25", "2025-06-18"];

const INSTRUCTIONS: &str = "agent-exec runs shell commands as supervised background jobs that outlive this \
conversation turn. Start a command with `run` (it answers within a few seconds with a job_id, the state and \
an output snapshot; quick commands are already finished by then). For anything long, do not block: keep \
working and come back later with `status`, `tail` (recent output) or `wait` (blocks at most the server's \
bound, then reports the current state; call it again if still running). Stop a job with `kill`; find jobs \
with `list`; clean up finished ones with `delete`. Every answer's structuredContent is the JSON object the \
agent-exec CLI prints.";

/// The revision to answer with: the client's if we speak it, else our newest, as the
/// specification says (the client then decides whether it can go on).
pub fn negotiate(requested: &str) -> &'static str {
    SUPPORTED.iter().find(|version| **version == requested).copied().unwrap_or(SUPPORTED[0])
}

pub fn initialize(params: &Value) -> Result<Value, ErrorObject> {
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorObject::invalid_params("protocolVersion: missing or not a string"))?;
    Ok(json!({
        "protocolVersion": negotiate(requested),
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "agent-exec", "title": "agent-exec", "version": env!("CARGO_PKG_VERSION")},
        "instructions": INSTRUCTIONS,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_known_revisions_and_answers_others_with_the_newest() {
        assert_eq!(negotiate("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("2025-11-25"), "2025-11-25");
        assert_eq!(negotiate("2024-11-05"), "2025-11-25");
        assert_eq!(negotiate("zzz"), "2025-11-25");
    }

    #[test]
    fn initialize_needs_a_protocol_version() {
        assert!(initialize(&json!({})).is_err());
        let result = initialize(&json!({"protocolVersion": "2025-06-18"})).expect("ok");
        assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(result["capabilities"]["tools"].is_object());
    }
}
