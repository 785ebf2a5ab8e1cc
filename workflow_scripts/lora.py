"""lora: train the dataset's LoRA of the generator on its reference images."""

from loguru import logger

from genbench.injection.lora import LoraParams, train_dataset_lora
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
params = job.stage_params(LoraParams)
with job.writer() as w:
    stats = train_dataset_lora(
        job.generator_source(),
        job.input_dir("references") / "references.jsonl",
        job.dataset_info(),
        params,
        w.dir,
        log=logger.info,
    )
    w.summary.update(stats)
