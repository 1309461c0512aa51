//! JSON Schema pieces of the OpenAPI document: the response definitions of
//! schema/agent-exec.schema.json moved to `components/schemas` (draft-07 to the 2020-12
//! dialect of OpenAPI 3.1), and the schemas of request bodies and query parameters
//! generated from their reflected serde types (`wire::reflect`).

use serde_json::{Map, Value, json};

use super::fields;
use crate::wire::SCHEMA_DOCUMENT;
use crate::wire::reflect::{Shape, Struct};

/// What text the server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// No NUL: the v1 routes refuse one anywhere (no path, argv word or variable can hold
    /// one), as a 400 naming the field or parameter.
    NoNul,
    /// Anything: `POST /exec` keeps 0.1.18's answer to a NUL (a job recorded failed).
    Any,
}

/// Where component schemas live in the document.
pub const COMPONENTS: &str = "#/components/schemas/";

/// The response definitions as OpenAPI components. Draft-07 and 2020-12 differ here only
/// in where definitions live (`definitions` becomes the document's components, so every
/// `$ref` is rewritten) and in the `$schema` of the root, which is dropped: OpenAPI 3.1
/// schemas use its 2020-12 dialect. Keywords beside a `$ref` are applied by 2020-12 and
/// ignored by draft-07; beside the file's `$ref`s there are only annotations
/// (descriptions), which mean the same in both, and a unit test keeps it so.
pub fn response_components() -> Map<String, Value> {
    let mut document: Value = serde_json::from_str(SCHEMA_DOCUMENT).unwrap_or_else(|e| panic!("embedded schema: {e}"));
    let Some(Value::Object(definitions)) = document.get_mut("definitions").map(Value::take) else {
        panic!("embedded schema has no definitions")
    };
    definitions.into_iter().map(|(name, mut schema)| (name, rewrite_refs(&mut schema).take())).collect()
}

fn rewrite_refs(value: &mut Value) -> &mut Value {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix("#/definitions/") {
                            *target = format!("{COMPONENTS}{name}");
                        }
                    }
                    (_, inner) => {
                        rewrite_refs(inner);
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| {
            rewrite_refs(item);
        }),
        _ => {}
    }
    value
}

/// A `$ref` to a component.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{COMPONENTS}{name}") })
}

/// The schema of a request body: its fields, which are required, and (with
/// `deny_unknown_fields`) that no other key is allowed. `require` names fields the
/// handler requires although their type does not (`/exec`'s `command` is an `Option` so
/// that its absence gets 0.1.18's message): present, not null, not empty.
pub fn body(fields_of: &Struct, within: &str, require: &[&str], text: Text) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &fields_of.fields {
        let demanded = require.contains(&field.name);
        let mut schema = match (&field.shape, demanded) {
            (Shape::Optional(inner), true) => non_empty(shape(inner, field.name, text)),
            (other, true) => non_empty(shape(other, field.name, text)),
            (other, false) => shape(other, field.name, text),
        };
        describe(&mut schema, Some(within), field.name);
        properties.insert(field.name.to_string(), schema);
        if field.required || demanded {
            required.push(field.name);
        }
    }
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    if fields_of.closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

fn non_empty(mut schema: Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => schema["minItems"] = json!(1),
        Some("string") => schema["minLength"] = json!(1),
        _ => {}
    }
    schema
}

/// Adds the field's description, examples and constraints from the field table
/// (`within`: the body's component name; `None` for a query parameter).
pub fn describe(schema: &mut Value, within: Option<&str>, name: &str) {
    if let (Some(Value::Object(extra)), Some(target)) = (fields::constraints(name), schema.as_object_mut()) {
        target.extend(extra);
    }
    if let Some(doc) = fields::doc_of(within, name) {
        schema["description"] = json!(doc.text);
        if let Some(examples) = doc.examples {
            let examples: Value = serde_json::from_str(examples).unwrap_or_else(|e| panic!("examples of {name}: {e}"));
            schema["examples"] = examples;
        }
    }
}

/// The JSON Schema of a reflected shape. `name` is the field's, for hints.
pub fn shape(shape_of: &Shape, name: &str, text: Text) -> Value {
    match shape_of {
        Shape::Bool => json!({ "type": "boolean" }),
        Shape::Unsigned { max } => json!({ "type": "integer", "minimum": 0, "maximum": max }),
        Shape::Signed => json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX }),
        Shape::Float => json!({ "type": "number" }),
        Shape::String => match text {
            Text::NoNul => json!({ "type": "string", "pattern": fields::NO_NUL }),
            Text::Any => json!({ "type": "string" }),
        },
        // serde reads `null` as `None`, so the schema says so.
        Shape::Optional(inner) => nullable(shape(inner, name, text)),
        Shape::Array(inner) => json!({ "type": "array", "items": shape(inner, name, text) }),
        Shape::Map(inner) => json!({ "type": "object", "additionalProperties": shape(inner, name, text) }),
        Shape::Struct(inner) => body(inner, name, &[], text),
        Shape::Choice(names) => json!({ "type": "string", "enum": names }),
        Shape::Any => fields::hint(name).unwrap_or_else(|| panic!("field '{name}' is read untyped and has no hint")),
    }
}

fn nullable(mut schema: Value) -> Value {
    match schema.get("type").cloned() {
        Some(Value::String(kind)) => {
            schema["type"] = json!([kind, "null"]);
            schema
        }
        _ => json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs_with_siblings(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                const ANNOTATIONS: [&str; 4] = ["$ref", "description", "title", "$comment"];
                if map.contains_key("$ref") && map.keys().any(|key| !ANNOTATIONS.contains(&key.as_str())) {
                    found.push(value.to_string());
                }
                map.values().for_each(|inner| refs_with_siblings(inner, found));
            }
            Value::Array(items) => items.iter().for_each(|inner| refs_with_siblings(inner, found)),
            _ => {}
        }
    }

    #[test]
    fn components_keep_every_definition_and_point_into_components() {
        let components = response_components();
        let source: Value = serde_json::from_str(SCHEMA_DOCUMENT).expect("schema");
        assert_eq!(components.len(), source["definitions"].as_object().expect("definitions").len());
        let text = Value::Object(components.clone()).to_string();
        assert!(!text.contains("#/definitions/"), "a reference was not rewritten");
        assert!(text.contains("\"$ref\":\"#/components/schemas/Envelope\""));
        let mut siblings = Vec::new();
        refs_with_siblings(&source, &mut siblings);
        assert!(siblings.is_empty(), "a $ref with assertions beside it means more in 2020-12: {siblings:?}");
    }

    #[test]
    fn optional_values_accept_null() {
        let optional = Shape::Optional(Box::new(Shape::Unsigned { max: 7 }));
        assert_eq!(
            shape(&optional, "x", Text::NoNul),
            json!({ "type": ["integer", "null"], "minimum": 0, "maximum": 7 })
        );
    }
}
