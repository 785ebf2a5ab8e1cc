"""distribution_metrics: FD, KID, precision/recall/density/coverage, Vendi, CMMD and CLIP score."""

from loguru import logger

from genbench.evaluation.evaluate import distribution_metrics, rows
from genbench.workflow.job import evaluation_inputs, start_job, write_rows

job = start_job(snakemake)
inputs = evaluation_inputs(job)
values = distribution_metrics(inputs, job.params["metrics"], {"kid": job.params.get("kid", {})})
logger.info(values)
with job.writer() as w:
    write_rows(w, rows(inputs, "distribution_metrics", values))
