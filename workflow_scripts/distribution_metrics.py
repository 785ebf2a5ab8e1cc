"""distribution_metrics: FD, KID, precision/recall/density/coverage, Vendi, CMMD and CLIP score."""

from loguru import logger

from genbench.evaluation.evaluate import DistributionParams, distribution_metrics, rows
from genbench.workflow.job import evaluation_inputs, start_job, write_rows

job = start_job(snakemake, torch=True)  # the quadratic metrics are torch kernels
inputs = evaluation_inputs(job)
values = distribution_metrics(inputs, job.stage_params(DistributionParams))
logger.info(values)
with job.writer() as w:
    write_rows(w, rows(inputs, "distribution_metrics", values))
