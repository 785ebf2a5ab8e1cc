"""proxy_distance: the proxy-A distance between the external set and the real test images."""

from loguru import logger

from genbench.evaluation.evaluate import PADParams, proxy_distance, rows
from genbench.workflow.job import evaluation_inputs, start_job, write_rows

job = start_job(snakemake)
inputs = evaluation_inputs(job)
values = proxy_distance(inputs, job.stage_params(PADParams))
logger.info(values)
with job.writer() as w:
    write_rows(w, rows(inputs, "proxy_distance", values))
