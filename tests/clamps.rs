//! Bounds lowered to their maximum are reported, with one shape everywhere:
//! `"clamped": {"<field>": <the value used>}`, present only when a clamp happened, so
//! answers to requests within the bounds stay byte-identical to 0.1.18's.

mod common;
mod serve_support;

use serde_json::json;

use common::Env;
use serve_support::Server;

#[test]
fn cli_snapshot_window_above_the_maximum_is_reported() {
    let env = Env::new();
    let clamped = env.ok(&["run", "--snapshot-after", "20000", "--", "true"]);
    assert_eq!(clamped["clamped"], json!({"snapshot_after_ms": 10000}), "{clamped}");
    assert_eq!(clamped["state"], "exited");
    for within in ["10000", "0"] {
        let plain = env.ok(&["run", "--snapshot-after", within, "--", "true"]);
        assert!(plain.get("clamped").is_none(), "{plain}");
    }
    // With --wait the window is not used, so nothing is clamped.
    let waited = env.ok(&["run", "--wait", "--snapshot-after", "20000", "--", "true"]);
    assert!(waited.get("clamped").is_none(), "{waited}");
    let id = env.ok(&["create", "--", "true"])["job_id"].as_str().expect("id").to_string();
    let started = env.ok(&["start", "--snapshot-after", "99999", &id]);
    assert_eq!(started["clamped"], json!({"snapshot_after_ms": 10000}), "{started}");
}

#[test]
fn http_wait_bounds_above_the_maximum_are_reported() {
    let env = Env::new();
    let server = Server::start(&env, &[]);
    let exec = server.post("/exec", r#"{"command":["true"],"wait":true,"until_ms":9999999}"#).json();
    assert_eq!(exec["clamped"], json!({"until_ms": 600000}), "{exec}");
    let id = exec["job_id"].as_str().expect("id").to_string();
    let within = server.post("/exec", r#"{"command":["true"],"wait":true,"until_ms":600000}"#).json();
    assert!(within.get("clamped").is_none(), "{within}");
    // Without wait the bound is not used.
    let no_wait = server.post("/exec", r#"{"command":["true"],"until_ms":9999999}"#).json();
    assert!(no_wait.get("clamped").is_none(), "{no_wait}");

    let clamped = server.get(&format!("/wait/{id}?until=9999999"));
    assert_eq!(clamped.status, 200);
    assert_eq!(clamped.json()["clamped"], json!({"until_ms": 600000}), "{}", clamped.body);
    assert!(clamped.body.contains(r#""clamped":{"until_ms":600000}"#), "{}", clamped.body);
    for path in [format!("/wait/{id}?until=600000"), format!("/wait/{id}")] {
        let plain = server.get(&path);
        assert!(!plain.body.contains("clamped"), "{}", plain.body);
    }
}
