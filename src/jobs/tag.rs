//! `tag set`: replace a job's tags under the job lock.

use crate::error::Result;
use crate::jobstore::Root;
use crate::wire::TagSetBody;

/// `tags` are already checked and deduplicated by the front door.
pub fn tag_set(root: &Root, given: &str, tags: Vec<String>) -> Result<TagSetBody> {
    let job = root.lookup(given)?;
    let locked = job.lock()?;
    let mut meta = locked.read_meta()?;
    meta.tags = tags.clone();
    locked.write_meta(&meta)?;
    Ok(TagSetBody { job_id: job.id.clone(), tags })
}
