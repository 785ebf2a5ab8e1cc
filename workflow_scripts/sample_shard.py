"""sample_shard: images for one shard of a prompt plan, written as a tar in one atomic step."""

import json

from loguru import logger

from genbench.core.artifacts import write_part_manifest
from genbench.core.config import SAMPLING_SPEED_DEFAULTS
from genbench.generation.sampling import sample_shard, split_into_shards
from genbench.models.generators import apply_speed_options, load_text_to_image_pipeline
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
p = job.params
with open(job.input_dir("plan") / "plan.jsonl", encoding="utf-8") as f:
    plan = [json.loads(line) for line in f]
rows = split_into_shards(plan, p["shard_size"])[snakemake.params.shard]
pipe = load_text_to_image_pipeline(
    job.generator_source(),
    device=p["device"],
    dtype=p["dtype"],
    scheduler=p["scheduler"],
    safety_checker=p["safety_checker"],
)
apply_speed_options(pipe, **{k: p.get(k, default) for k, default in SAMPLING_SPEED_DEFAULTS.items()})
if job.has_input("embeddings"):  # textual-inversion strategies: one learned token per class
    from genbench.generation.textual_inversion import load_learned_embeds

    folder = job.input_dir("embeddings")
    files = sorted(f for f in job.input_manifest("embeddings")["files"] if f.endswith(".safetensors"))
    load_learned_embeds(pipe, [folder / f for f in files])
sample_shard(
    pipe,
    rows,
    snakemake.output.shard,
    steps=p["steps"],
    guidance=p["guidance"],
    height=p["height"],
    width=p["width"],
    output_size=p["output_size"],
    resize_filter=p["resize_filter"],
    batch_size=job.runtime["batch_size"],
    device=p["device"],
    log=logger.info,
)
write_part_manifest(snakemake.output.shard, job.key, job.cache)
