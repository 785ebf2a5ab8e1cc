"""build_pool: a retrieval pool (img2dataset + clip-retrieval layout) from the dataset's own
train split, captioned with its first template - the demo's stand-in for LAION. The image
embeddings are the train split's features (already computed): no image is encoded again."""

from genbench.evaluation.encoders import load_encoder
from genbench.evaluation.features import load_features
from genbench.retrieval.build import build_pool_from_features
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
info = job.dataset_info()
captions = {label: info.templates[0].format(name) for label, name in enumerate(info.classes)}
encoder = load_encoder(job.encoder_spec())
with job.writer() as w:
    summary = build_pool_from_features(
        job.input_dir("images") / "train.jsonl", load_features(job.input_dir("features")), captions, w.dir, encoder
    )
    w.summary.update(summary, images_encoded=encoder.images_encoded)
