"""text_classifier: per class, the normalised mean of the normalised template embeddings
(or the normalised embedding of one prompt)."""

import numpy as np

from genbench.evaluation.features import TextClassifierParams, text_classifier_of
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
info = job.dataset_info()
params = job.stage_params(TextClassifierParams)
classifier, encoder = text_classifier_of(job.encoder_spec(), params, info.classes, info.templates)
with job.writer() as w:
    np.save(w.path("text_classifier.npy"), classifier.astype(np.float32))
    w.summary.update(
        classes=int(classifier.shape[0]),
        dim=int(classifier.shape[1]),
        encoder=encoder.name,
        prompts=[params.prompt] if params.prompt else "templates",
    )
