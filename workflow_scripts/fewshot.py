"""fewshot: a seeded K-shot subset of the prepared train split (ELEVATER's sampler)."""
from genbench.fewshot import write_k_shot_subset
from genbench.workflow import start_job

job = start_job(snakemake)
p = job.params
num_classes = job.dataset_info().num_classes
with job.writer() as w:
    summary = write_k_shot_subset(job.input_dir("prepare") / "train.jsonl", w.dir, p["k"], p["seed"], num_classes)
    w.summary.update(summary)
