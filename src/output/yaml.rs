//! A small YAML emitter for our responses. It reads the compact JSON the response was
//! serialized to (keeping key order, which `serde_json::Value` would sort) and writes a
//! block mapping. Strings are plain only when no YAML 1.1 or 1.2 reader could take them
//! for another type; otherwise they are single- or double-quoted, and multi-line text
//! uses a literal block (`|-`) when that round-trips exactly.

use std::fmt::Write;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// Converts one JSON document to YAML; `None` only if `json` is not valid JSON.
pub fn to_yaml(json: &str) -> Option<String> {
    let node: Node = serde_json::from_str(json).ok()?;
    let mut out = String::new();
    match &node {
        Node::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
        Node::Seq(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            write_inline(&mut out, other, 0);
            out.push('\n');
        }
    }
    Some(out)
}

fn write_map(out: &mut String, entries: &[(String, Node)], indent: usize) {
    for (key, value) in entries {
        pad(out, indent);
        out.push_str(&scalar_string(key, indent));
        out.push(':');
        write_value(out, value, indent);
    }
}

fn write_seq(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            Node::Map(entries) if !entries.is_empty() => {
                // The first key shares the dash's line; the rest align under it.
                out.push(' ');
                let mut nested = String::new();
                write_map(&mut nested, entries, indent + 2);
                out.push_str(&nested[indent + 2..]);
            }
            other => write_value(out, other, indent),
        }
    }
}

/// Writes what follows `key:` or `-`: a nested block on the next lines, or an inline value.
fn write_value(out: &mut String, value: &Node, indent: usize) {
    match value {
        Node::Map(entries) if !entries.is_empty() => {
            out.push('\n');
            write_map(out, entries, indent + 2);
        }
        Node::Seq(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        other => {
            out.push(' ');
            write_inline(out, other, indent);
            out.push('\n');
        }
    }
}

fn write_inline(out: &mut String, node: &Node, indent: usize) {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Node::Str(s) => out.push_str(&scalar_string(s, indent)),
        Node::Seq(_) => out.push_str("[]"),
        Node::Map(_) => out.push_str("{}"),
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn scalar_string(s: &str, indent: usize) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else if let Some(block) = literal_block(s, indent) {
        block
    } else if s.chars().all(|c| c == ' ' || c.is_ascii_graphic() || (!c.is_ascii() && !needs_escape(c))) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        double_quoted(s)
    }
}

fn is_yaml_break(c: char) -> bool {
    matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// YAML 1.2's `c-printable` (§5.1): a reader refuses anything else raw, such as U+FFFE
/// and U+FFFF (PyYAML: "unacceptable character"), so only a double-quoted `\u` escape can
/// carry it. Surrogates never occur in a Rust string.
fn is_yaml_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// What only a `\u` escape in a double-quoted scalar may carry: controls (tab, LF and CR
/// have their own escapes), characters outside `c-printable`, and the line breaks and
/// BOM of YAML 1.1.
fn needs_escape(c: char) -> bool {
    c.is_control() || !is_yaml_printable(c) || is_yaml_break(c)
}

/// Plain scalars are kept to a conservative alphabet and must not look like a bool, null
/// or number in either YAML 1.1 or 1.2.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_') {
        return false;
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    !matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null" | ".inf" | ".nan")
}

/// `|-` keeps every line as is and strips the final newline, so it only fits text that
/// has a line break, does not end in one, starts without a space and holds no characters
/// a block scalar cannot carry.
fn literal_block(s: &str, indent: usize) -> Option<String> {
    if !s.contains('\n') || s.ends_with('\n') || s.starts_with(' ') || s.starts_with('\n') {
        return None;
    }
    if s.chars().any(|c| c != '\n' && needs_escape(c)) {
        return None;
    }
    let mut out = String::from("|-");
    for line in s.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(&mut out, indent + 2);
            out.push_str(line);
        }
    }
    Some(out)
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::to_yaml;

    #[test]
    fn keeps_key_order_and_quotes_ambiguous_strings() {
        let yaml = to_yaml(
            r#"{"schema_version":"0.1","ok":true,"type":"tail","n":3,"t":"2026-03-15T12:00:00Z","e":"","y":"yes"}"#,
        );
        assert_eq!(
            yaml.as_deref(),
            Some("schema_version: '0.1'\nok: true\ntype: tail\n'n': 3\nt: '2026-03-15T12:00:00Z'\ne: ''\n'y': 'yes'\n")
        );
    }

    #[test]
    fn multi_line_strings_use_a_literal_block() {
        let yaml = to_yaml(r#"{"s":{"t":"a\n\nb"}}"#).unwrap_or_default();
        assert_eq!(yaml, "s:\n  t: |-\n    a\n\n    b\n");
    }

    #[test]
    fn sequences_of_maps_and_empty_collections() {
        let yaml = to_yaml(r#"{"jobs":[{"a":1,"b":[]},{"c":{}}],"tags":["x","y z"]}"#).unwrap_or_default();
        assert_eq!(yaml, "jobs:\n  - a: 1\n    b: []\n  - c: {}\ntags:\n  - x\n  - 'y z'\n");
    }

    /// U+FFFE and U+FFFF are not YAML 1.2 printable: they were put raw into a
    /// single-quoted scalar, which PyYAML rejects.
    #[test]
    fn non_printable_characters_are_escaped() {
        let yaml = to_yaml(r#"{"s":"a\ufffeb\uffffc\u007fd\u0085e","t":"x\ufffe\ny"}"#).unwrap_or_default();
        assert_eq!(yaml, "s: \"a\\uFFFEb\\uFFFFc\\u007Fd\\u0085e\"\nt: \"x\\uFFFE\\ny\"\n");
        assert_eq!(to_yaml(r#"{"s":"\ufffd é"}"#).as_deref(), Some("s: '\u{fffd} é'\n"));
    }

    #[test]
    fn control_characters_are_escaped() {
        let yaml = to_yaml(r#"{"s":"a\u0007b\r\n"}"#).unwrap_or_default();
        assert_eq!(yaml, "s: \"a\\u0007b\\r\\n\"\n");
    }
}
