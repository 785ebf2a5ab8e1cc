"""text_classifier: per class, the normalised mean of the normalised template embeddings."""

import numpy as np

from genbench.evaluation.encoders import load_encoder
from genbench.evaluation.features import build_text_classifier
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
info = job.dataset_info()
encoder = load_encoder(job.encoder_spec(), device=job.params["device"])
classifier = build_text_classifier(encoder, list(info.classes), list(info.templates))
with job.writer() as w:
    np.save(w.path("text_classifier.npy"), classifier.astype(np.float32))
    w.summary.update(classes=int(classifier.shape[0]), dim=int(classifier.shape[1]), encoder=encoder.name)
