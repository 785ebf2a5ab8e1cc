"""build_pool: a retrieval pool (img2dataset + clip-retrieval layout), the demo's stand-in for
LAION. Either the training corpus with its own captions (retrieval.pool: corpus), or the
dataset's own train split captioned with its first template (train_split), whose image
embeddings are the train split's features (already computed): no image is encoded again."""

from genbench.evaluation.encoders import load_encoder
from genbench.evaluation.features import load_features
from genbench.retrieval.build import build_pool, build_pool_from_features
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
encoder = load_encoder(job.encoder_spec())
with job.writer() as w:
    if job.has_input("corpus"):
        from genbench.models.training import corpus_records

        records = corpus_records(job.input_dir("corpus"))
        summary = build_pool([(r["png"], r["caption"], r["key"]) for r in records], w.dir, encoder)
    else:
        info = job.dataset_info()
        captions = {label: info.templates[0].format(name) for label, name in enumerate(info.classes)}
        summary = build_pool_from_features(
            job.input_dir("images") / "train.jsonl", load_features(job.input_dir("features")), captions, w.dir, encoder
        )
    w.summary.update(summary, images_encoded=encoder.images_encoded)
