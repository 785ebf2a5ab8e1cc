"""elevater: the ELEVATER linear probe on cached features of the external set."""

from loguru import logger

from genbench.evaluation.evaluate import ProbeParams, elevater_probe, rows
from genbench.workflow.job import evaluation_inputs, start_job, write_rows

job = start_job(snakemake, torch=True)
inputs = evaluation_inputs(job)
values, reports = elevater_probe(inputs, job.stage_params(ProbeParams), log=logger.info)
with job.writer() as w:
    write_rows(w, rows(inputs, "elevater", values), {"probe": reports})
