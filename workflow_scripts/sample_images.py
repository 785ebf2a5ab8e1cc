"""sample_images: gather the shards of a generated set into one artifact (index + manifest)."""
from genbench.sampling import missing_shards, read_shard_metadata, write_image_index
from genbench.workflow import start_job

job = start_job(snakemake)
shards = list(snakemake.input.shards)
missing = missing_shards(shards)  # also removes temporary files of killed shard jobs
if missing:
    raise FileNotFoundError(f"sample_images: shards missing: {missing}")
with job.writer(adopt=["shards"]) as w:
    # Written beside the shards (not staged) so its paths read "shards/shard-00000.tar@<id>.png";
    # the manifest, written last, still marks the artifact finished.
    count = write_image_index(shards, job.out_dir / "images.jsonl")
    metadata = [m for shard in shards for m in read_shard_metadata(shard)]
    w.summary.update(images=count, shards=len(shards), black_or_nan=sum(m.get("black", False) for m in metadata))
