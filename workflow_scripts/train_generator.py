"""train_generator: the UNet of a small Stable Diffusion, trained on the corpus captions with
the VAE of train_vae and the text tower of train_encoder's CLIP; writes the whole pipeline."""

from genbench.models.train_generator import GeneratorTrainingParams, train_generator
from genbench.workflow.job import set_torch_threads, start_job

job = start_job(snakemake)
params = job.stage_params(GeneratorTrainingParams)
set_torch_threads(params.threads)  # keyed: CPU reductions depend on the thread count
with job.writer() as w:
    summary = train_generator(job.input_dir("corpus"), job.input_dir("vae"), job.input_dir("encoder"), params, w.dir)
    w.summary.update(summary)
