//! `install-skills`: where the bundle goes, what the lock file records, and what an
//! install refuses to replace (docs/decisions.md OP-23). Each test has its own HOME and cwd.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{Env, write_file};

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

#[test]
fn self_installs_the_embedded_bundle_into_the_current_directory() {
    let env = Env::new();
    let reply = env.ok(&["install-skills"]);
    let agents = env.cwd.join(".agents");
    let dest = agents.join("skills/agent-exec");
    assert_eq!(reply["type"], "install_skills");
    assert_eq!(reply["global"], false);
    assert_eq!(reply["lock_file_path"], agents.join(".skill-lock.json").to_str().unwrap());
    assert_eq!(
        reply["skills"],
        serde_json::json!([{"name": "agent-exec", "source_type": "self", "path": dest.to_str().unwrap()}])
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("skills/agent-exec");
    for file in ["SKILL.md", "references/cli-contract.md", "references/completion-events.md", "references/openclaw.md"]
    {
        let installed = std::fs::read(dest.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(installed, std::fs::read(source.join(file)).unwrap(), "{file} differs from the source tree");
    }
    let lock_text = std::fs::read_to_string(agents.join(".skill-lock.json")).unwrap();
    assert!(lock_text.contains("\n  \"skills\": ["), "lock file is not pretty-printed: {lock_text}");
    let lock = read_json(&agents.join(".skill-lock.json"));
    assert_eq!(lock["skills"].as_array().unwrap().len(), 1);
    assert_eq!(lock["skills"][0]["name"], "agent-exec");
    assert!(lock["skills"][0]["installed_at"].as_str().unwrap().ends_with('Z'));

    // A second install overwrites our files, keeps the user's, and keeps one lock entry.
    write_file(&dest.join("SKILL.md"), "edited");
    write_file(&dest.join("notes.md"), "mine");
    env.ok(&["install-skills", "--source", "self"]);
    assert!(std::fs::read_to_string(dest.join("SKILL.md")).unwrap().starts_with("---\nname: agent-exec\n"));
    assert_eq!(std::fs::read_to_string(dest.join("notes.md")).unwrap(), "mine");
    assert_eq!(read_json(&agents.join(".skill-lock.json"))["skills"].as_array().unwrap().len(), 1);
}

#[test]
fn global_installs_under_home() {
    let env = Env::new();
    let reply = env.ok(&["install-skills", "--global"]);
    assert_eq!(reply["global"], true);
    assert!(env.home.join(".agents/skills/agent-exec/SKILL.md").is_file());
    assert!(env.home.join(".agents/.skill-lock.json").is_file());
    assert!(!env.cwd.join(".agents").exists());
}

#[test]
fn local_source_is_symlinked_and_reinstalling_replaces_only_our_symlink() {
    let env = Env::new();
    let skill = env.dir.path().join("src/my-skill");
    write_file(&skill.join("SKILL.md"), "---\nname: my-skill\n---\n");
    let spec = format!("local:{}/", skill.display());
    let reply = env.ok(&["install-skills", "--source", &spec]);
    let dest = env.cwd.join(".agents/skills/my-skill");
    assert_eq!(reply["skills"][0]["name"], "my-skill");
    assert_eq!(reply["skills"][0]["source_type"], spec.as_str());
    assert_eq!(std::fs::read_link(&dest).unwrap(), std::fs::canonicalize(&skill).unwrap());
    env.ok(&["install-skills", "--source", &spec]);
    env.ok(&["install-skills"]);
    let lock = read_json(&env.cwd.join(".agents/.skill-lock.json"));
    let names: Vec<&str> = lock["skills"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["my-skill", "agent-exec"]);
}

#[test]
fn an_entry_we_did_not_create_is_never_replaced() {
    let env = Env::new();
    let skill = env.dir.path().join("src/my-skill");
    write_file(&skill.join("SKILL.md"), "x");
    let theirs = env.cwd.join(".agents/skills/my-skill/SKILL.md");
    write_file(&theirs, "the user's own skill");
    let reply = env.err(&["install-skills", "--source", &format!("local:{}", skill.display())], "internal_error");
    assert!(reply["error"]["message"].as_str().unwrap().contains("refusing to replace"), "{reply}");
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "the user's own skill");
    assert!(!env.cwd.join(".agents/.skill-lock.json").exists());

    // An unrecorded symlink where the built-in bundle goes is refused too.
    let link = env.cwd.join(".agents/skills/agent-exec");
    std::os::unix::fs::symlink(&skill, &link).unwrap();
    env.err(&["install-skills"], "internal_error");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[test]
fn bad_sources() {
    let env = Env::new();
    let reply = env.err(&["install-skills", "--source", "git:https://x"], "unknown_source_scheme");
    assert_eq!(reply["error"]["message"], "unknown_source_scheme: \"git:https://x\" (supported: self, local:<path>)");
    env.err(&["install-skills", "--source", "local:"], "internal_error");
    env.err(&["install-skills", "--source", "local:."], "internal_error");
    env.err(&["install-skills", "--source", "local:/nonexistent/skill"], "internal_error");
}

#[test]
fn a_legacy_or_broken_lock_file_is_converted_or_replaced() {
    let env = Env::new();
    let lock_path = env.cwd.join(".agents/.skill-lock.json");
    write_file(&lock_path, r#"{"skills":{"other":{"source_type":"self","path":"/x"}}}"#);
    env.ok(&["install-skills"]);
    let lock = read_json(&lock_path);
    assert_eq!(lock["skills"][0]["name"], "other");
    assert_eq!(lock["skills"][0]["path"], "/x");
    assert_eq!(lock["skills"][1]["name"], "agent-exec");
    write_file(&lock_path, "not json");
    env.ok(&["install-skills"]);
    assert_eq!(read_json(&lock_path)["skills"].as_array().unwrap().len(), 1);
}
