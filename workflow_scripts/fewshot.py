"""fewshot: a seeded K-shot subset of the prepared train split (ELEVATER's sampler)."""

from loguru import logger

from genbench.data.fewshot import check_shortfall, write_k_shot_subset
from genbench.workflow.job import start_job

job = start_job(snakemake)
p = job.params
info = job.dataset_info()
with job.writer() as w:
    summary = write_k_shot_subset(job.input_dir("prepare") / "train.jsonl", w.dir, p["k"], p["seed"], info.num_classes)
    check_shortfall(
        summary["shortfall"],
        p["k"],
        info.classes,
        job.runtime["on_shortfall"],
        f"fewshot {info.name} k={p['k']} seed={p['seed']}",
        log=logger.warning,
    )
    w.summary.update(summary)
