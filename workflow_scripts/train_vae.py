"""train_vae: the generator's AutoencoderKL, trained on the corpus."""

from genbench.models.train_vae import VAETrainingParams, train_vae
from genbench.workflow.job import set_torch_threads, start_job

job = start_job(snakemake)
params = job.stage_params(VAETrainingParams)
set_torch_threads(params.threads)  # keyed: CPU reductions depend on the thread count
with job.writer() as w:
    w.summary.update(train_vae(job.input_dir("corpus"), params, w.dir))
