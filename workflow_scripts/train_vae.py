"""train_vae: the generator's AutoencoderKL, trained on the corpus."""

from genbench.models.train_vae import train_vae
from genbench.workflow.job import set_torch_threads, start_job

job = start_job(snakemake)
set_torch_threads(job.params["threads"])  # keyed: CPU reductions depend on the thread count
with job.writer() as w:
    w.summary.update(train_vae(job.input_dir("corpus"), job.params, w.dir))
