"""train_encoder: a small open_clip CLIP trained contrastively on the corpus."""

from genbench.models.train_encoder import EncoderTrainingParams, train_encoder
from genbench.workflow.job import set_torch_threads, start_job

job = start_job(snakemake)
params = job.stage_params(EncoderTrainingParams)
set_torch_threads(params.threads)  # keyed: CPU reductions depend on the thread count
with job.writer() as w:
    w.summary.update(train_encoder(job.input_dir("corpus"), params, w.dir))
