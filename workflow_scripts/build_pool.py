"""build_pool: a retrieval pool (img2dataset + clip-retrieval layout), the demo's stand-in for
LAION: the training corpus with its own captions (retrieval.pool: corpus), or the dataset's own
train split captioned with its first template (train_split). The image embeddings are the
image set's features (already computed): no image is encoded again."""

from genbench.evaluation.encoders import load_encoder
from genbench.evaluation.features import load_features
from genbench.retrieval.build import PoolParams, build_pool_from_features, pool_source
from genbench.workflow.job import start_job

job = start_job(snakemake, torch=True)
params = job.stage_params(PoolParams)
encoder = load_encoder(job.encoder_spec())
corpus = params.captions == "corpus"
index, captions = pool_source(params.captions, job.input_dir("images"), None if corpus else job.dataset_info())
with job.writer() as w:
    summary = build_pool_from_features(index, load_features(job.input_dir("features")), captions, w.dir, encoder)
    w.summary.update(summary, images_encoded=encoder.images_encoded)
