"""text_classifier: per class, the normalised mean of the normalised template embeddings
(or the normalised embedding of one prompt)."""

import numpy as np

from genbench.evaluation.encoders import load_encoder
from genbench.evaluation.features import build_text_classifier
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
info = job.dataset_info()
encoder = load_encoder(job.encoder_spec(), device=job.params["device"])
prompt = job.params.get("prompt")
classifier = build_text_classifier(encoder, list(info.classes), [prompt] if prompt else list(info.templates))
with job.writer() as w:
    np.save(w.path("text_classifier.npy"), classifier.astype(np.float32))
    w.summary.update(
        classes=int(classifier.shape[0]),
        dim=int(classifier.shape[1]),
        encoder=encoder.name,
        prompts=[prompt] if prompt else "templates",
    )
