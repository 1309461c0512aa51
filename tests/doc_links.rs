//! The repository explains itself without dead ends: every relative link in README.md,
//! ARCHITECTURE.md and docs/*.md names a file inside the repository and, when that file
//! is Markdown, an anchor it defines; every section or open point that code or docs cite
//! in the plain-text form of docs/README.md ("the specification's file, then § and a
//! number, or OP- and a number") has its anchor. Nothing here runs the binary.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex_lite::Regex;

const COMPATIBILITY_DOC: &str = "docs/compatibility.md";
const OPEN_POINTS_DOC: &str = "docs/decisions.md";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The Markdown files whose links are checked, relative to `root`.
fn checked_markdown(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|entry| PathBuf::from("docs").join(entry.expect("read docs/").file_name()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The lines of a Markdown text that are prose: fenced code blocks dropped, inline code
/// spans removed (an example of a link is not a link). Numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str, String)> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let outside_code: String = line.split('`').step_by(2).collect();
        lines.push((index + 1, line, outside_code));
    }
    lines
}

/// Link targets with their line: inline links and images, reference definitions, and
/// `href`/`src` attributes.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let inline = Regex::new(r#"\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)"#).unwrap();
    let definition = Regex::new(r"^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)").unwrap();
    let attribute = Regex::new(r#"\b(?:href|src)="([^"]+)""#).unwrap();
    let mut targets = Vec::new();
    for (line_no, _, line) in prose_lines(text) {
        for pattern in [&inline, &definition, &attribute] {
            for found in pattern.captures_iter(&line) {
                targets.push((line_no, found[1].to_string()));
            }
        }
    }
    targets
}

/// The anchor GitHub derives from a heading: lower case, punctuation dropped, spaces as
/// hyphens.
fn heading_slug(heading: &str) -> String {
    static LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap());
    let text = LINK.replace_all(heading, "$1");
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown text defines: explicit `id`/`name` attributes and heading
/// slugs (a repeated slug gets `-1`, `-2`, ... as on GitHub).
fn anchors(text: &str) -> BTreeSet<String> {
    let explicit = Regex::new(r#"<a\s+(?:id|name)="([^"]+)""#).unwrap();
    let heading = Regex::new(r"^#{1,6}\s+(.*?)\s*#*\s*$").unwrap();
    let mut found = BTreeSet::new();
    for (_, line, outside_code) in prose_lines(text) {
        for id in explicit.captures_iter(&outside_code) {
            found.insert(id[1].to_string());
        }
        // The heading keeps its code spans: GitHub derives the slug from their text.
        if let Some(title) = heading.captures(line) {
            let slug = heading_slug(&title[1]);
            let mut candidate = slug.clone();
            let mut n = 0;
            while found.contains(&candidate) {
                n += 1;
                candidate = format!("{slug}-{n}");
            }
            found.insert(candidate);
        }
    }
    found
}

fn is_external(target: &str) -> bool {
    static SCHEME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").unwrap());
    target.starts_with("//") || SCHEME.is_match(target)
}

/// `relative` (a path inside the repository) joined with `target` and normalised
/// lexically; `None` when the result leaves the repository.
fn inside_repo(relative_dir: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    for component in relative_dir.join(target).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// What is wrong with the links of one Markdown file (`file` relative to `root`): one
/// line per dead link, naming the file, line and target.
fn dead_links(root: &Path, file: &Path) -> Vec<String> {
    let text = read(&root.join(file));
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    let mut anchors_of: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    for (line_no, target) in link_targets(&text) {
        if is_external(&target) {
            continue;
        }
        let (path_part, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let where_ = format!("{}:{line_no}: {target}", file.display());
        let resolved = if path_part.is_empty() {
            file.to_path_buf()
        } else {
            match inside_repo(dir, path_part) {
                Some(path) => path,
                None => {
                    problems.push(format!("{where_}: points outside the repository"));
                    continue;
                }
            }
        };
        if !root.join(&resolved).exists() {
            problems.push(format!("{where_}: no such file {}", resolved.display()));
            continue;
        }
        let is_markdown = resolved.extension().is_some_and(|ext| ext == "md");
        if let Some(anchor) = anchor.filter(|a| !a.is_empty() && is_markdown) {
            let known = anchors_of.entry(resolved.clone()).or_insert_with(|| anchors(&read(&root.join(&resolved))));
            if !known.contains(anchor) {
                problems.push(format!("{where_}: {} has no anchor #{anchor}", resolved.display()));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_resolves() {
    let root = repo();
    let mut problems = Vec::new();
    for file in checked_markdown(&root) {
        problems.extend(dead_links(&root, &file));
    }
    assert!(problems.is_empty(), "dead links:\n{}", problems.join("\n"));
}

/// Text files that may cite the specification: code, tests, man page sources, the skill
/// bundle and the Markdown at the top and in docs/.
fn citing_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.map(|e| e.expect("read directory entry")) {
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs" || ext == "md" || ext == "roff") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["src", "tests", "man/src", "skills", "docs"] {
        walk(&root.join(dir), &mut files);
    }
    files.extend(["README.md", "ARCHITECTURE.md"].map(|name| root.join(name)));
    files.sort();
    files
}

/// The anchors cited in `text`: `c-N-M` for a section, `op-N` for an open point. A list
/// continues the citation before it (", §8.10" or ", OP-19"), also across a line break
/// inside a comment.
fn cited_anchors(text: &str) -> Vec<String> {
    let more = r"(?:,\s*(?://[/!]?\s*)?";
    let section = r"§[0-9]+(?:\.[0-9]+)?";
    let sections =
        Regex::new(&format!(r"{} {section}{more}{section})*", regex_lite::escape(COMPATIBILITY_DOC))).unwrap();
    let open_points =
        Regex::new(&format!(r"{} OP-[0-9]+{more}OP-[0-9]+)*", regex_lite::escape(OPEN_POINTS_DOC))).unwrap();
    let number = Regex::new(r"(§|OP-)([0-9]+(?:\.[0-9]+)?)").unwrap();
    let mut cited = Vec::new();
    for citation in sections.find_iter(text).chain(open_points.find_iter(text)) {
        for found in number.captures_iter(citation.as_str()) {
            let prefix = if &found[1] == "§" { "c" } else { "op" };
            cited.push(format!("{prefix}-{}", found[2].replace('.', "-")));
        }
    }
    cited
}

#[test]
fn every_cited_section_and_open_point_has_its_anchor() {
    let root = repo();
    let sections = anchors(&read(&root.join(COMPATIBILITY_DOC)));
    let open_points = anchors(&read(&root.join(OPEN_POINTS_DOC)));
    let mut problems = Vec::new();
    for file in citing_files(&root) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for anchor in cited_anchors(&text) {
            let known = if anchor.starts_with("op-") { &open_points } else { &sections };
            if !known.contains(&anchor) {
                problems.push(format!("{}: cites #{anchor}, which does not exist", file.display()));
            }
        }
    }
    assert!(problems.is_empty(), "citations without an anchor:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_reports_a_missing_file_a_missing_anchor_and_an_escape() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    std::fs::create_dir(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/b.md"), "<a id=\"c-1\"></a>\n## Heading Two\n").unwrap();
    let page = "[ok](b.md#c-1) [slug](b.md#heading-two) [self](#top)\n\
                <a id=\"top\"></a>\n\
                [gone](missing.md) [anchor](b.md#c-9) [out](../../etc/passwd)\n\
                `[code](not-checked.md)`\n\
                ```\n[fenced](not-checked-either.md)\n```\n\
                [web](https://example.com/x.md#nothing)\n";
    std::fs::write(root.join("docs/a.md"), page).unwrap();
    let problems = dead_links(root, Path::new("docs/a.md"));
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("docs/a.md:3: missing.md: no such file"), "{problems:#?}");
    assert!(problems[1].contains("b.md#c-9: docs/b.md has no anchor #c-9"), "{problems:#?}");
    assert!(problems[2].contains("../../etc/passwd: points outside the repository"), "{problems:#?}");
}

#[test]
fn headings_get_the_anchors_github_gives_them() {
    assert_eq!(heading_slug("Decisions on the contract's open points"), "decisions-on-the-contracts-open-points");
    assert_eq!(heading_slug("8.3 `start`: launch a created job"), "83-start-launch-a-created-job");
    assert_eq!(heading_slug("See [the map](ARCHITECTURE.md)"), "see-the-map");
    let found = anchors("# Same\n## Same\n```\n# not a heading\n```\n");
    assert_eq!(found, BTreeSet::from(["same".to_string(), "same-1".to_string()]));
}

#[test]
fn citations_are_read_with_their_continuations() {
    let code = format!(
        "// ({COMPATIBILITY_DOC} §8.9, §8.10, {OPEN_POINTS_DOC} OP-18, OP-19)\n//! x ({OPEN_POINTS_DOC} OP-3,\n//! OP-8). ({COMPATIBILITY_DOC} §6)"
    );
    assert_eq!(cited_anchors(&code), ["c-8-9", "c-8-10", "c-6", "op-18", "op-19", "op-3", "op-8"]);
}
