"""fewshot: a seeded K-shot subset of the prepared train split (ELEVATER's sampler)."""

from loguru import logger

from genbench.data.fewshot import FewShotParams, k_shot_subset
from genbench.workflow.job import start_job

job = start_job(snakemake)
params = job.stage_params(FewShotParams)
with job.writer() as w:
    train = job.input_dir("prepare") / "train.jsonl"
    w.summary.update(k_shot_subset(train, w.dir, params, job.dataset_info(), log=logger.warning))
