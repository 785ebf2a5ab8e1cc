"""textual_inversion_class: learn one class's token embedding from its reference images."""

from loguru import logger

from genbench.core.artifacts import write_part_manifest
from genbench.injection.textual_inversion import TextualInversionParams, learn_class_token
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
learn_class_token(
    job.generator_source(),
    job.input_dir("references") / "references.jsonl",
    snakemake.params.class_id,
    job.dataset_info(),
    job.stage_params(TextualInversionParams),
    snakemake.output.token,
    log=logger.info,
)
write_part_manifest(snakemake.output.token, job.key, job.cache)
