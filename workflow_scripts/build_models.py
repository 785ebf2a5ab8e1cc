"""build_models: a tiny randomly initialised model built in code and saved with its library's
own save function, so the workflow loads it exactly as it loads a user's real weights."""

import json
from pathlib import Path

from genbench.models.tiny import TinyModelParams
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
params = job.stage_params(TinyModelParams)
kind = params.kind
with job.writer() as w:
    if kind == "tiny_generator":
        from genbench.models.tiny import TINY_GENERATORS

        TINY_GENERATORS[params.pipeline](w.dir, seed=params.seed)
        w.summary["pipeline"] = params.pipeline
    elif kind == "tiny_encoder":
        from genbench.models.tiny import build_tiny_open_clip

        spec = build_tiny_open_clip(w.dir, seed=params.seed)
        relative = {k: (Path(v).name if k in ("pretrained", "config") else v) for k, v in spec.items()}
        Path(w.path("encoder_spec.json")).write_text(json.dumps(relative, indent=2))
    elif kind == "tiny_text2text":
        from genbench.models.text2text import build_tiny_text2text

        build_tiny_text2text(w.dir, seed=params.seed)
    else:
        raise ValueError(f"build_models: unknown kind {kind!r}")
    w.summary["kind"] = kind
