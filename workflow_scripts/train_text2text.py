"""train_text2text: model_enc's T5, trained on the corpus captions (class name -> caption)."""

from genbench.models.train_text2text import Text2TextTrainingParams, train_text2text
from genbench.workflow.job import set_torch_threads, start_job

job = start_job(snakemake)
params = job.stage_params(Text2TextTrainingParams)
set_torch_threads(params.threads)  # keyed: CPU reductions depend on the thread count
with job.writer() as w:
    w.summary.update(train_text2text(job.input_dir("corpus"), params, w.dir))
