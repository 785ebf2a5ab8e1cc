"""pack_retrieval: K images per class of a retrieved set (top-K by CLIP score or retrieval
similarity, or seeded random), in the ELEVATER format."""

from loguru import logger

from genbench.evaluation.external import RetrievedPackParams
from genbench.workflow.job import start_job, write_external_pack

job = start_job(snakemake)
write_external_pack(job, job.stage_params(RetrievedPackParams), log=logger.warning)
