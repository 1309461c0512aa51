//! `schema`: the response JSON Schema, compiled into the binary (docs/decisions.md OP-15) so the
//! command works from a lone binary in an empty directory, unlike 0.1.18 which looked
//! for a file next to the executable.

use crate::error::{Error, Result};
use crate::wire::{Reply, SCHEMA_DOCUMENT as DOCUMENT, SchemaBody};

pub fn schema() -> Result<Reply> {
    // The document is a compile-time constant checked by a unit test, so a parse failure
    // here would be a build defect; it is still reported as one object, not a panic.
    let schema: serde_json::Value =
        serde_json::from_str(DOCUMENT).map_err(|e| Error::internal(format!("embedded schema is invalid: {e}")))?;
    let generated_at = schema.get("$comment").and_then(|c| c.as_str()).unwrap_or("unknown").to_string();
    Ok(Reply::new("schema", &SchemaBody { schema_format: "json-schema-draft-07", schema, generated_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_document_keeps_the_0_1_18_shape() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("schema is JSON");
        assert_eq!(doc["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(doc["$comment"], "2026-02-19T00:00:00Z");
        assert_eq!(doc["title"], "agent-exec CLI response schema");
        let one_of: Vec<&str> = doc["oneOf"]
            .as_array()
            .expect("oneOf")
            .iter()
            .map(|r| r["$ref"].as_str().expect("$ref").trim_start_matches("#/definitions/"))
            .collect();
        let legacy = [
            "ErrorResponse",
            "RunResponse",
            "StatusResponse",
            "TailResponse",
            "WaitResponse",
            "KillResponse",
            "ListResponse",
            "SchemaResponse",
        ];
        assert_eq!(one_of[..legacy.len()], legacy);
        for name in one_of.iter().chain(&["Envelope", "ErrorDetail", "Snapshot", "JobSummary"]) {
            assert!(doc["definitions"][name].is_object(), "definition {name} missing");
        }
    }
}
