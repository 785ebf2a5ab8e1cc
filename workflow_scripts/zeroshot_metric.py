"""zeroshot_metric: zero-shot accuracy, the CLER score and its ablations for one external set."""

from loguru import logger

from genbench.evaluation.evaluate import CLERParams, rows, zeroshot_metric
from genbench.workflow.job import evaluation_inputs, start_job, write_rows

job = start_job(snakemake)
inputs = evaluation_inputs(job)
values = zeroshot_metric(inputs, job.stage_params(CLERParams))
logger.info(values)
with job.writer() as w:
    write_rows(w, rows(inputs, "zeroshot_metric", values))
