"""textual_inversion: gather the per-class learned tokens into one artifact (tokens.json)."""

import json

from genbench.core.artifacts import adopt_parts
from genbench.injection.references import class_token
from genbench.workflow.job import start_job

job = start_job(snakemake)
info = job.dataset_info()
tokens = {str(i): class_token(info.name, slug) for i, slug in enumerate(info.slugs)}
with job.writer(adopt=["tokens"]) as w:
    adopt_parts(w, snakemake.input.tokens, job.key, job.cache)  # each class as its own job recorded it
    with open(w.path("tokens.json"), "w", encoding="utf-8") as f:
        json.dump(tokens, f, indent=1, sort_keys=True)
    w.summary.update(classes=len(tokens))
