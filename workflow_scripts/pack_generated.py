"""pack_generated: K images per class of a generated set (top-K by CLIP score, or seeded
random), in the ELEVATER format."""

from loguru import logger

from genbench.evaluation.external import GeneratedPackParams
from genbench.workflow.job import start_job, write_external_pack

job = start_job(snakemake)
write_external_pack(job, job.stage_params(GeneratedPackParams), log=logger.warning)
