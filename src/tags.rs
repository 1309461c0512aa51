//! Tag and tag-pattern syntax (docs/compatibility.md §9). Both are checked while parsing arguments, so
//! an invalid tag is a usage error and never reaches the store.

pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err(format!("invalid tag \"{tag}\": tag must not be empty"));
    }
    if tag.ends_with(".*") {
        return Err(format!("invalid tag \"{tag}\": a stored tag cannot end with '.*'"));
    }
    for segment in tag.split('.') {
        if segment.is_empty() {
            return Err(format!("invalid tag \"{tag}\": empty segment (leading, trailing or doubled '.')"));
        }
        if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!("invalid tag \"{tag}\": segments may contain only ASCII letters, digits and '-'"));
        }
    }
    Ok(())
}

/// A pattern is an exact tag or `<tag>.*`.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let exact = pattern.strip_suffix(".*").unwrap_or(pattern);
    check_tag(exact).map_err(|_| {
        format!("invalid tag pattern \"{pattern}\": expected a tag or '<tag>.*' (e.g. 'ci' or 'project.*')")
    })
}

/// Does any of `tags` satisfy `pattern`? `x.*` matches `x` itself and anything below it.
pub fn matches<T: AsRef<str>>(pattern: &str, tags: &[T]) -> bool {
    let mut tags = tags.iter().map(AsRef::as_ref);
    match pattern.strip_suffix(".*") {
        Some(prefix) => tags.any(|t| {
            t == prefix || (t.len() > prefix.len() && t.starts_with(prefix) && t.as_bytes()[prefix.len()] == b'.')
        }),
        None => tags.any(|t| t == pattern),
    }
}

/// Removes duplicates, keeping the first occurrence of each tag in order.
pub fn dedup(tags: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        if !out.iter().any(|t| t == tag) {
            out.push((*tag).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_tags() {
        for tag in ["ci", "project.build", "hoge-fuga.v2", "A1", "-", "a.b.c"] {
            assert!(check_tag(tag).is_ok(), "{tag}");
        }
        for tag in ["", "bad tag", "bad_tag", "a..b", ".a", "a.", "a.*", "ünï", "*"] {
            assert!(check_tag(tag).is_err(), "{tag}");
        }
    }

    #[test]
    fn patterns() {
        for p in ["ci", "hoge.*", "a.b.*"] {
            assert!(check_pattern(p).is_ok(), "{p}");
        }
        for p in ["*", ".*", "a.*.b", "a*", "", "a.**"] {
            assert!(check_pattern(p).is_err(), "{p}");
        }
    }

    #[test]
    fn prefix_patterns_match_the_bare_tag_and_children_only() {
        let tags = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches("hoge.*", &tags(&["hoge"])));
        assert!(matches("hoge.*", &tags(&["x", "hoge.sub.deep"])));
        assert!(!matches("hoge.*", &tags(&["hogehoge"])));
        assert!(matches("ci", &tags(&["ci"])));
        assert!(!matches("ci", &tags(&["ci.x"])));
    }

    #[test]
    fn dedup_keeps_first_occurrence() {
        assert_eq!(dedup(&["b", "a", "b", "c", "a"]), vec!["b", "a", "c"]);
    }
}
