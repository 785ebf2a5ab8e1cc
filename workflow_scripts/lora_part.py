"""lora_part: train one LoRA of the generator (the dataset's, or one class's) on its references."""

from loguru import logger

from genbench.core.artifacts import write_part_manifest
from genbench.injection.lora import LoraParams, train_part
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
train_part(
    job.generator_source(),
    job.input_dir("references") / "references.jsonl",
    job.dataset_info(),
    job.stage_params(LoraParams),
    snakemake.params.part,
    snakemake.output.adapter,
    log=logger.info,
)
write_part_manifest(snakemake.output.adapter, job.key, job.cache)
