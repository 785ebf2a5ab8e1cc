"""lora: gather the trained adapters (the dataset's, or one per class) into one artifact."""

import json

from genbench.core.artifacts import adopt_parts
from genbench.injection.lora import ADAPTERS_INDEX, LoraParams, adapters_index
from genbench.workflow.job import start_job

job = start_job(snakemake)
params = job.stage_params(LoraParams)
info = job.dataset_info()
with job.writer(adopt=["adapters"]) as w:
    adopt_parts(w, snakemake.input.adapters, job.key, job.cache)  # each adapter as its own job recorded it
    index = adapters_index(params.scope, info.num_classes)
    with open(w.path(ADAPTERS_INDEX), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
    w.summary.update(scope=params.scope, adapters=len(snakemake.input.adapters))
