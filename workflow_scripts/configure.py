"""configure: the dataset's metadata (classes, slugs, templates, metric, splits) as one JSON."""

import json

from genbench.data.datasets import ConfigureParams
from genbench.workflow.job import start_job

job = start_job(snakemake)
dataset = job.stage_params(ConfigureParams).dataset
with job.writer() as w:
    with open(w.path("dataset.json"), "w", encoding="utf-8") as f:
        json.dump(dataset, f, indent=2, ensure_ascii=False)
    w.summary.update(name=dataset["name"], num_classes=len(dataset["classes"]))
