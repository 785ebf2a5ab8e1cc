"""prepare: the real train/val/test splits in the canonical image-set form."""

from loguru import logger

from genbench.data.prepare import PrepareParams, prepare_splits
from genbench.workflow.job import check_input_unchanged, start_job

job = start_job(snakemake)
params = job.stage_params(PrepareParams)
if params.source.get("type") == "torchvision":
    job.use_torch()
if params.root and params.data["kind"] not in ("package", "download"):  # what the plan fingerprinted, still
    check_input_unchanged(params.root, params.data, job.cache)
with job.writer() as w:
    w.summary.update(prepare_splits(job.dataset_info(), params, w.dir, log=logger.info))
