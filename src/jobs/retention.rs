//! `gc`'s count and size policies beside `--older-than` (issue 10): `--keep N` keeps
//! the newest N finished jobs, `--max-bytes SIZE` keeps the newest finished jobs whose
//! directories fit in SIZE together. A job selected by any policy (age included) is
//! deleted. Pure: it ranks what it is given.

use std::collections::BTreeMap;

/// A finished job as the policies see it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: String,
    /// `finished_at`, else `updated_at` (the gc timestamp).
    pub stamp: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Policies {
    pub keep: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl Policies {
    pub fn any(&self) -> bool {
        self.keep.is_some() || self.max_bytes.is_some()
    }

    /// The jobs these policies select for deletion, with the reason to report.
    pub fn select(&self, mut jobs: Vec<Finished>) -> BTreeMap<String, String> {
        // Newest first; ties by id, which is a ULID and so sorts by creation.
        jobs.sort_by(|a, b| b.stamp.cmp(&a.stamp).then_with(|| b.id.cmp(&a.id)));
        let mut selected = BTreeMap::new();
        let mut total: u64 = 0;
        for (rank, job) in jobs.into_iter().enumerate() {
            total = total.saturating_add(job.bytes);
            if let Some(keep) = self.keep.filter(|&keep| rank as u64 >= keep) {
                selected.insert(job.id, format!("keep_{keep}"));
            } else if let Some(max) = self.max_bytes.filter(|&max| total > max) {
                selected.insert(job.id, format!("max_bytes_{max}"));
            }
        }
        selected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, stamp: &str, bytes: u64) -> Finished {
        Finished { id: id.to_string(), stamp: stamp.to_string(), bytes }
    }

    fn jobs() -> Vec<Finished> {
        vec![
            job("A", "2026-01-01T00:00:01Z", 100),
            job("C", "2026-01-01T00:00:03Z", 100),
            job("B", "2026-01-01T00:00:02Z", 100),
        ]
    }

    #[test]
    fn keep_selects_all_but_the_newest() {
        let selected = Policies { keep: Some(1), max_bytes: None }.select(jobs());
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(selected["A"], "keep_1");
        assert!(Policies { keep: Some(3), max_bytes: None }.select(jobs()).is_empty());
    }

    #[test]
    fn max_bytes_keeps_the_newest_that_fit() {
        let selected = Policies { keep: None, max_bytes: Some(250) }.select(jobs());
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["A"]);
        assert_eq!(Policies { keep: None, max_bytes: Some(0) }.select(jobs()).len(), 3);
    }
}
