//! `install-skills` (docs/compatibility.md §8.14, docs/decisions.md OP-23): put a skill directory under
//! `.agents/skills/` and record it in `.agents/.skill-lock.json`.
//!
//! What we replace, precisely: a `self` install writes the embedded files into
//! `skills/agent-exec/`, creating it if needed and overwriting only those files; it never
//! removes a directory. A `local:` install puts a symlink at `skills/<name>`. An existing
//! entry at either destination is replaced only when it is a symlink that the lock file
//! records as one of our `local:` installs; any other file, directory or symlink is left
//! untouched and the command fails with `internal_error`, so a user's own skill is never
//! deleted by a re-install.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::{Code, Error, Result};
use crate::jobstore::{home_dir, write_atomic};
use crate::wire::{InstallSkillsBody, InstalledSkill, Reply};

const LOCK_FILE: &str = ".skill-lock.json";
const SELF_NAME: &str = "agent-exec";

/// The built-in bundle (docs/compatibility.md §13): relative path and content.
pub const BUNDLE: &[(&str, &str)] = &[
    ("SKILL.md", include_str!("../../skills/agent-exec/SKILL.md")),
    ("references/cli-contract.md", include_str!("../../skills/agent-exec/references/cli-contract.md")),
    ("references/completion-events.md", include_str!("../../skills/agent-exec/references/completion-events.md")),
    ("references/openclaw.md", include_str!("../../skills/agent-exec/references/openclaw.md")),
];

enum Source {
    Builtin,
    Local(String),
}

/// `spec` is `--source` (default `self`), `global` is `--global`.
pub fn install_skills(spec: &str, global: bool) -> Result<Reply> {
    let source = match spec {
        "self" => Source::Builtin,
        _ => match spec.strip_prefix("local:") {
            Some(path) => Source::Local(path.to_string()),
            None => {
                return Err(Error::new(
                    Code::UnknownSourceScheme,
                    format!("unknown_source_scheme: \"{spec}\" (supported: self, local:<path>)"),
                ));
            }
        },
    };
    let agents = agents_dir(global)?;
    let skills_dir = agents.join("skills");
    let lock_path = agents.join(LOCK_FILE);
    let mut lock = read_lock(&lock_path);
    let (name, dest) = match &source {
        Source::Builtin => {
            let dest = skills_dir.join(SELF_NAME);
            install_builtin(&dest, &lock)?;
            (SELF_NAME.to_string(), dest)
        }
        Source::Local(path) => {
            let name = skill_name(path)?;
            let dest = skills_dir.join(&name);
            install_local(Path::new(path), &dest, &name, &lock)?;
            (name, dest)
        }
    };
    let source_type = match &source {
        Source::Builtin => "self".to_string(),
        Source::Local(path) => format!("local:{path}"),
    };
    let dest_text = dest.to_string_lossy().into_owned();
    let entry = json!({
        "name": name,
        "source_type": source_type,
        "installed_at": crate::time::now(),
        "path": dest_text,
    });
    match lock.iter_mut().find(|e| e["name"] == name.as_str()) {
        Some(existing) => *existing = entry,
        None => lock.push(entry),
    }
    write_lock(&agents, &lock_path, lock)?;
    let body = InstallSkillsBody {
        skills: vec![InstalledSkill { name, source_type, path: dest_text }],
        global,
        lock_file_path: lock_path.to_string_lossy().into_owned(),
    };
    Ok(Reply::new("install_skills", &body))
}

fn agents_dir(global: bool) -> Result<PathBuf> {
    if global {
        home_dir()
            .map(|home| home.join(".agents"))
            .ok_or_else(|| Error::internal("cannot determine the home directory for --global"))
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(".agents"))
            .map_err(|e| Error::io("cannot determine the current directory", e))
    }
}

/// The last component of the path as given; `.`, `..`, `/` and empty have none.
fn skill_name(path: &str) -> Result<String> {
    match Path::new(path).components().next_back() {
        Some(std::path::Component::Normal(name)) => Ok(name.to_string_lossy().into_owned()),
        _ => Err(Error::internal(format!("cannot determine skill name from path: {path:?}"))),
    }
}

fn install_builtin(dest: &Path, lock: &[Value]) -> Result<()> {
    if fs::symlink_metadata(dest).is_ok_and(|m| !m.is_dir()) {
        remove_our_symlink(dest, SELF_NAME, lock)?;
    }
    for (relative, content) in BUNDLE {
        let path = dest.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
        fs::write(&path, content).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    }
    Ok(())
}

fn install_local(source: &Path, dest: &Path, name: &str, lock: &[Value]) -> Result<()> {
    let target =
        fs::canonicalize(source).map_err(|e| Error::io(format!("skill source {} not found", source.display()), e))?;
    if fs::symlink_metadata(dest).is_ok() {
        remove_our_symlink(dest, name, lock)?;
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
    }
    if symlink(&target, dest).is_err() {
        // Some file systems refuse symlinks; the contract falls back to a copy.
        copy_tree(&target, dest)?;
    }
    Ok(())
}

/// Removes `dest` only if it is a symlink the lock file records as a `local:` install
/// of `name` (docs/decisions.md OP-23); everything else is refused.
fn remove_our_symlink(dest: &Path, name: &str, lock: &[Value]) -> Result<()> {
    let is_symlink = fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink());
    let ours =
        lock.iter().any(|e| e["name"] == name && e["source_type"].as_str().is_some_and(|s| s.starts_with("local:")));
    if !(is_symlink && ours) {
        return Err(Error::internal(format!(
            "refusing to replace {}: it was not installed by agent-exec as a symlink; remove it first",
            dest.display()
        )));
    }
    fs::remove_file(dest).map_err(|e| Error::io(format!("remove {}", dest.display()), e))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| Error::io(format!("create {}", to.display()), e))?;
    let entries = fs::read_dir(from).map_err(|e| Error::io(format!("read {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("read {}", from.display()), e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(|e| Error::io(format!("copy {}", src.display()), e))?;
        }
    }
    Ok(())
}

/// The lock file's entries. Missing or unrecognised content is an empty list; the legacy
/// `{"skills": {"<name>": {...}}}` map becomes a list, keeping each entry's fields.
fn read_lock(path: &Path) -> Vec<Value> {
    let Some(value) = fs::read_to_string(path).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) else {
        return Vec::new();
    };
    match value.get("skills") {
        Some(Value::Array(entries)) => entries.iter().filter(|e| e.is_object()).cloned().collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, fields)| {
                let mut entry = serde_json::Map::new();
                entry.insert("name".into(), Value::String(name.clone()));
                if let Value::Object(fields) = fields {
                    entry.extend(fields.iter().filter(|(k, _)| *k != "name").map(|(k, v)| (k.clone(), v.clone())));
                }
                Value::Object(entry)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn write_lock(agents: &Path, path: &Path, entries: Vec<Value>) -> Result<()> {
    fs::create_dir_all(agents).map_err(|e| Error::io(format!("create {}", agents.display()), e))?;
    let text = serde_json::to_string_pretty(&json!({ "skills": entries }))
        .map_err(|e| Error::internal(format!("serialize {}: {e}", path.display())))?;
    write_atomic(agents, LOCK_FILE, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skill_names() {
        assert_eq!(skill_name("a/b/my-skill/").unwrap(), "my-skill");
        assert_eq!(skill_name("x").unwrap(), "x");
        for bad in ["", ".", "/", "a/.."] {
            assert!(skill_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_reference_in_skill_md_is_in_the_bundle() {
        let skill = BUNDLE[0].1;
        assert!(skill.starts_with("---\nname: agent-exec\ndescription: "));
        for (path, _) in &BUNDLE[1..] {
            assert!(skill.contains(path), "SKILL.md does not mention {path}");
        }
        for word in skill.split(|c: char| c.is_whitespace() || "()`[]".contains(c)) {
            if word.starts_with("references/") {
                let word = word.trim_end_matches(['.', ',', ':', ';']);
                assert!(BUNDLE.iter().any(|(p, _)| *p == word), "SKILL.md refers to missing {word}");
            }
        }
    }
}
