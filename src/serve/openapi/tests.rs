use serde_json::Value;

use super::*;
use crate::serve::routes::route;

const CONFIG: Config = Config { max_wait_ms: 1234, token: true };

fn parsed() -> Value {
    serde_json::from_str(&document(&CONFIG)).expect("the document is JSON")
}

#[test]
fn every_operation_routes_back_to_its_route() {
    const REAL: &str = "01J9ZK3M8E5PQRSTVWYZ12ABCD";
    for sample in routes() {
        let operations = describe(&sample);
        assert!(!operations.is_empty(), "{sample:?} is not described");
        for operation in operations {
            let routed = route(operation.method, &operation.path.replace(ID, REAL));
            let expected = format!("{sample:?}").replace(ID, REAL);
            assert_eq!(format!("{routed:?}"), expected, "{} {}", operation.method, operation.path);
        }
    }
}

#[test]
fn the_document_has_every_operation_and_the_servers_bound() {
    let document = parsed();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let count: usize = routes().iter().map(|r| describe(r).len()).sum();
    let paths = document["paths"].as_object().expect("paths");
    assert_eq!(paths.values().map(|p| p.as_object().expect("path item").len()).sum::<usize>(), count);
    assert!(document.to_string().contains("at most 1234 ms"));
    assert!(!document.to_string().contains("{max_wait_ms}"));
    assert_eq!(document["security"], serde_json::json!([{ "bearer": [] }]));
    let links = &document["paths"]["/v1/jobs"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["get_v1_jobs_id"]["parameters"]["id"], "$response.body#/job_id");
    assert!(links.get("get_status_id").is_none(), "a v1 job links to v1 operations");
    assert!(document["paths"]["/exec"]["post"]["responses"]["200"]["links"].get("get_status_id").is_some());
    let open: Value = serde_json::from_str(&super::document(&Config { max_wait_ms: 1, token: false })).expect("json");
    assert!(open.get("security").is_none());
    assert!(open["paths"]["/v1/jobs"]["get"]["responses"].get("401").is_none());
}

/// Every `$ref` of the document points at something in it.
#[test]
fn every_reference_resolves() {
    fn walk(value: &Value, document: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let pointer = target.strip_prefix('#').expect("a local reference");
                    assert!(document.pointer(pointer).is_some(), "dangling {target}");
                }
                map.values().for_each(|inner| walk(inner, document));
            }
            Value::Array(items) => items.iter().for_each(|inner| walk(inner, document)),
            _ => {}
        }
    }
    let document = parsed();
    walk(&document, &document);
}

/// Every request field and query parameter is described, and every description
/// names something that exists.
#[test]
fn descriptions_cover_exactly_the_fields_and_parameters() {
    let mut wanted: Vec<(Option<&str>, &str)> = Vec::new();
    for sample in routes() {
        wanted.extend(sample.params().iter().map(|param| (None, param.name)));
        for operation in describe(&sample) {
            if let Some(body) = operation.body {
                wanted.extend((body.reflect)().fields.iter().map(|field| (Some(body.name), field.name)));
            }
        }
    }
    let missing: Vec<_> = wanted.iter().filter(|(within, name)| fields::doc_of(*within, name).is_none()).collect();
    assert!(missing.is_empty(), "no description for {missing:?}");
    let known: std::collections::BTreeSet<String> = wanted
        .iter()
        .flat_map(|(within, name)| [name.to_string()].into_iter().chain(within.map(|body| format!("{body}.{name}"))))
        .collect();
    let orphans: Vec<_> = fields::DOCS.iter().map(|doc| doc.name).filter(|name| !known.contains(*name)).collect();
    assert!(orphans.is_empty(), "descriptions of nothing: {orphans:?}");
}

#[test]
fn the_index_links_paths_of_the_document() {
    let document = parsed();
    let index: Value = serde_json::from_str(&index().json).expect("index");
    assert_eq!(index["type"], "index");
    assert_eq!(index["openapi"], "/openapi.json");
    for (name, path) in index["links"].as_object().expect("links") {
        let path = path.as_str().expect("a path");
        assert!(document["paths"].get(path).is_some(), "link {name} -> {path} is not in the document");
    }
    assert_eq!(index["links"]["jobs"], "/v1/jobs");
}

/// The router's own table (`routes::endpoint`, read from its source: one line per path
/// with its methods) against the document: a route added there without being described
/// here fails this test even if `describe` was given an arm for it.
#[test]
fn every_route_of_the_routers_table_is_documented() {
    let source = include_str!("../routes.rs");
    let table = source.split("fn endpoint(").nth(1).and_then(|rest| rest.split("\n}\n").next()).expect("endpoint");
    let method = regex_lite::Regex::new(r#"\("([A-Z]+)", Route::"#).expect("regex");
    let literal = regex_lite::Regex::new(r#""(/[^"]*)""#).expect("regex");
    let action = regex_lite::Regex::new(r#"^Some\("([a-z]+)"\) => Job\("#).expect("regex");
    let word = regex_lite::Regex::new(r#"^"([a-z]+)" => Job\("#).expect("regex");
    let document = parsed();
    let mut checked = 0;
    for line in table.lines().map(str::trim) {
        let paths: Vec<String> = if line.contains("=> return fixed(") {
            literal.captures_iter(line).map(|c| c[1].to_string()).collect()
        } else if line.starts_with("None => Job(") {
            vec!["/v1/jobs/{id}".to_string()]
        } else if let Some(c) = action.captures(line) {
            vec![format!("/v1/jobs/{{id}}/{}", &c[1])]
        } else if let Some(c) = word.captures(line) {
            vec![format!("/{}/{{id}}", &c[1])]
        } else {
            continue;
        };
        for path in &paths {
            for m in method.captures_iter(line) {
                let operation = &document["paths"][path.as_str()][m[1].to_ascii_lowercase()];
                assert!(
                    operation.is_object(),
                    "the router answers {} {path}; the document does not describe it",
                    &m[1]
                );
                checked += 1;
            }
        }
    }
    let documented: usize = routes().iter().map(|route| describe(route).len()).sum();
    assert_eq!(checked, documented, "the router's table and the document differ in size (or the table's form changed)");
}
