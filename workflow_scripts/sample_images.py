"""sample_images: gather the shards of a generated set into one artifact (index + manifest)."""

from genbench.core.artifacts import adopt_parts
from genbench.generation.sampling import read_shard_metadata, write_image_index
from genbench.workflow.job import start_job

job = start_job(snakemake)
shards = list(snakemake.input.shards)
with job.writer(adopt=["shards"]) as w:
    adopt_parts(w, shards, job.key, job.cache)  # each shard as its own job recorded it
    count = write_image_index(shards, w.path("images.jsonl"), base_dir=job.out_dir)
    metadata = [m for shard in shards for m in read_shard_metadata(shard)]
    w.summary.update(images=count, shards=len(shards), black_or_nan=sum(m.get("black", False) for m in metadata))
