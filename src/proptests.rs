//! Property tests over every parser that takes user text: argv, tags and patterns,
//! signals, env files, config files, job ids, the tail algorithm and the YAML emitter.
//! The property is always the same: no panic, and an answer of the documented kind.

use std::ffi::OsString;

use proptest::prelude::*;

use crate::cli::{self, Parsed};

/// Words that steer the parser into its interesting paths, mixed with arbitrary text.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "run",
            "create",
            "start",
            "status",
            "tail",
            "wait",
            "kill",
            "list",
            "delete",
            "gc",
            "tag",
            "set",
            "notify",
            "schema",
            "serve",
            "completions",
            "help",
            "--",
            "-",
            "--root",
            "--yaml",
            "-v",
            "-vv",
            "-h",
            "--help",
            "-V",
            "--wait",
            "--until",
            "--forever",
            "--tag",
            "--state",
            "--signal",
            "--timeout",
            "--env",
            "--mask",
            "--output-pattern",
            "--output-match-type",
            "regex",
            "--limit",
            "--all",
            "--cwd",
            "--port",
            "--bind",
            "--older-than",
            "=",
            "--tag=a.*",
            "--timeout=5",
            "1",
            "0",
            "-1",
            "x",
            "",
        ])
        .prop_map(str::to_string),
        ".{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn argv_parsing_never_panics(words in prop::collection::vec(word(), 0..8)) {
        match cli::parse(words.iter().map(OsString::from)) {
            Parsed::Usage(message, usage) => {
                prop_assert!(!message.is_empty());
                prop_assert!(usage.starts_with("agent-exec"));
            }
            Parsed::Run(args) => {
                // Whatever parsed must satisfy the table's own rules.
                let given = |name: &str| args.command.flag(name).is_some_and(|flag| args.has(flag));
                for (a, b) in args.command.conflicts {
                    prop_assert!(!(given(a) && given(b)));
                }
                for (a, b) in args.command.requires {
                    prop_assert!(!given(a) || given(b));
                }
            }
            Parsed::Help(text) => prop_assert!(text.contains("Usage")),
            Parsed::Version | Parsed::Missing => {}
        }
    }

    #[test]
    fn tags_accept_exactly_the_documented_alphabet(tag in ".{0,20}") {
        let valid = !tag.is_empty()
            && !tag.ends_with(".*")
            && tag.split('.').all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        prop_assert_eq!(crate::tags::check_tag(&tag).is_ok(), valid);
        let _ = crate::tags::check_pattern(&tag);
    }

    #[test]
    fn signals_parse_or_explain(text in ".{0,10}") {
        match crate::signals::parse(&text) {
            Ok(requested) => prop_assert!((1..=64).contains(&requested.number)),
            Err(message) => prop_assert!(message.contains("invalid signal")),
        }
    }

    #[test]
    fn env_files_never_panic_and_keys_have_no_newlines(text in "(?s).{0,200}") {
        for (key, value) in crate::supervisor::parse_env_file(&text) {
            prop_assert!(!key.contains('\n') && !value.contains('\n'));
            prop_assert!(!key.starts_with('#'));
        }
    }

    #[test]
    fn config_files_never_panic(text in "(?s).{0,120}") {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(wrapper) = crate::config::resolve_wrapper(None, path.to_str()) {
            prop_assert!(!wrapper.is_empty());
        }
    }

    #[test]
    fn job_ids_that_validate_are_plain_path_components(id in ".{0,30}") {
        if crate::jobstore::valid_id(&id) {
            prop_assert!(!id.contains('/') && id != "." && id != ".." && !id.is_empty() && id.len() <= 26);
        }
    }

    #[test]
    fn tail_never_returns_more_lines_than_asked(bytes in prop::collection::vec(any::<u8>(), 0..300), n in 0u64..6) {
        let (text, truncated) = crate::tail::tail_text(&bytes, n);
        if n > 0 {
            prop_assert!(text.split('\n').count() as u64 <= n.max(1));
        } else {
            prop_assert!(!truncated);
        }
    }

    #[test]
    fn yaml_round_trips_through_a_real_parser(value in json_value()) {
        let json = serde_json::to_string(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let yaml = crate::output::to_yaml(&json).ok_or_else(|| TestCaseError::fail("no yaml"))?;
        // Every character written raw is in YAML 1.2's `c-printable` (§5.1), which
        // serde_yaml_ng does not check but stricter readers (PyYAML) do.
        let raw = |c: char| matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..);
        prop_assert!(yaml.chars().all(raw), "{:?}", yaml);
        let back: serde_json::Value = serde_yaml_ng::from_str(&yaml)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(back, value, "{}", yaml);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "(?s).{0,20}".prop_map(serde_json::Value::String),
        prop::sample::select(vec![
            "yes",
            "No",
            "~",
            "0.1",
            "1e3",
            "null",
            "- a",
            "a: b",
            " x",
            "x ",
            "#c",
            "'q'",
            "@",
            "`",
            "0x1F",
            "2026-03-15T12:00:00Z",
            "a\n",
            "\na",
            "a\r\nb",
            "a\u{fffe}b",
            "\u{ffff}\n\u{fffe}"
        ])
        .prop_map(|s| serde_json::Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_ ]{0,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
