//! `tag set`: replace a job's tags under the job lock.

use crate::cli::Args;
use crate::error::Result;
use crate::jobstore::Root;
use crate::tags;
use crate::wire::{Reply, TagSetBody};

pub fn tag_set(args: &Args, root: &Root) -> Result<Reply> {
    let job = root.lookup(args.job_id())?;
    let new_tags = tags::dedup(&args.values("tag"));
    let _lock = job.lock()?;
    let mut meta = job.read_meta()?;
    meta.tags = new_tags.clone();
    job.write_meta(&meta)?;
    Ok(Reply::new("tag_set", &TagSetBody { job_id: job.id.clone(), tags: new_tags }))
}
