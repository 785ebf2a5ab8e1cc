"""sample_shard: images for one shard of a prompt plan, written as a tar in one atomic step."""

import json

from loguru import logger

from genbench.core.artifacts import write_part_manifest
from genbench.generation.sampling import (
    SamplingParams,
    load_references,
    load_sampling_pipeline,
    sample_shard,
    split_into_shards,
)
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
params = job.stage_params(SamplingParams)
with open(job.input_dir("plan") / "plan.jsonl", encoding="utf-8") as f:
    plan = [json.loads(line) for line in f]
rows = split_into_shards(plan, params.shard_size)[snakemake.params.shard]
embeddings = []
if job.has_input("embeddings"):  # textual-inversion strategies: one learned token per class
    folder = job.input_dir("embeddings")
    embeddings = [folder / f for f in sorted(job.input_manifest("embeddings")["files"]) if f.endswith(".safetensors")]
references = None
if job.has_input("references"):  # img2img strategies: each row starts from its reference image
    references = load_references(job.input_dir("references") / "references.jsonl", rows, params)
pipe = load_sampling_pipeline(job.generator_source(), params, embeddings)
adapters = None
if job.has_input("lora"):  # LoRA strategies: the dataset's adapter, or each class's
    from genbench.injection.lora import ClassAdapters

    adapters = ClassAdapters(pipe, job.input_dir("lora"), params.lora_scale)
sample_shard(pipe, rows, snakemake.output.shard, params, log=logger.info, references=references, adapters=adapters)
write_part_manifest(snakemake.output.shard, job.key, job.cache)
